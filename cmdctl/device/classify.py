"""The one place that decides what a device failure means and whether it is worth retrying.

Every exception the aioesphomeapi client (or the socket layer under it) raises for one device is
turned into a `DeviceError` here, following the table in esphome-protocol.md §5:

* `DeviceUnavailable` (transient, retried with backoff): refused, unreachable, reset, closed,
  timed out, ping failed, max connections reached, the device hung up (reboot / OTA).
* `DeviceAmbiguous` (retried a little): the connection dropped right after the encrypted hello
  (old plaintext firmware *or* no free API slot), a decrypt failure after the handshake.
* `DeviceRejected` (permanent, never retried): wrong / malformed / missing key, key given to a
  plaintext device, another device answering at that address, incompatible API, bad password.

Messages are short, name the cause, and never contain the key (text taken from the client's own
messages is scrubbed of it).
"""

from __future__ import annotations

import errno
import re

from aioesphomeapi.core import (
    APIConnectionCancelledError,
    APIConnectionError,
    BadMACAddressAPIError,
    BadNameAPIError,
    ConnectionNotEstablishedAPIError,
    EncryptionErrorAPIError,
    EncryptionHelloAPIError,
    EncryptionPlaintextAPIError,
    HandshakeAPIError,
    InvalidAuthAPIError,
    InvalidEncryptionKeyAPIError,
    PingFailedAPIError,
    ProtocolAPIError,
    ReadFailedAPIError,
    RequiresEncryptionAPIError,
    ResolveAPIError,
    ResolveTimeoutAPIError,
    SocketAPIError,
    SocketClosedAPIError,
    TimeoutAPIError,
)

from cmdctl.core.errors import (
    DeviceAmbiguous,
    DeviceError,
    DeviceRejected,
    DeviceUnavailable,
)

#: Exception types that mean "this device, this time" (everything else is a bug in cmdctl).
DEVICE_EXCEPTIONS: tuple[type[BaseException], ...] = (APIConnectionError, OSError, TimeoutError)

#: What tenacity should retry once errors have been classified (DeviceAmbiguous included).
RETRYABLE: tuple[type[DeviceError], ...] = (DeviceUnavailable,)

_SLOTS_HINT = "the device may have no free API connection slot (Home Assistant holds one)"
_KEY_HINT = "check the device's key in secrets.yaml against its `api: encryption: key:`"


def is_retryable(exc: BaseException) -> bool:
    """True when `exc` (classified or raw) is worth retrying; the predicate to give tenacity."""
    if isinstance(exc, DeviceError):
        return exc.retryable
    if isinstance(exc, DEVICE_EXCEPTIONS):
        return classify(exc, "?").retryable
    return False


