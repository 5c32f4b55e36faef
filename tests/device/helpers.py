"""Shared pieces of the device tests: inventory entries, device specs and entity infos."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aioesphomeapi.model import (
    ButtonInfo,
    ClimateFanMode,
    ClimateInfo,
    ClimateMode,
    ClimatePreset,
    ColorMode,
    CoverInfo,
    FanInfo,
    LightInfo,
    LockInfo,
    MediaPlayerInfo,
    NumberInfo,
    SelectInfo,
    SensorInfo,
    SupportsResponseType,
    SwitchInfo,
    TextInfo,
    UserService,
    UserServiceArg,
    UserServiceArgType,
    ValveInfo,
)

from cmdctl.inputs.inventory import Device, Secret
from cmdctl.simulator import DeviceSpec, FaultSpec, VirtualDevice, venue
from tests.firmware.fleet import Instance
from tests.simulator.helpers import every_kind_spec


def address(dev: VirtualDevice | Instance, **changes: object) -> Device:
    """The inventory entry a user would write for a simulated device or a firmware instance."""
    if isinstance(dev, Instance):
        base = Device(dev.name, dev.host, dev.port)
    else:
        psk = dev.spec.psk
        base = Device(dev.name, "127.0.0.1", dev.port, key=Secret(psk) if psk else None)
    return replace(base, **changes)  # type: ignore[arg-type]


def tv_spec(encrypted: bool = True, **faults: object) -> DeviceSpec:
    """One venue bar TV, optionally with faults."""
    spec = venue(1, encrypted=encrypted)[0]
    return replace(spec, faults=FaultSpec(**faults))  # type: ignore[arg-type]


def home_spec() -> DeviceSpec:
    """The every-kind device (tests/simulator/helpers.py), plaintext, named "home"."""
    return every_kind_spec("home", "Home")


# -- entity infos as the client reports them (no device needed) ----------------------------------

#: A bar TV's entities plus one of each other kind; `relay` on two sub-devices (1 and 2).
ENTITIES: list[Any] = [
    SwitchInfo(object_id="tv_power", key=1, name="TV Power"),
    SelectInfo(object_id="input", key=2, name="Input", options=["HDMI 1", "HDMI 2", "Cable"]),
    NumberInfo(object_id="volume", key=3, name="Volume", min_value=0, max_value=100, step=1),
    ButtonInfo(object_id="identify", key=4, name="Identify"),
    TextInfo(object_id="channel", key=5, name="Channel", min_length=1, max_length=8,
             pattern=r"[0-9]+"),
    LightInfo(
        object_id="backlight",
        key=6,
        name="Backlight",
        supported_color_modes=[ColorMode.BRIGHTNESS, ColorMode.RGB],
        effects=["Rainbow", "Strobe"],
    ),
    LightInfo(
        object_id="lamp",
        key=7,
        name="Lamp",
        supported_color_modes=[ColorMode.COLOR_TEMPERATURE],
        min_mireds=153,
        max_mireds=500,
    ),
    CoverInfo(object_id="blind", key=8, name="Blind", supports_stop=True),
    CoverInfo(object_id="shade", key=9, name="Shade", supports_position=True, supports_tilt=True),
    FanInfo(
        object_id="fan",
        key=10,
        name="Fan",
        supported_speed_count=3,
        supports_oscillation=True,
        supported_preset_modes=["Sleep"],
    ),
    ClimateInfo(
        object_id="hvac",
        key=11,
        name="HVAC",
        supported_modes=[ClimateMode.OFF, ClimateMode.HEAT, ClimateMode.HEAT_COOL],
        supported_fan_modes=[ClimateFanMode.AUTO, ClimateFanMode.LOW],
        supported_presets=[ClimatePreset.ECO],
        visual_min_temperature=10,
        visual_max_temperature=30,
    ),
    LockInfo(object_id="door", key=12, name="Door", supports_open=False),
    ValveInfo(object_id="water", key=13, name="Water", supports_position=False),
    MediaPlayerInfo(object_id="speaker", key=14, name="Speaker", supports_pause=False),
    SensorInfo(object_id="temperature", key=15, name="Temperature"),
    # The same object_id on two sub-devices.
    SwitchInfo(object_id="relay", key=20, name="Relay", device_id=1),
    SwitchInfo(object_id="relay", key=20, name="Relay", device_id=2),
]
SERVICES = [
    UserService(
        name="send_tv_command",
        key=100,
        args=[
            UserServiceArg(name="box", type=UserServiceArgType.INT),
            UserServiceArg(name="channel", type=UserServiceArgType.STRING),
        ],
    ),
    UserService(
        name="get_status",
        key=101,
        args=[],
        supports_response=SupportsResponseType.ONLY,
    ),
    UserService(
        name="scene",
        key=102,
        args=[
            UserServiceArg(name="levels", type=UserServiceArgType.FLOAT_ARRAY),
            UserServiceArg(name="fade", type=UserServiceArgType.FLOAT, optional=True,
                           default_value="0.5"),
        ],
    ),
]
