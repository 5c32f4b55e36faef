"""The error table of esphome-protocol.md §5, applied to real exception instances."""

from __future__ import annotations

import errno

import pytest
from aioesphomeapi.core import (
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

from cmdctl.core.errors import DeliveryUnknown, DeviceAmbiguous, DeviceRejected, DeviceUnavailable
from cmdctl.device.classify import RETRYABLE, classify, device_closed, is_retryable

KEY = "px7tsbK3C7bpXHr2OevEV2ZMg/FrNBw2+O2pNPbedtA="


def _caused(exc: BaseException, cause: BaseException) -> BaseException:
    exc.__cause__ = cause
    return exc


def refused() -> BaseException:
    return _caused(
        SocketAPIError("Error connecting to [AddrInfo(...)]: [Errno 111] Connect call failed"),
        ConnectionRefusedError(errno.ECONNREFUSED, "Connect call failed"),
    )


CASES = [
    # (exception, expected class, words the message must contain)
    (refused(), DeviceUnavailable, "connection refused"),
    (
        _caused(SocketAPIError("Error connecting: x"), OSError(errno.EHOSTUNREACH, "No route")),
        DeviceUnavailable,
        "host unreachable",
    ),
    (
        _caused(
            SocketAPIError("Error connecting to [...]: Multiple exceptions: ..."),
            OSError("Multiple exceptions: [Errno 111] Connect call failed, [Errno 99] x"),
        ),
        DeviceUnavailable,
        "connection refused",
    ),
    (TimeoutAPIError("Timeout waiting for HelloResponse"), DeviceUnavailable, "timed out"),
    (TimeoutError(), DeviceUnavailable, "timed out after 5.0s connecting"),
    (SocketClosedAPIError("bar-tv-3 @ 127.0.0.1: EOF received"), DeviceUnavailable, "closed"),
    (ReadFailedAPIError("[Errno 104] Connection reset by peer"), DeviceUnavailable, "reset"),
    (PingFailedAPIError("Ping response not received"), DeviceUnavailable, "pings"),
    (ResolveAPIError("no such host"), DeviceUnavailable, "could not resolve 10.0.0.5"),
    (ResolveTimeoutAPIError("slow mdns"), DeviceUnavailable, "timed out resolving"),
    (ConnectionNotEstablishedAPIError("Not connected"), DeviceUnavailable, "connection lost"),
    (ConnectionResetError(errno.ECONNRESET, "reset"), DeviceUnavailable, "reset by the device"),
    (EncryptionHelloAPIError("dropped after hello"), DeviceAmbiguous, "encrypted hello"),
    (EncryptionErrorAPIError("decrypt", "bar-tv-3", None), DeviceAmbiguous, "decrypted"),
    (InvalidEncryptionKeyAPIError("Handshake MAC failure", "bar-tv-3", None), DeviceRejected,
     "wrong encryption key"),
    (
        InvalidEncryptionKeyAPIError("x: Malformed PSK (length=5), expected base64", None, None),
        DeviceRejected,
        "malformed encryption key",
    ),
    (RequiresEncryptionAPIError("Connection requires encryption"), DeviceRejected,
     "requires an encryption key"),
    (EncryptionPlaintextAPIError("plaintext"), DeviceRejected, "does not use encryption"),
    (BadNameAPIError("Expected 'bar-tv-3'", "bar-tv-9"), DeviceRejected,
     "answered as 'bar-tv-9': another device at 10.0.0.5:6053"),
    (BadMACAddressAPIError("Expected mac", "bar-tv-9", "a0b765010203"), DeviceRejected,
     "answered with MAC a0b765010203"),
    (InvalidAuthAPIError("Invalid password!"), DeviceRejected, "password"),
    (HandshakeAPIError("Handshake failure: Bad handshake error byte"), DeviceRejected,
     "handshake failed (Bad handshake error byte)"),
    (ProtocolAPIError("Invalid preamble 0x48"), DeviceRejected, "not an ESPHome"),
    (APIConnectionError("Incompatible API version (3.0)."), DeviceRejected, "incompatible"),
]


@pytest.mark.parametrize(("exc", "kind", "words"), CASES, ids=lambda v: type(v).__name__)
def test_each_client_error_has_its_class_and_names_the_cause(
    exc: BaseException, kind: type, words: str
) -> None:
    err = classify(exc, "bar-tv-3", host="10.0.0.5", port=6053, phase="connecting", timeout=5.0)
    assert type(err) is kind
    assert words in err.message
    assert err.message.startswith("bar-tv-3: ")
    assert err.retryable is (kind is not DeviceRejected)
    assert is_retryable(exc) is err.retryable
    assert "\n" not in err.one_line()


def test_wrong_key_names_the_other_device_in_the_hint() -> None:
    err = classify(
        InvalidEncryptionKeyAPIError("Handshake MAC failure", "bar-tv-9", "a0b7"),
        "bar-tv-3",
        host="10.0.0.5", port=6053,
    )
    assert err.hint is not None and "'bar-tv-9'" in err.hint


def test_max_connections_reset_while_connecting_hints_at_slots() -> None:
    exc = ReadFailedAPIError("[Errno 104] Connection reset by peer")
    err = classify(exc, "d", phase="connecting")
    assert err.hint is not None and "slot" in err.hint


def test_the_key_never_appears_even_if_the_client_quotes_it() -> None:
    for exc in (
        HandshakeAPIError(f"Handshake failure: {KEY}"),
        ProtocolAPIError(f"bad frame {KEY}"),
        APIConnectionError(f"weird {KEY}"),
        ReadFailedAPIError(f"failed {KEY}"),
    ):
        err = classify(exc, "bar-tv-3", secret=KEY)
        assert KEY not in err.one_line()
        assert KEY not in repr(err)


def test_timeouts_say_how_long_and_what_we_were_doing() -> None:
    err = classify(TimeoutError(), "bar-tv-3", phase="waiting for delivery", timeout=5.0)
    assert err.message == "bar-tv-3: timed out after 5.0s waiting for delivery"


def test_retry_predicate_on_classified_errors_and_non_device_errors() -> None:
    assert is_retryable(DeviceUnavailable("d", "x"))
    assert is_retryable(DeviceAmbiguous("d", "x"))
    assert is_retryable(DeliveryUnknown("d", "x"))
    assert not is_retryable(DeviceRejected("d", "x"))
    assert not is_retryable(KeyError("bug"))
    assert (DeviceUnavailable,) == RETRYABLE


def test_a_bug_is_not_dressed_up_as_a_device_error() -> None:
    with pytest.raises(TypeError):
        classify(KeyError("data"), "d")


def test_device_initiated_disconnect_is_transient_with_a_reboot_hint() -> None:
    err = device_closed("bar-tv-3", expected=True)
    assert err.retryable and err.hint is not None and "reboot" in err.hint
    assert device_closed("bar-tv-3", expected=False).message == "bar-tv-3: connection lost"
