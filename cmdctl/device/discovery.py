"""Find ESPHome devices on the local network by mDNS (`_esphomelib._tcp`), and relate them to
the devices the inventory already knows.

The TXT keys are the ones ESPHome's `mdns` component publishes (`mdns_component.cpp`):
`friendly_name`, `version`, `config_hash`, `mac` (12 lower-case hex digits), `platform`, `board`,
`network`, then `api_encryption` (a key is set) or `api_encryption_supported` (Noise compiled in,
no key yet), `api_provisioning`, `project_name` / `project_version`, `package_import_url`.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

SERVICE_TYPE = "_esphomelib._tcp.local."
# Firmware answers a service query within ~100 ms on a LAN; a busy Wi-Fi can take a second or two.
RESOLVE_TIMEOUT = 2.0
# A DNS name in the inventory is looked up once to compare it with what was announced; a
# resolver that takes longer than this is not going to help.
HOST_LOOKUP_TIMEOUT = 2.0


class Encryption(StrEnum):
    """What the device's API says about Noise encryption."""

    REQUIRED = "required"  # `api_encryption`: a key is set; the client must have it
    SUPPORTED = "supported"  # `api_encryption_supported`: no key yet, the API is plaintext
    NONE = "none"  # neither key: firmware built without Noise


@dataclass(frozen=True, slots=True)
class Announcement:
    """One ESPHome device as its mDNS announcement describes it."""

    name: str  # the instance name: `esphome: name`
    host: str  # the mDNS host name, `NAME.local`
    addresses: tuple[str, ...]  # IPv4 first
    port: int
    txt: Mapping[str, str] = field(default_factory=dict, compare=False)

    @property
    def address(self) -> str:
        """The address to connect to: the first announced one, else the mDNS host name."""
        return self.addresses[0] if self.addresses else self.host

    @property
    def friendly_name(self) -> str | None:
        """`friendly_name`, when the configuration sets one."""
        return self.txt.get("friendly_name") or None

    @property
    def mac(self) -> str | None:
        """12 lower-case hex digits, the form the inventory's `expected_mac` is kept in."""
        raw = self.txt.get("mac", "").replace(":", "").lower()
        return raw if len(raw) == 12 and all(c in "0123456789abcdef" for c in raw) else None

    @property
    def version(self) -> str | None:
        """The ESPHome version the firmware was built with."""
        return self.txt.get("version") or None

    @property
    def platform(self) -> str | None:
        """`ESP32`, `ESP8266`, `RP2`, … (absent on the host platform)."""
        return self.txt.get("platform") or None

    @property
    def board(self) -> str | None:
        """The board the firmware was built for."""
        return self.txt.get("board") or None

    @property
    def network(self) -> str | None:
        """`wifi`, `ethernet` or `thread`."""
        return self.txt.get("network") or None

    @property
    def encryption(self) -> Encryption:
        """Whether the API wants a key."""
        if "api_encryption" in self.txt:
            return Encryption.REQUIRED
        if "api_encryption_supported" in self.txt:
            return Encryption.SUPPORTED
        return Encryption.NONE


@dataclass(frozen=True, slots=True)
class Discovery:
    """What one browse found: announcements by name, and names that never answered a query."""

    found: tuple[Announcement, ...]
    unanswered: tuple[str, ...] = ()


async def browse(duration: float, *, resolve_timeout: float = RESOLVE_TIMEOUT) -> Discovery:
    """Listen for `_esphomelib._tcp` announcements for `duration` seconds and resolve each one."""
    from zeroconf import DNSQuestionType, ServiceStateChange
    from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

    # Multicast questions (QM), not zeroconf's default unicast-response first question (QU):
    # a unicast answer goes to this host's port 5353, which every mDNS stack here (avahi, another
    # zeroconf, the simulator) has bound with SO_REUSEPORT, and the kernel hands it to one of
    # them, often not us. The device's multicast answer reaches every listener.
    qm = DNSQuestionType.QM

    loop = asyncio.get_running_loop()
    found: dict[str, Announcement] = {}
    unanswered: set[str] = set()
    pending: set[asyncio.Task[None]] = set()  # strong references until each resolve ends
    azc = AsyncZeroconf()

    async def resolve(name: str) -> None:
        info = AsyncServiceInfo(SERVICE_TYPE, name)
        if await info.async_request(azc.zeroconf, int(resolve_timeout * 1000), question_type=qm):
            found[name] = _announcement(name, info)
            unanswered.discard(name)
        elif name not in found:
            unanswered.add(name)

    def start(name: str) -> None:
        task = loop.create_task(resolve(name))
        pending.add(task)
        task.add_done_callback(pending.discard)

    def on_change(**kwargs: Any) -> None:
        name, change = kwargs["name"], kwargs["state_change"]
        if change is ServiceStateChange.Removed:
            found.pop(name, None)
        else:
            loop.call_soon_threadsafe(start, name)

    try:
        browser = AsyncServiceBrowser(
            azc.zeroconf, [SERVICE_TYPE], handlers=[on_change], question_type=qm
        )
        try:
            await asyncio.sleep(duration)
        finally:
            await browser.async_cancel()
        if pending:
            await asyncio.wait(set(pending), timeout=resolve_timeout + 1)
    finally:
        for task in pending:
            task.cancel()
        await azc.async_close()
    ordered = tuple(sorted(found.values(), key=lambda a: a.name))
    return Discovery(ordered, tuple(sorted(unanswered - set(found))))


