"""`cmdctl scene save`: what each device shows now, as the commands that would put it back.

One short connection per device reads its entity list and every entity's current state; each
state a command can set becomes one canonical `Command` (the args of docs/architecture.md),
checked with `EntityIndex.plan` exactly as a drain would check it, so a saved scene never holds
a command its device refuses. What cannot be put back is listed with why: buttons and actions
(no state), read-only entities (sensors), locks (a scene never locks or unlocks a door),
password texts (their value would land in a file), entities that reported no state.

Nothing is sent and nothing is written; failures are data, as in a probe. Works on
aioesphomeapi model objects by duck typing; the transport is imported when a device is read.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cmdctl.core.errors import DeviceError, DeviceRejected, DeviceUnavailable, ExitCode
from cmdctl.core.model import Command, JSONValue
from cmdctl.device.fleetview import playbook_selectors

if TYPE_CHECKING:
    from cmdctl.device.address import DeviceAddress
    from cmdctl.device.entities import EntityIndex

#: Devices read at once: one short connection each (as `devices probe`).
SCENE_CONCURRENCY = 32
# Saving is interactive: a device that has not answered in 5 s is reported (the transport's
# own connect bound; a slow Noise handshake on weak Wi-Fi takes up to ~1.2 s).
SCENE_CONNECT_TIMEOUT = 5.0
# Connect + entity list + the initial states (states.STATE_TIMEOUT) of one device.
SCENE_JOB_TIMEOUT = 20.0

# Why an entity is left out of a scene (`LeftOut.reason`); `WHY` says it to a person.
BUTTON = "button"
ACTION = "action"
READ_ONLY = "read-only"
LOCK = "lock"
PASSWORD = "password"
NO_STATE = "no state"
NO_COMMAND = "no command"
REFUSED = "refused"
WHY: dict[str, str] = {
    BUTTON: "buttons (a press, not a state)",
    ACTION: "actions (calls, not states)",
    READ_ONLY: "read-only (sensors and the like)",
    LOCK: "locks (a scene never locks or unlocks a door; add a step by hand if you mean it)",
    PASSWORD: "password texts (their value is not written to a file)",
    NO_STATE: "no state reported (nothing to put back)",
    NO_COMMAND: "cmdctl has no command for these",
    REFUSED: "the device would refuse the saved value",
}

#: Domains whose entities only report (nothing can be sent to them).
_READ_ONLY_DOMAINS = frozenset({"sensor", "binary_sensor", "text_sensor", "event", "camera"})
#: Domains whose state a scene puts back.
_RESTORED = frozenset((
    "switch", "light", "number", "select", "text", "cover", "fan", "climate", "valve",
    "media_player",
))  # fmt: skip

# Light colour capabilities inside a ColorMode value (aioesphomeapi LightColorCapability).
_CAP_BRIGHTNESS, _CAP_WHITE, _CAP_CT, _CAP_CWWW, _CAP_RGB = 2, 4, 8, 16, 32
# Climate feature flags (aioesphomeapi ClimateFeature).
_CLIMATE_SUPPORTS_TWO_POINT, _CLIMATE_REQUIRES_TWO_POINT = 2, 4
# Media player feature flags (aioesphomeapi MediaPlayerEntityFeature).
_MEDIA_VOLUME_SET, _MEDIA_VOLUME_MUTE = 4, 8
_TEXT_PASSWORD = 1  # aioesphomeapi TextMode.PASSWORD

# States travel as float32: values in 0..1 and temperatures are written with this many decimals
# (a tenth of the verification tolerances), so the file shows 0.4, not 0.4000000059604645.
_DECIMALS = 4


@dataclass(frozen=True, slots=True)
class Setting:
    """One entity's current state as the command that puts it back (checked on the device)."""

    command: Command  # target as a playbook writes it (`garden/relay` on a sub-device)
    name: str  # the entity's name on the device ("TV Power")
    note: str = ""  # a sentence on what the command does not cover, or "" (a comment for people)


