"""A lounge of every restorable kind, and a separate aioesphomeapi client that sets and reads
states (not cmdctl's session): the scene tests of tests/device and tests/cli share these.

`SAVED` is the state a scene is saved in, `CHANGED` moves every field it sets somewhere else;
`restorable` picks, per entity, the state fields a scene promises to put back.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from aioesphomeapi import APIClient
from aioesphomeapi.model import (
    ClimateFanMode,
    ClimateMode,
    ClimatePreset,
    ClimateSwingMode,
    FanDirection,
    MediaPlayerCommand,
)

from cmdctl.simulator import ActionSpec, ArgSpec, DeviceSpec, EntitySpec, SubDevice
from cmdctl.simulator.naming import fnv1, object_id_of
from cmdctl.simulator.spec import derived_key

STATE_WAIT = 3.0  # a state push on 127.0.0.1 takes milliseconds

LOUNGE_ENTITIES = (
    EntitySpec("light", "Ceiling", color_modes=("rgb", "color_temperature"), effects=("Pulse",)),
    EntitySpec("light", "Reading", color_modes=("color_temperature",)),
    EntitySpec("cover", "Blind", supports_tilt=True),
    EntitySpec("valve", "Water"),
    EntitySpec("fan", "Ceiling Fan", speed_count=4, preset_modes=("Breeze", "Storm")),
    EntitySpec("fan", "Desk Fan", speed_count=4),
    EntitySpec(
        "climate",
        "Heat Pump",
        modes=("off", "heat", "cool", "heat_cool"),
        fan_modes=("auto", "low", "high"),
        swing_modes=("off", "vertical"),
        presets=("home", "away"),
        two_point=True,
    ),
    EntitySpec("media_player", "Speaker"),
    EntitySpec("number", "Dimmer", min_value=0, max_value=10, step=0.5),
    EntitySpec("select", "Mood", options=("calm", "party", "on")),  # "on": YAML's true
    EntitySpec("text", "Greeting", max_length=40),
    EntitySpec("text", "Note", max_length=40),  # never set: no state
    EntitySpec("switch", "Relay"),
    EntitySpec("switch", "Relay", device_id=7),
    EntitySpec("lock", "Door", initial="locked"),
    EntitySpec("button", "Restart"),
)
GREETING = 'Say "hi": #1 ✓ {ok}'  # quotes, a colon, a hash, braces and non-ASCII


def lounge_spec(name: str = "lounge", *, encrypted: bool = True) -> DeviceSpec:
    """The lounge: one of every kind a scene restores, and some it leaves out."""
    return DeviceSpec(
        name=name,
        friendly_name="Lounge",
        psk=derived_key(7, name, "psk") if encrypted else None,
        mac="A0:B7:65:00:10:01",
        entities=LOUNGE_ENTITIES,
        actions=(ActionSpec("chime", (ArgSpec("tone", "int"),)),),
        sub_devices=(SubDevice(7, "Garden"),),
    )


def key(name: str) -> int:
    """The key firmware derives from an entity name."""
    return fnv1(object_id_of(name))


Send = Callable[[APIClient], None]


def lounge_saved(c: APIClient) -> None:
    """The lounge as the scene is saved."""
    c.light_command(key("Ceiling"), state=True, brightness=0.6, rgb=(1.0, 0.5, 0.0),
                    effect="Pulse")  # fmt: skip
    c.light_command(key("Reading"), state=True, brightness=0.3, color_temperature=370.0)
    c.cover_command(key("Blind"), position=0.3, tilt=0.6)
    c.valve_command(key("Water"), position=0.75)
    c.fan_command(key("Ceiling Fan"), state=True, preset_mode="Breeze", oscillating=True,
                  direction=FanDirection.REVERSE)  # fmt: skip
    c.fan_command(key("Desk Fan"), state=True, speed_level=2)
    c.climate_command(
        key("Heat Pump"),
        mode=ClimateMode.HEAT,
        target_temperature=21.5,
        target_temperature_low=19.0,
        target_temperature_high=23.0,
        fan_mode=ClimateFanMode.LOW,
        swing_mode=ClimateSwingMode.VERTICAL,
        preset=ClimatePreset.HOME,
    )
    c.media_player_command(key("Speaker"), volume=0.35)
    c.media_player_command(key("Speaker"), command=MediaPlayerCommand.MUTE)
    c.number_command(key("Dimmer"), 7.5)
    c.select_command(key("Mood"), "on")
    c.text_command(key("Greeting"), GREETING)
    c.switch_command(key("Relay"), False)
    c.switch_command(key("Relay"), True, device_id=7)


def lounge_changed(c: APIClient) -> None:
    """Every field `lounge_saved` set, moved."""
    c.light_command(key("Ceiling"), state=True, brightness=0.2, color_temperature=250.0,
                    effect="None")  # fmt: skip
    c.light_command(key("Reading"), state=False, brightness=0.9, color_temperature=200.0)
    c.cover_command(key("Blind"), position=0.9, tilt=0.1)
    c.valve_command(key("Water"), position=0.1)
    c.fan_command(key("Ceiling Fan"), state=False, preset_mode="Storm", oscillating=False,
                  direction=FanDirection.FORWARD)  # fmt: skip
    c.fan_command(key("Desk Fan"), state=False, speed_level=4)
    c.climate_command(
        key("Heat Pump"),
        mode=ClimateMode.COOL,
        target_temperature=25.0,
        target_temperature_low=17.0,
        target_temperature_high=27.0,
        fan_mode=ClimateFanMode.HIGH,
        swing_mode=ClimateSwingMode.OFF,
        preset=ClimatePreset.AWAY,
    )
    c.media_player_command(key("Speaker"), volume=0.8)
    c.media_player_command(key("Speaker"), command=MediaPlayerCommand.UNMUTE)
    c.number_command(key("Dimmer"), 2.0)
    c.select_command(key("Mood"), "calm")
    c.text_command(key("Greeting"), "bye")
    c.switch_command(key("Relay"), True)
    c.switch_command(key("Relay"), False, device_id=7)


def tv_saved(c: APIClient) -> None:
    """A bar TV as the scene is saved (its channel is left without a state)."""
    c.switch_command(key("TV Power"), True)
    c.select_command(key("Input"), "HDMI 2")
    c.number_command(key("Volume"), 40.0)
    c.light_command(key("Backlight"), state=True, brightness=0.5, rgb=(0.0, 0.0, 1.0),
                    effect="Rainbow")  # fmt: skip


def tv_changed(c: APIClient) -> None:
    """Every field `tv_saved` set, moved."""
    c.switch_command(key("TV Power"), False)
    c.select_command(key("Input"), "Cable")
    c.number_command(key("Volume"), 5.0)
    c.light_command(key("Backlight"), state=False, brightness=1.0, rgb=(1.0, 0.0, 0.0),
                    effect="None")  # fmt: skip


# -- the separate client -----------------------------------------------------------------------

Entity = tuple[str, int]  # (`domain.object_id`, device_id)


async def states(host: str, port: int, psk: str | None) -> dict[Entity, Any]:
    """Every state the device reports, read over a connection of its own."""
    client = APIClient(host, port, None, noise_psk=psk)
    await client.connect(login=True)
    try:
        _, entities, _ = await client.device_info_and_list_entities()
        names = {(e.key, e.device_id): f"{_domain(e)}.{e.object_id}" for e in entities}
        stateful = {k for k, n in names.items() if not n.startswith(("button.", "event."))}
        seen: dict[tuple[int, int], Any] = {}
        arrived = asyncio.Event()

        def on_state(state: Any) -> None:
            seen[(state.key, state.device_id)] = state
            arrived.set()

        client.subscribe_states(on_state)
        async with asyncio.timeout(STATE_WAIT):
            while not stateful <= seen.keys():
                arrived.clear()
                await arrived.wait()
        return {(names[k], k[1]): s for k, s in seen.items()}
    finally:
        await client.disconnect()


async def apply(host: str, port: int, psk: str | None, *sends: Send) -> None:
    """Send commands with a client of its own and wait until the device has handled them."""
    client = APIClient(host, port, None, noise_psk=psk)
    await client.connect(login=True)
    try:
        await client.device_info_and_list_entities()
        for send in sends:
            send(client)
        await client.device_info()  # a round trip: everything before it was handled
    finally:
        await client.disconnect()


def _domain(info: Any) -> str:
    base = type(info).__name__.removesuffix("Info")
    return re.sub(r"(?<!^)(?=[A-Z])", "_", base).lower()


#: Light colour capabilities inside a colour mode.
_RGB, _CT = 32, 8


def restorable(selector: str, state: Any) -> dict[str, Any]:
    """The fields of `state` a scene puts back (a light: those of its colour mode; a media
    player: volume and mute, not playback; a lock, a text without state: none)."""
    domain = selector.partition(".")[0]
    if getattr(state, "missing_state", False) or domain == "lock":
        return {}
    values = {f.name: getattr(state, f.name) for f in fields(state)}
    for noise in ("key", "device_id", "missing_state", "legacy_state", "speed",
                  "current_operation", "current_temperature", "action",
                  "unused_legacy_away", "current_humidity"):  # fmt: skip
        values.pop(noise, None)
    if domain == "media_player":
        values.pop("state")
    if domain == "light":
        mode = int(values["color_mode"])
        keep = {"state", "brightness", "color_mode", "effect"}
        if mode & _RGB:
            keep |= {"red", "green", "blue", "color_brightness"}
        if mode & _CT:
            keep.add("color_temperature")
        if not values["state"]:
            keep.discard("effect")  # an effect only runs on a light that is on
        values = {k: v for k, v in values.items() if k in keep}
    return values


def differences(before: dict[Entity, Any], after: dict[Entity, Any]) -> list[str]:
    """Every restorable field that differs (floats within 0.01), as `entity field: a != b`."""
    out = []
    for entity, state in sorted(before.items()):
        want = restorable(entity[0], state)
        got = restorable(entity[0], after[entity])
        for name, value in want.items():
            seen = got.get(name)
            if isinstance(value, float) and isinstance(seen, float):
                same = abs(value - seen) <= 0.01
            else:
                same = value == seen
            if not same:
                out.append(f"{entity[0]}@{entity[1]} {name}: {value!r} != {seen!r}")
    return out
