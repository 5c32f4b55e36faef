"""Announce virtual devices over mDNS as `_esphomelib._tcp`, with the TXT records firmware sends.

Keys and order follow ESPHome's `mdns_component.cpp` (`compile_records_`) for a Wi-Fi device
with the API: `friendly_name` (when set), `version`, `config_hash`, `mac`, `platform`, `board`,
`network`, then `api_encryption` when the device holds a key. A simulated plaintext device is one
configured without `api: encryption:`, so, like that firmware, it sends no encryption key at all.
Not simulated: re-announcing after a reboot or offline fault, `api_encryption_supported` /
`api_provisioning` (Noise compiled in, no key yet), `project_*`, `package_import_url`.
"""

from __future__ import annotations

import asyncio
import hashlib
import ipaddress
import socket
from collections.abc import Sequence
from typing import Any

from cmdctl.core.errors import InputError
from cmdctl.simulator.device import VirtualDevice

SERVICE_TYPE = "_esphomelib._tcp.local."
NOISE = "Noise_NNpsk0_25519_ChaChaPoly_SHA256"  # the value firmware gives `api_encryption`
NETWORK = "wifi"  # what a simulated device claims to be connected by


def txt_records(device: VirtualDevice) -> dict[str, str]:
    """The TXT records firmware built from this device's configuration would send."""
    spec = device.spec
    txt: dict[str, str] = {}
    if spec.friendly_name:
        txt["friendly_name"] = spec.friendly_name
    txt["version"] = spec.esphome_version
    txt["config_hash"] = config_hash(device)
    txt["mac"] = spec.mac.replace(":", "").lower()  # get_mac_address_into_buffer: no separators
    if spec.platform:
        txt["platform"] = spec.platform
    txt["board"] = spec.model
    txt["network"] = NETWORK
    if device.psk_bytes is not None:
        txt["api_encryption"] = NOISE
    return txt


def config_hash(device: VirtualDevice) -> str:
    """8 hex digits, like firmware's `format_hex_to(App.get_config_hash())`; stable per spec."""
    spec = device.spec
    basis = f"{spec.name}|{spec.esphome_version}|{spec.entities!r}|{spec.actions!r}"
    return hashlib.sha256(basis.encode()).hexdigest()[:8]


def announced_address(host: str) -> str:
    """The IPv4 address to announce for a device listening on `host`."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        try:
            return socket.gethostbyname(host)
        except OSError as err:
            raise InputError(f"cannot announce {host!r}: {err}") from err
    if ip.is_unspecified:
        return "127.0.0.1"  # listening everywhere: reachable at least on loopback
    return str(ip)


class Announcer:
    """Registers every device's `_esphomelib._tcp` service while open; goodbyes on close."""

    def __init__(self, devices: Sequence[VirtualDevice]) -> None:
        self.devices = list(devices)
        self._azc: Any = None
        self._infos: list[Any] = []

    async def start(self) -> None:
        """Probe and announce every device (a second or so: zeroconf's probing is 3 × 250 ms)."""
        from zeroconf import NonUniqueNameException
        from zeroconf.asyncio import AsyncServiceInfo, AsyncZeroconf

        self._azc = AsyncZeroconf()
        for device in self.devices:
            address = announced_address(device.spec.host)
            self._infos.append(
                AsyncServiceInfo(
                    SERVICE_TYPE,
                    f"{device.name}.{SERVICE_TYPE}",
                    addresses=[socket.inet_aton(address)],
                    port=device.port,
                    properties=txt_records(device),
                    server=f"{device.name}.local.",
                )
            )
        try:
            pending = [await self._azc.async_register_service(info) for info in self._infos]
            await asyncio.gather(*pending)
        except NonUniqueNameException as err:
            await self.stop()
            raise InputError(
                "a simulated device's name is already announced on this network",
                hint="rename the device, or run without --mdns",
            ) from err
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Send goodbyes and close."""
        azc, self._azc = self._azc, None
        if azc is None:
            return
        try:
            await azc.async_unregister_all_services()
        finally:
            await azc.async_close()