@dataclass(frozen=True, slots=True)
class LeftOut:
    """An entity a scene cannot put back, and why (`reason` is a key of `WHY`)."""

    selector: str
    reason: str
    detail: str = ""  # the lock's state, the device's objection, …


@dataclass(frozen=True, slots=True)
class DeviceScene:
    """One device's saved state, or why it could not be read."""

    device: str
    friendly_name: str = ""
    settings: tuple[Setting, ...] = ()
    left_out: tuple[LeftOut, ...] = ()
    error: DeviceError | None = None

    @property
    def status(self) -> str:
        """`saved`, `unreachable` (worth another try) or `rejected` (key, wrong device)."""
        if self.error is None:
            return "saved"
        return "unreachable" if isinstance(self.error, DeviceUnavailable) else "rejected"


def exit_code(scenes: Sequence[DeviceScene]) -> ExitCode:
    """As for probes: any rejected → FAILED, else any unreachable → UNREACHABLE, else OK."""
    statuses = {s.status for s in scenes}
    if "rejected" in statuses:
        return ExitCode.FAILED
    if "unreachable" in statuses:
        return ExitCode.UNREACHABLE
    return ExitCode.OK


async def save(
    device: DeviceAddress, *, connect_timeout: float = SCENE_CONNECT_TIMEOUT
) -> DeviceScene:
    """Connect, list the entities, read their states; failures are data, not exceptions."""
    from cmdctl.device.states import current_states
    from cmdctl.device.transport import DeviceSession

    session = DeviceSession(device, connect_timeout=connect_timeout, job_timeout=SCENE_JOB_TIMEOUT)
    try:
        await session.connect()
        index = session.index
        states = await current_states(session, index.rows())
    except DeviceError as err:
        return DeviceScene(device.name, error=err)
    finally:
        session.close()
    return scene_of(device.name, session.info.friendly_name, index, states)


async def save_fleet(
    devices: Sequence[DeviceAddress],
    *,
    concurrency: int = SCENE_CONCURRENCY,
    connect_timeout: float = SCENE_CONNECT_TIMEOUT,
    on_result: Callable[[DeviceScene], None] | None = None,
) -> list[DeviceScene]:
    """`save` every device, at most `concurrency` at once; results in the order given."""
    slots = asyncio.Semaphore(max(1, concurrency))

    async def one(device: DeviceAddress) -> DeviceScene:
        async with slots:
            scene = await save(device, connect_timeout=connect_timeout)
        if on_result is not None:
            on_result(scene)
        return scene

    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(one(device)) for device in devices]
    return [task.result() for task in tasks]


def scene_of(
    device: str, friendly_name: str, index: EntityIndex, states: Mapping[Any, Any]
) -> DeviceScene:
    """A device's scene from its entity list and states ((key, device_id) → state).

    Order: switches that were on first, then every other setting by selector, then switches that
    were off: a device that is off (a TV) may ignore what it is told before it is powered.
    """
    rows = index.rows()
    first: list[Setting] = []
    middle: list[Setting] = []
    last: list[Setting] = []
    left: list[LeftOut] = []
    for row, selector in zip(rows, playbook_selectors(rows, index.sub_devices), strict=True):
        domain, _, target = selector.partition(".")
        state = states.get((row.key, row.device_id))
        known = state is not None and not getattr(state, "missing_state", False)
        if domain not in _RESTORED:
            left.append(LeftOut(selector, _not_restored(domain), _lock_state(domain, state)))
            continue
        info = index.resolve(Command(domain, target))
        if domain == "text" and _enum_value(getattr(info, "mode", 0)) == _TEXT_PASSWORD:
            left.append(LeftOut(selector, PASSWORD))
            continue
        if not known:
            left.append(LeftOut(selector, NO_STATE))
            continue
        try:
            args, note = _ARGS[domain](info, state)
        except _Skip as skip:
            left.append(LeftOut(selector, skip.reason, skip.detail))
            continue
        command = Command(domain, target, args)
        try:
            index.plan(command)
        except DeviceRejected as err:
            left.append(LeftOut(selector, REFUSED, err.reason.removeprefix(f"{selector} ")))
            continue
        setting = Setting(command, row.name, note)
        if domain == "switch":
            (first if args["state"] else last).append(setting)
        else:
            middle.append(setting)
    return DeviceScene(device, friendly_name, (*first, *middle, *last), tuple(left))