def classify(
    exc: BaseException,
    device: str,
    *,
    host: str = "",
    port: int | None = None,
    phase: str = "",
    timeout: float | None = None,
    secret: str | None = None,
) -> DeviceError:
    """Turn one client / socket exception into the `DeviceError` a caller can act on.

    `host` / `port` say where the device should be, `phase` what we were doing ("connecting",
    "waiting for delivery"), `timeout` the bound that expired when `exc` is a timeout; `secret`
    is scrubbed from any text quoted from the client.
    """
    if isinstance(exc, DeviceError):
        return exc
    where = (f" at {host}:{port}" if port else f" at {host}") if host else ""
    doing = f" {phase}" if phase else ""  # "timed out after 5.0s connecting"
    during = f" while {phase}" if phase else ""  # "connection lost while sending"
    # Order matters: subclasses before their bases (EncryptionError is an InvalidEncryptionKey).
    if isinstance(exc, EncryptionErrorAPIError):
        return DeviceAmbiguous(
            device,
            "encrypted message could not be decrypted after the handshake",
            hint="retry; if it persists the key or the firmware's encryption setup is wrong",
        )
    if isinstance(exc, InvalidEncryptionKeyAPIError):
        if "Malformed PSK" in str(exc):
            return DeviceRejected(
                device,
                "malformed encryption key (must be base64 of 32 bytes)",
                hint=_KEY_HINT,
            )
        other = exc.received_name
        if other and other != device:
            hint = f"the device{where} calls itself '{other}'; {_KEY_HINT}"
        else:
            hint = _KEY_HINT
        return DeviceRejected(device, "wrong encryption key", hint=hint)
    if isinstance(exc, EncryptionHelloAPIError):
        return DeviceAmbiguous(
            device,
            "connection dropped right after the encrypted hello",
            hint=f"{_SLOTS_HINT}, or its firmware does not use encryption",
        )
    if isinstance(exc, EncryptionPlaintextAPIError):
        return DeviceRejected(
            device,
            "device does not use encryption but a key is configured",
            hint="remove `key:` for this device, or enable `api: encryption:` on it",
        )
    if isinstance(exc, RequiresEncryptionAPIError):
        return DeviceRejected(
            device,
            "device requires an encryption key",
            hint="add `key: !secret …` for this device in the inventory",
        )
    if isinstance(exc, BadNameAPIError | BadMACAddressAPIError):
        return _wrong_device(exc, device, where)
    if isinstance(exc, InvalidAuthAPIError):
        return DeviceRejected(
            device,
            "device rejected the login (legacy API password)",
            hint="remove `api: password:` from the firmware (ESPHome 2026.1 dropped passwords)",
        )
    if isinstance(exc, HandshakeAPIError):
        reason = _quote(exc, secret).removeprefix("Handshake failure: ")
        return DeviceRejected(device, f"encryption handshake failed ({reason})", hint=_KEY_HINT)
    if isinstance(exc, ProtocolAPIError):
        return DeviceRejected(
            device,
            f"not an ESPHome native API answer{where} ({_quote(exc, secret)})",
            hint="is something else listening on that port?",
        )
    if isinstance(exc, APIConnectionError) and "Incompatible API version" in str(exc):
        return DeviceRejected(device, "incompatible ESPHome API version", hint=_quote(exc, secret))
    if isinstance(exc, ResolveTimeoutAPIError):
        return DeviceUnavailable(device, f"timed out resolving {host or 'the host name'}")
    if isinstance(exc, ResolveAPIError):
        return DeviceUnavailable(device, f"could not resolve {host or 'the host name'}")
    if isinstance(exc, PingFailedAPIError):
        return DeviceUnavailable(device, "device stopped answering keepalive pings")
    if isinstance(exc, TimeoutAPIError | TimeoutError):
        return DeviceUnavailable(device, _timed_out(doing, timeout))
    if isinstance(exc, SocketClosedAPIError):
        return _closed(device, _quote(exc, secret), during, phase)
    if isinstance(exc, ReadFailedAPIError):
        quoted = _quote(exc, secret)
        if "reset" in quoted.lower():
            slots = _SLOTS_HINT if phase == "connecting" else None
            return DeviceUnavailable(device, f"connection reset by the device{during}", hint=slots)
        return DeviceUnavailable(device, f"read failed{during} ({quoted})")
    if isinstance(exc, SocketAPIError):
        cause = _os_cause(exc)
        if cause is not None:
            return _os_error(device, cause, where, doing, timeout)
        return DeviceUnavailable(device, f"network error{during} ({_quote(exc, secret)})")
    if isinstance(exc, ConnectionNotEstablishedAPIError):
        return DeviceUnavailable(device, f"connection lost{during}")
    if isinstance(exc, APIConnectionCancelledError):
        return DeviceUnavailable(device, f"connection attempt cancelled{during}")
    if isinstance(exc, OSError):
        return _os_error(device, exc, where, doing, timeout)
    if isinstance(exc, APIConnectionError):
        return DeviceUnavailable(device, f"connection error{during} ({_quote(exc, secret)})")
    raise TypeError(f"not a device error: {type(exc).__name__}") from exc


