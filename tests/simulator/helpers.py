"""Shared pieces of the simulator tests: the target description and state waiting."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from aioesphomeapi import APIClient

from cmdctl.simulator import DeviceSpec, EntitySpec, Fleet, SubDevice, VirtualDevice
from cmdctl.simulator.spec import ActionSpec, ArgSpec

# how long a test waits for a state push or a connection event on 127.0.0.1
STATE_WAIT = 2.0


@dataclass
class ContractDevice:
    """Where the device under test listens and what it can do."""

    host: str
    port: int
    psk: str | None
    name: str
    capabilities: frozenset[str]
    sim: VirtualDevice | None = None
    fleet: Fleet | None = None
    kitchen: VirtualDevice | None = None
    # shut the device down as firmware does on SIGTERM/OTA: DisconnectRequest to every client,
    # then nothing listens on the port any more
    shutdown: Callable[[], Awaitable[None]] | None = None
    # the longest a state push may trail the request that caused it: the sim pushes at once
    # (or after its batch_delay), firmware after its 100 ms batch_delay plus a loop tick
    push_window: float = 0.05
    # send_tv_command calls that ran on the device, as {"box": int, "channel": str}
    actions_run: Callable[[], list[dict[str, Any]]] | None = None

    def client(self, **kwargs: Any) -> APIClient:
        """A real aioesphomeapi client for this device (must be called inside the loop)."""
        kwargs.setdefault("noise_psk", self.psk)
        return APIClient(self.host, self.port, None, **kwargs)


#: Every entity kind the transport commands, with a sub-device sharing an object_id (the
#: every-kind device of tests/simulator and tests/device: one definition for both).
EVERY_KIND_ENTITIES = (
    EntitySpec("cover", "Blind", supports_tilt=True),
    EntitySpec("fan", "Ceiling Fan", speed_count=4, preset_modes=("Breeze",)),
    EntitySpec("lock", "Door", supports_open=True),
    EntitySpec("valve", "Water"),
    EntitySpec("media_player", "Speaker"),
    EntitySpec(
        "climate",
        "Heat Pump",
        modes=("off", "heat", "cool", "heat_cool"),
        fan_modes=("auto", "low", "high"),
        presets=("home", "away"),
    ),
    EntitySpec("light", "Lamp", color_modes=("color_temperature", "rgb"), effects=("Pulse",)),
    EntitySpec("switch", "Relay", device_id=0),
    EntitySpec("switch", "Relay", device_id=7),
)
#: Every argument type and every response mode.
EVERY_KIND_ACTIONS = (
    ActionSpec(
        "all_types",
        tuple(
            ArgSpec(t.replace("[]", "s"), t)
            for t in ("bool", "int", "float", "string", "bool[]", "int[]", "float[]", "string[]")
        ),
    ),
    ActionSpec("scene", (ArgSpec("levels", "float[]"), ArgSpec("names", "string[]"))),
    ActionSpec("opt", response="optional", returns='{"ok": true}'),
    ActionSpec("status_only", response="status"),
    ActionSpec("fails", response="only", error="boom"),
)


def every_kind_spec(name: str, friendly_name: str, psk: str | None = None) -> DeviceSpec:
    """A device with every entity kind, a sub-device (7, "Garden") and answering actions."""
    return DeviceSpec(
        name=name,
        friendly_name=friendly_name,
        psk=psk,
        entities=EVERY_KIND_ENTITIES,
        actions=EVERY_KIND_ACTIONS,
        sub_devices=(SubDevice(7, "Garden"),),
    )


def kitchen_spec(encrypted_psk: str | None) -> DeviceSpec:
    """The contract suite's every-kind device, encrypted like the target's TV."""
    return every_kind_spec("kitchen", "Kitchen", encrypted_psk)


class StateWatch:
    """Collects pushed states by key; `until` waits (bounded) for a state to match."""

    def __init__(self) -> None:
        self.latest: dict[tuple[int, int], Any] = {}
        self.count: dict[tuple[int, int], int] = {}
        self._changed = asyncio.Event()

    def __call__(self, state: Any) -> None:
        ident = (state.key, state.device_id)
        self.latest[ident] = state
        self.count[ident] = self.count.get(ident, 0) + 1
        self._changed.set()

    async def until(self, key: int, check: Callable[[Any], bool], device_id: int = 0) -> Any:
        async with asyncio.timeout(STATE_WAIT):
            while True:
                state = self.latest.get((key, device_id))
                if state is not None and check(state):
                    return state
                self._changed.clear()
                await self._changed.wait()


async def eventually(check: Callable[[], bool], timeout: float = STATE_WAIT) -> None:
    """Wait until `check()` is true (polling the loop), or fail."""
    async with asyncio.timeout(timeout):
        while not check():
            await asyncio.sleep(0.005)