def _not_restored(domain: str) -> str:
    if domain == "button":
        return BUTTON
    if domain == "action":
        return ACTION
    if domain == "lock":
        return LOCK
    return READ_ONLY if domain in _READ_ONLY_DOMAINS else NO_COMMAND


def _lock_state(domain: str, state: Any) -> str:
    """A lock's state as a word (`locked`), so the person reading the file knows it."""
    if domain != "lock" or state is None:
        return ""
    return _word(getattr(state, "state", None))


# -- state → args, per domain (each returns the args and a note) ---------------------------------

Args = dict[str, JSONValue]


class _Skip(Exception):
    """This entity's state cannot be put back (`reason`: a key of `WHY`)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


def _switch(info: Any, state: Any) -> tuple[Args, str]:
    return {"state": bool(state.state)}, ""


def _number(info: Any, state: Any) -> tuple[Args, str]:
    value = state.state
    if not _finite(value):
        raise _Skip(NO_STATE)
    lo, step = info.min_value, info.step
    if _finite(lo, step) and step > 0:  # float32 noise off: back onto the step grid
        value = lo + round((value - lo) / step) * step
    return {"value": round(float(value), 6)}, ""


def _select(info: Any, state: Any) -> tuple[Args, str]:
    return {"option": state.state}, ""


def _text(info: Any, state: Any) -> tuple[Args, str]:
    return {"value": state.state}, ""


def _light(info: Any, state: Any) -> tuple[Args, str]:
    on = bool(state.state)
    args: Args = {"state": on}
    mode = _enum_value(state.color_mode)
    if not mode:  # no colour mode reported (API < 1.6): whatever the light supports
        mode = 0
        for supported in info.supported_color_modes:
            mode |= _enum_value(supported)
    if mode & _CAP_BRIGHTNESS and _finite(state.brightness):
        args["brightness"] = _round(state.brightness)
    if mode & _CAP_RGB:
        rgb = (state.red, state.green, state.blue)
        if _finite(*rgb) and max(rgb) > 0:
            args["rgb"] = [_round(c) for c in rgb]
        if _finite(state.color_brightness):
            args["color_brightness"] = _round(state.color_brightness)
    if mode & _CAP_WHITE and not mode & _CAP_CWWW and _finite(state.white):
        args["white"] = _round(state.white)
    mireds = state.color_temperature
    if mode & (_CAP_CT | _CAP_CWWW) and _finite(mireds) and mireds > 0 and info.max_mireds > 0:
        args["color_temperature"] = round(float(mireds), 1)
    # An effect is only started on a light that is on (firmware drops it otherwise); "None"
    # stops an effect started since the scene was saved.
    if on and [e for e in info.effects if e.strip().lower() != "none"]:
        args["effect"] = state.effect or "None"
    if mode & _CAP_CWWW:
        return args, "its cold/warm white levels are not put back, its colour temperature is"
    return args, ""


def _cover(info: Any, state: Any) -> tuple[Args, str]:
    args: Args = {"position": _position(info, state)}
    if info.supports_tilt and _finite(state.tilt):
        args["tilt"] = _round(state.tilt)
    return args, _moving(state)


def _valve(info: Any, state: Any) -> tuple[Args, str]:
    return {"position": _position(info, state)}, _moving(state)


def _position(info: Any, state: Any) -> float:
    position = state.position
    if not _finite(position):
        raise _Skip(NO_STATE)
    if not info.supports_position and position not in (0.0, 1.0):
        raise _Skip(REFUSED, f"it was at {position:.0%}; it only opens or closes")
    return _round(position)


def _moving(state: Any) -> str:
    operation = _word(getattr(state, "current_operation", None)).removeprefix("is_")
    return f"it was {operation} when saved" if operation not in ("", "idle") else ""


def _fan(info: Any, state: Any) -> tuple[Args, str]:
    args: Args = {"state": bool(state.state)}
    preset = state.preset_mode
    if preset and preset in info.supported_preset_modes:
        args["preset_mode"] = preset  # firmware clears the preset when told a speed: not both
    elif info.supported_speed_count > 0 and state.speed_level > 0:
        args["speed_level"] = int(state.speed_level)
    if info.supports_oscillation:
        args["oscillating"] = bool(state.oscillating)
    if info.supports_direction:
        args["direction"] = _word(state.direction)
    return args, ""


def _climate(info: Any, state: Any) -> tuple[Args, str]:
    args: Args = {}
    for name, supported in (
        ("mode", info.supported_modes),
        ("fan_mode", info.supported_fan_modes),
        ("swing_mode", info.supported_swing_modes),
        ("preset", info.supported_presets),
    ):
        value = _word(getattr(state, name))
        if value in [_word(m) for m in supported]:
            args[name] = value
    for name, supported in (
        ("custom_fan_mode", info.supported_custom_fan_modes),
        ("custom_preset", info.supported_custom_presets),
    ):
        value = getattr(state, name)
        if value and value in supported:
            args[name] = value
            args.pop(name.removeprefix("custom_"), None)  # the custom one is what is in use
    flags = info.feature_flags
    if not flags and info.supports_two_point_target_temperature:
        flags = _CLIMATE_REQUIRES_TWO_POINT
    names = ["target_temperature"]
    if flags & _CLIMATE_REQUIRES_TWO_POINT:
        names = ["target_temperature_low", "target_temperature_high"]
    elif flags & _CLIMATE_SUPPORTS_TWO_POINT:
        names += ["target_temperature_low", "target_temperature_high"]
    if info.supports_target_humidity:
        names.append("target_humidity")
    for name in names:
        value = getattr(state, name)
        if _finite(value):
            args[name] = _round(value)
    preset = _word(state.preset)
    if info.supported_presets and "preset" not in args and not state.custom_preset:
        # A playbook can only name a preset the device lists; most list no "none".
        return args, f"its preset ({preset or 'none'}) is not put back: the device does not list it"
    return args, ""


def _media_player(info: Any, state: Any) -> tuple[Args, str]:
    flags = info.feature_flags
    args: Args = {}
    if (not flags or flags & _MEDIA_VOLUME_MUTE) and state.muted is not None:
        args["command"] = "mute" if state.muted else "unmute"
    if (not flags or flags & _MEDIA_VOLUME_SET) and _finite(state.volume):
        args["volume"] = _round(state.volume)
    if not args:
        raise _Skip(NO_COMMAND, "no volume or mute")
    playback = _word(state.state)
    if playback in ("playing", "paused", "announcing"):
        return args, f"playback ({playback}) is not put back, only volume and mute"
    return args, ""


_ARGS: dict[str, Callable[[Any, Any], tuple[Args, str]]] = {
    "switch": _switch,
    "number": _number,
    "select": _select,
    "text": _text,
    "light": _light,
    "cover": _cover,
    "valve": _valve,
    "fan": _fan,
    "climate": _climate,
    "media_player": _media_player,
}


def _round(value: float) -> float:
    return round(float(value), _DECIMALS)


def _finite(*values: Any) -> bool:
    return all(
        isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in values
    )


def _enum_value(value: Any) -> int:
    """An enum (or the wire integer the client kept) as its integer."""
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0


def _word(value: Any) -> str:
    """An enum as its lower-case name (`ClimateMode.HEAT_COOL` → `heat_cool`), else ""."""
    name = getattr(value, "name", None)
    return name.lower() if isinstance(name, str) else ""