def device_closed(device: str, *, expected: bool) -> DeviceUnavailable:
    """The error for a connection the device ended on its own (`expected`: it asked to)."""
    if expected:
        return DeviceUnavailable(
            device,
            "device closed the connection",
            hint="it asked to disconnect: probably rebooting or updating",
        )
    return DeviceUnavailable(device, "connection lost")


def _wrong_device(
    exc: BadNameAPIError | BadMACAddressAPIError, device: str, where: str
) -> DeviceRejected:
    mac = exc.received_mac if isinstance(exc, BadMACAddressAPIError) else None
    return another_device(device, name=exc.received_name, mac=mac, where=where)


def another_device(device: str, *, name: str | None, mac: str | None, where: str) -> DeviceRejected:
    """The error for a device at the inventory's address that is not the one it names."""
    other = name or "an unnamed device"
    what = f"answered with MAC {mac} ('{other}')" if mac else f"answered as '{other}'"
    return DeviceRejected(
        device,
        f"{what}: another device{where or ' at that address'}",
        hint="the address was probably reassigned (DHCP); fix `host:` in the inventory",
    )


def _closed(device: str, text: str, during: str, phase: str) -> DeviceUnavailable:
    if phase == "connecting":
        return DeviceUnavailable(
            device, "connection closed by the device during the handshake", hint=_SLOTS_HINT
        )
    if "EOF" in text or "lost" in text.lower():
        return DeviceUnavailable(device, f"connection closed by the device{during}")
    return DeviceUnavailable(device, f"could not write to the device{during}")


def _os_cause(exc: BaseException) -> OSError | None:
    """The first OSError in the cause chain of `exc` (timeouts included)."""
    seen = 0
    cur = exc.__cause__ or exc.__context__
    while cur is not None and seen < 8:
        if isinstance(cur, OSError):
            return cur
        cur = cur.__cause__ or cur.__context__
        seen += 1
    return None


_ERRNO_TEXT = {
    errno.ECONNREFUSED: "connection refused",
    errno.ECONNRESET: "connection reset by the device",
    errno.ECONNABORTED: "connection aborted",
    errno.EHOSTUNREACH: "host unreachable",
    errno.ENETUNREACH: "network unreachable",
    errno.EHOSTDOWN: "host down",
    errno.ENETDOWN: "network down",
    errno.EPIPE: "connection closed by the device",
    errno.EADDRNOTAVAIL: "address not available",
}


def _os_error(
    device: str, exc: OSError, where: str, doing: str, timeout: float | None
) -> DeviceUnavailable:
    code = exc.errno
    if code is None:  # happy eyeballs over several addresses: "Multiple exceptions: [Errno 111] …"
        found = re.search(r"\[Errno (\d+)\]", str(exc))
        code = int(found.group(1)) if found else None
    if isinstance(exc, TimeoutError) or code == errno.ETIMEDOUT:
        return DeviceUnavailable(device, _timed_out(doing, timeout))
    text = _ERRNO_TEXT.get(code or 0)
    if text is None:
        text = f"network error ({exc.strerror or type(exc).__name__})"
    hint = "is the device powered and on the network?" if code == errno.ECONNREFUSED else None
    return DeviceUnavailable(device, text, hint=hint)


def _timed_out(doing: str, timeout: float | None) -> str:
    after = f" after {timeout:.1f}s" if timeout is not None else ""
    return f"timed out{after}{doing}"


def _quote(exc: BaseException, secret: str | None) -> str:
    """The client's own message, without its address prefix, capped, and never the key."""
    text = str(exc) or type(exc).__name__
    # The client prefixes messages with its log name ("bar-tv-3 @ 10.0.0.5: ...").
    head, sep, tail = text.partition(": ")
    if sep and (" @ " in head or head.count(".") == 3):
        text = tail
    if secret:
        text = text.replace(secret, "***")
    return text if len(text) <= 120 else text[:117] + "..."
