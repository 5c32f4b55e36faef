"""Simulated devices for the transport tests: real aioesphomeapi client, real TCP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace

import pytest

from cmdctl.inputs.inventory import Device, Secret
from cmdctl.simulator import (
    ActionSpec,
    ArgSpec,
    DeviceSpec,
    EntitySpec,
    FaultSpec,
    Fleet,
    SubDevice,
    VirtualDevice,
    venue,
)
from tests.firmware.fleet import Instance

__all__ = ["Instance"]


def address(dev: VirtualDevice, **changes: object) -> Device:
    """The inventory entry a user would write for a simulated device."""
    psk = dev.spec.psk
    base = Device(dev.name, "127.0.0.1", dev.port, key=Secret(psk) if psk else None)
    return replace(base, **changes)  # type: ignore[arg-type]


HOME_ENTITIES = (
    EntitySpec("cover", "Blind", supports_tilt=True),
    EntitySpec("fan", "Ceiling Fan", speed_count=4, preset_modes=("Breeze",)),
    EntitySpec("lock", "Door", supports_open=True),
    EntitySpec("valve", "Water"),
    EntitySpec("media_player", "Speaker"),
    EntitySpec(
        "climate",
        "Heat Pump",
        fan_modes=("auto", "low", "high"),
        presets=("home", "away"),
    ),
    EntitySpec("light", "Lamp", color_modes=("color_temperature", "rgb"), effects=("Pulse",)),
    EntitySpec("switch", "Relay"),
    EntitySpec("switch", "Relay", device_id=7),
)
HOME_ACTIONS = (
    ActionSpec("scene", (ArgSpec("levels", "float[]"), ArgSpec("names", "string[]"))),
    ActionSpec("opt", response="optional", returns='{"ok": true}'),
    ActionSpec("status_only", response="status"),
    ActionSpec("fails", response="only", error="boom"),
)


def home_spec(**changes: object) -> DeviceSpec:
    """A plaintext device with every other entity kind, a sub-device and answering actions."""
    spec = DeviceSpec(
        name="home",
        friendly_name="Home",
        entities=HOME_ENTITIES,
        actions=HOME_ACTIONS,
        sub_devices=(SubDevice(7, "Garden"),),
    )
    return replace(spec, **changes)  # type: ignore[arg-type]


def tv_spec(encrypted: bool = True, **faults: object) -> DeviceSpec:
    """One venue bar TV, optionally with faults."""
    spec = venue(1, encrypted=encrypted)[0]
    return replace(spec, faults=FaultSpec(**faults))  # type: ignore[arg-type]


@pytest.fixture(params=["noise", "plain"])
async def tv(request: pytest.FixtureRequest) -> AsyncIterator[VirtualDevice]:
    """A healthy bar TV, encrypted and plaintext."""
    async with Fleet([tv_spec(encrypted=request.param == "noise")]) as fleet:
        yield fleet.devices[0]


@pytest.fixture
async def noise_tv() -> AsyncIterator[VirtualDevice]:
    """A healthy encrypted bar TV."""
    async with Fleet([tv_spec()]) as fleet:
        yield fleet.devices[0]


@pytest.fixture
async def home() -> AsyncIterator[VirtualDevice]:
    """The every-kind device (plaintext)."""
    async with Fleet([home_spec()]) as fleet:
        yield fleet.devices[0]

