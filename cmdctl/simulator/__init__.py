"""Virtual ESPHome devices speaking the real native API (plaintext and Noise), with faults.

Core API for `cmdctl simulate` and for tests:

    specs = venue(5, encrypted=True)            # or DeviceSpec(...); YAML: cmdctl.cli.simspec
    async with Fleet(specs, record_path=None) as fleet:
        dev = fleet.devices[0]                   # .spec, .port, .state_of("switch.tv_power")
        ...                                      # .received, .faults.silent = True, ...
        await dev.set_offline(True)              # refuse connections; False to come back
        await dev.reboot(2.0)                    # DisconnectRequest to clients, down 2 s, back
        write_inventory(fleet.devices, Path("devices.yml"))   # + secrets.yaml beside it
        announcer = Announcer(fleet.devices); await announcer.start()   # mDNS, as firmware

Timing: real firmware batches state pushes (`batch_delay` 100 ms, so a state echo takes about
113–130 ms). Here `DeviceSpec.batch_delay` defaults to 0 (push at once) so tests and benchmarks
stay fast; set it to 0.1 to imitate firmware. Not simulated: the device's own keepalive pings
(60 s / 150 s), legacy password authentication, Bluetooth/voice/IR proxies.

A device answers like ESPHome 2026.1 (API 1.14) unless its spec says otherwise; the real 2026.10
firmware answers 1.19. docs/simulator-vs-firmware.md lists every known difference from real
firmware and what the contract suite checks on both.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cmdctl.simulator.faults import FaultSpec
from cmdctl.simulator.spec import ActionSpec, ArgSpec, DeviceSpec, EntitySpec, SubDevice
from cmdctl.simulator.venue import venue

if TYPE_CHECKING:
    from cmdctl.simulator.device import VirtualDevice
    from cmdctl.simulator.fleet import Fleet
    from cmdctl.simulator.inventory_out import write_inventory
    from cmdctl.simulator.mdns import Announcer
    from cmdctl.simulator.record import ConnectionEvent, Received, Recorder, read_record

# these need aioesphomeapi (~0.25 s to import): loaded on first use, so that building specs
# (cmdctl.cli.simspec reads `simulate:` blocks) stays cheap
_LAZY = {
    "Announcer": "mdns",
    "VirtualDevice": "device",
    "Fleet": "fleet",
    "write_inventory": "inventory_out",
    "ConnectionEvent": "record",
    "Received": "record",
    "Recorder": "record",
    "read_record": "record",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cmdctl.simulator' has no attribute {name!r}")
    return getattr(importlib.import_module(f"cmdctl.simulator.{module}"), name)


__all__ = [
    "ActionSpec",
    "Announcer",
    "ArgSpec",
    "ConnectionEvent",
    "DeviceSpec",
    "EntitySpec",
    "FaultSpec",
    "Fleet",
    "Received",
    "Recorder",
    "SubDevice",
    "VirtualDevice",
    "read_record",
    "venue",
    "write_inventory",
]
