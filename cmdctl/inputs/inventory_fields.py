"""One value of an inventory checked: names, `host`, `port`, an encryption key, `expected_mac`,
`timeout` and `pace`; each error is located at its node and never shows a key."""

from __future__ import annotations

import base64
import binascii
import ipaddress
import math
import re

from cmdctl.core.errors import InputError
from cmdctl.core.timespec import DurationTooLong, parse_duration
from cmdctl.inputs import yamlsrc
from cmdctl.inputs.inventory import MAX_PACE, MAX_TIMEOUT
from cmdctl.inputs.yamlsrc import Loc, Node, ScalarNode

_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_NAME_HINT = "names use letters, digits, '_', '-' and '.' (patterns use ',', ':', '&', '!', '*')"
_MAC = re.compile(r"[0-9a-f]{2}(?:([:-]?)[0-9a-f]{2}(?:\1[0-9a-f]{2}){4})")
# A hostname label (RFC 1123, plus '_' which mDNS names use); a trailing '.' is allowed.
_HOSTNAME = re.compile(
    r"(?=.{1,253}\.?$)[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
    r"(?:\.[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?)*\.?"
)


def check_name(name: str, loc: Loc, what: str) -> None:
    """A device or group name, as patterns can select it."""
    if not _NAME.fullmatch(name):
        raise loc.error(f"bad {what} name {name!r}", hint=_NAME_HINT)


def key_text(node: Node, what: str) -> str:
    # Like yamlsrc.want_str, but never quotes the value: it may be a (malformed) key.
    if isinstance(node, ScalarNode) and isinstance(node.value, str) and node.tag is None:
        return node.value
    raise node.loc.error(f"{what} must be a string", hint="quote the key")


def check_key(value: str, device: str, source: str, loc: Loc) -> None:
    # The message names the device and where the key came from, never the key itself.
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise loc.error(
            f"key of {device} ({source}) is not valid base64",
            hint="an ESPHome API encryption key is base64 of 32 bytes (44 characters)",
        ) from None
    if len(raw) != 32:
        raise loc.error(
            f"key of {device} ({source}) decodes to {len(raw)} bytes, not 32",
            hint="an ESPHome API encryption key is base64 of 32 bytes (44 characters)",
        )


def port(node: Node) -> int:
    """`port:` (1 to 65535)."""
    return yamlsrc.want_int(node, "port", low=1, high=65535)


def timeout(node: Node) -> float:
    """`timeout:`, a duration over 0s and at most `MAX_TIMEOUT`, in seconds."""
    try:
        seconds = parse_duration(yamlsrc.want_text(node, "timeout"))
    except DurationTooLong:
        seconds = math.inf  # said below, with this key's own bound
    except InputError as err:
        raise node.loc.error(err.message, hint=err.hint) from None
    if seconds <= 0:
        raise node.loc.error("timeout must be more than 0s")
    if seconds > MAX_TIMEOUT:
        raise node.loc.error(
            f"timeout must be at most 1h, not {yamlsrc.want_text(node, 'timeout')}",
            hint="it bounds one device's job (connect + its commands); the default is 30s",
        )
    return seconds


def pace(node: Node) -> float:
    """`pace:`, a duration of at most `MAX_PACE`, in seconds."""
    text = yamlsrc.want_text(node, "pace")
    try:
        seconds = parse_duration(text)
    except DurationTooLong:
        seconds = math.inf  # said below, with this key's own bound
    except InputError as err:
        raise node.loc.error(f"pace: {err.message}", hint=err.hint) from None
    if seconds > MAX_PACE:
        raise node.loc.error(
            f"pace must be at most 1h, not {text}",
            hint="pace spaces commands within one drain (200ms for IR);"
            " to run something later, give its playbook an `at:`",
        )
    return seconds


def host(node: Node, device: str) -> str:
    """An IP address or a hostname; anything else (a space, a newline, a port) is refused."""
    text = yamlsrc.want_str(node, f"host of {device}")
    bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text  # [IPv6]
    try:
        ipaddress.ip_address(bare)
        return bare
    except ValueError:
        pass
    if bare is text and _HOSTNAME.fullmatch(text):
        return text
    hint = "an IP address (192.168.1.40, fe80::1) or a hostname (bar-tv-1.local)"
    if text.count(":") == 1:
        hint = "put the port in `port:`, not in host"
    raise node.loc.error(
        f"host of {device} is not an IP address or hostname: {text!r}", hint=hint
    )


def mac(node: Node, device: str) -> str:
    """`expected_mac:` → 12 lower-case hex digits."""
    text = yamlsrc.want_text(node, f"expected_mac of {device}").strip().lower()
    if not _MAC.fullmatch(text):
        raise node.loc.error(
            f"expected_mac of {device} is not a MAC address: {text!r}",
            hint="write six hex pairs, like a0:b7:65:01:02:03",
        )
    return re.sub("[:-]", "", text)