def _announcement(name: str, info: Any) -> Announcement:
    from zeroconf import IPVersion

    txt: dict[str, str] = {}
    for key, value in (info.properties or {}).items():
        text_key = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
        if isinstance(value, bytes):
            txt[text_key] = value.decode("utf-8", "replace")
        else:
            txt[text_key] = "" if value is None else str(value)
    addresses = (
        *info.parsed_addresses(IPVersion.V4Only),
        *info.parsed_addresses(IPVersion.V6Only),
    )
    instance = name.removesuffix("." + SERVICE_TYPE)
    host = (info.server or f"{instance}.local.").rstrip(".")
    return Announcement(instance, host, tuple(addresses), int(info.port or 0), txt)


# -- relating announcements to the inventory ----------------------------------------------------


@dataclass(frozen=True, slots=True)
class KnownDevice:
    """An inventory device, as much of it as discovery compares."""

    name: str
    host: str
    port: int
    expected_name: str | None = None
    expected_mac: str | None = None  # 12 lower-case hex digits


class Status(StrEnum):
    """How an announced device relates to the inventory."""

    KNOWN = "known"  # in the inventory at the address and port it announces
    MOVED = "moved"  # in the inventory at another address or port (DHCP moved it)
    NEW = "new"  # not in the inventory


@dataclass(frozen=True, slots=True)
class Relation:
    """One announced device and the inventory device it is (or None)."""

    found: Announcement
    status: Status
    device: KnownDevice | None = None
    matched_by: str | None = None  # "mac", "expected_name", "name" or "address"
    host: str | None = None  # for MOVED: the `host:` to write (None: keep it)
    port: int | None = None  # for MOVED: the `port:` to write (None: keep it)


def is_ip(host: str) -> bool:
    """Whether `host` is an IP literal."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _mdns_name(host: str) -> str:
    return host.rstrip(".").casefold()


async def lookup_hosts(hosts: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Addresses of the DNS names among `hosts` (not IPs, not `.local`); () when unresolved."""
    loop = asyncio.get_running_loop()
    names = sorted({h for h in hosts if not is_ip(h) and not _mdns_name(h).endswith(".local")})

    async def one(host: str) -> tuple[str, ...]:
        with contextlib.suppress(OSError, TimeoutError):
            async with asyncio.timeout(HOST_LOOKUP_TIMEOUT):
                infos = await loop.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
            return tuple(dict.fromkeys(str(info[4][0]) for info in infos))
        return ()

    results = await asyncio.gather(*(one(h) for h in names))
    return dict(zip(names, results, strict=True))


def relate(
    found: Iterable[Announcement],
    known: Iterable[KnownDevice],
    resolved: Mapping[str, tuple[str, ...]] | None = None,
) -> list[Relation]:
    """Match each announcement to at most one inventory device, strongest evidence first.

    Evidence, in order: the inventory's `expected_mac`, its `expected_name`, the inventory name
    itself, then the address and port. A device whose `expected_mac` / `expected_name` contradicts
    the announcement never matches it. `resolved` holds the addresses of DNS names (lookup_hosts).
    """
    resolved = resolved or {}
    pool = list(known)
    taken: set[str] = set()
    out: list[Relation] = []
    for ann in found:
        pick = _match(ann, [d for d in pool if d.name not in taken], resolved)
        if pick is None:
            out.append(Relation(ann, Status.NEW))
            continue
        device, how = pick
        taken.add(device.name)
        same_host = _same_host(device.host, ann, resolved)
        same_port = device.port == ann.port
        if same_host and same_port:
            out.append(Relation(ann, Status.KNOWN, device, how))
            continue
        out.append(
            Relation(
                ann,
                Status.MOVED,
                device,
                how,
                host=None if same_host else ann.address,
                port=None if same_port else ann.port,
            )
        )
    return out


def _same_host(host: str, ann: Announcement, resolved: Mapping[str, tuple[str, ...]]) -> bool:
    if _mdns_name(host) == _mdns_name(ann.host):
        return True  # mDNS finds it wherever it is
    if is_ip(host):
        wanted = ipaddress.ip_address(host)
        return any(is_ip(a) and ipaddress.ip_address(a) == wanted for a in ann.addresses)
    return bool(set(resolved.get(host, ())) & set(ann.addresses))


def _contradicts(device: KnownDevice, ann: Announcement) -> bool:
    if device.expected_mac is not None and ann.mac is not None and device.expected_mac != ann.mac:
        return True
    return device.expected_name is not None and device.expected_name != ann.name


def _match(
    ann: Announcement, pool: list[KnownDevice], resolved: Mapping[str, tuple[str, ...]]
) -> tuple[KnownDevice, str] | None:
    fair = [d for d in pool if not _contradicts(d, ann)]
    tests: tuple[tuple[str, Callable[[KnownDevice], bool]], ...] = (
        ("mac", lambda d: ann.mac is not None and d.expected_mac == ann.mac),
        ("expected_name", lambda d: d.expected_name == ann.name),
        ("name", lambda d: d.name == ann.name),
        ("address", lambda d: d.port == ann.port and _same_host(d.host, ann, resolved)),
    )
    for how, test in tests:
        for device in fair:
            if test(device):
                return device, how
    return None
