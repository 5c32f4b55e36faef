"""Check a command's arguments against its entity before anything is sent.

A real device ignores an invalid value with a log line nobody reads, so every command is checked
against the entity's info first; a failure is `DeviceRejected` with a precise message and, where
one helps, a hint. Each accepted command comes back with its arguments normalised for sending and
the `Expectation` that says it worked. Works on aioesphomeapi info objects by duck typing.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from cmdctl.core.errors import DeviceRejected
from cmdctl.core.model import MEDIA_COMMANDS, JSONValue
from cmdctl.core.secretref import ref_name
from cmdctl.device.expectation import (
    HUMIDITY_TOLERANCE,
    MIREDS_TOLERANCE,
    TEMPERATURE_TOLERANCE,
    UNIT_TOLERANCE,
    Check,
    Expectation,
    fold_effect,
    is_number,
    normalised_rgb,
)

#: The canonical args each domain may carry (docs/architecture.md).
ALLOWED_ARGS: dict[str, frozenset[str]] = {
    domain: frozenset(names.split())
    for domain, names in {
        "switch": "state",
        "light": "state brightness rgb color_brightness white color_temperature effect"
        " transition flash",
        "number": "value",
        "select": "option",
        "button": "",
        "text": "value",
        "cover": "position tilt stop",
        "fan": "state speed_level oscillating direction preset_mode",
        "climate": "mode target_temperature target_temperature_low target_temperature_high"
        " fan_mode swing_mode preset custom_fan_mode custom_preset target_humidity",
        "lock": "command code",
        "valve": "position stop",
        "media_player": "command volume media_url announcement",
        "action": "data",
    }.items()
}

# Light colour capabilities (aioesphomeapi LightColorCapability); a ColorMode value is a mask.
_CAP_BRIGHTNESS = 1 << 1
_CAP_WHITE = 1 << 2
_CAP_COLOR_TEMPERATURE = 1 << 3
_CAP_COLD_WARM_WHITE = 1 << 4
_CAP_RGB = 1 << 5

# Climate feature flags (aioesphomeapi ClimateFeature).
_CLIMATE_SUPPORTS_TWO_POINT = 1 << 1
_CLIMATE_REQUIRES_TWO_POINT = 1 << 2

# Media player feature flags (aioesphomeapi MediaPlayerEntityFeature) a command needs.
_MEDIA_FEATURE = {
    "pause": 1 << 0,
    "volume": 1 << 2,
    "mute": 1 << 3,
    "unmute": 1 << 3,
    "turn_on": 1 << 7,
    "turn_off": 1 << 8,
    "media_url": 1 << 9,
    "volume_up": 1 << 10,
    "volume_down": 1 << 10,
    "stop": 1 << 12,
    "clear_playlist": 1 << 13,
    "play": 1 << 14,
    "repeat_one": 1 << 18,
    "repeat_off": 1 << 18,
    "announcement": 1 << 20,
    "enqueue": 1 << 21,
}

_SINT32 = (-(2**31), 2**31 - 1)


class Validator:
    """Checks one command's args against one entity's info; one method per domain."""

    def __init__(self, device: str, selector: str, info: Any, args: Mapping[str, Any]):
        self.device = device
        self.selector = selector
        self.info = info
        self.args = args

    def fail(self, message: str, *, hint: str | None = None) -> DeviceRejected:
        return DeviceRejected(self.device, f"{self.selector} {message}", hint=hint)

    # -- typed getters ---------------------------------------------------------------------

    def flag(self, name: str) -> bool | None:
        value = self.args.get(name)
        if value is None:
            return None
        if not isinstance(value, bool):
            raise self.fail(f"{name} must be true or false, got {value!r}")
        return value

    def num(self, name: str, lo: float | None = None, hi: float | None = None) -> float | None:
        value = self.args.get(name)
        if value is None:
            return None
        if not is_number(value) or not math.isfinite(value):
            raise self.fail(f"{name} must be a number, got {value!r}")
        value = float(value)
        if lo is not None and hi is not None and not lo - 1e-9 <= value <= hi + 1e-9:
            raise self.fail(f"{name} {value:g} is out of range {lo:g}..{hi:g}")
        return value

    def string(self, name: str) -> str | None:
        value = self.args.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise self.fail(f"{name} must be a string, got {value!r}")
        return value

    def choice(self, name: str, allowed: Sequence[str], what: str) -> str | None:
        """A value that must be one of `allowed` exactly (firmware compares case-sensitively)."""
        value = self.string(name)
        if value is None or value in allowed:
            return value
        listing = ", ".join(allowed) if allowed else "none"
        close = {a.casefold(): a for a in allowed}.get(value.casefold())
        hint = f"did you mean '{close}'?" if close else None
        raise self.fail(f"has no {what} '{value}' ({what}s: {listing})", hint=hint)

    def require(self, supported: bool, what: str) -> None:
        if not supported:
            raise self.fail(f"does not support {what}")

    # -- domains ---------------------------------------------------------------------------

    def do_switch(self) -> tuple[dict[str, Any], Expectation]:
        state = self.flag("state")
        if state is None:
            raise self.fail("needs state: on or off")
        return {"state": state}, Expectation((Check("state", state),))

    def do_button(self) -> tuple[dict[str, Any], None]:
        return {}, None

    def do_select(self) -> tuple[dict[str, Any], Expectation]:
        options = list(self.info.options)
        option = self.string("option")
        if option is None:
            raise self.fail("needs an option")
        if option not in options:
            folded = [o for o in options if o.casefold() == option.casefold()]
            close = folded or difflib.get_close_matches(option, options, n=1, cutoff=0.6)
            hint = f"did you mean '{close[0]}'?" if close else None
            raise self.fail(
                f"has no option '{option}' (options: {', '.join(options) or 'none'})", hint=hint
            )
        return {"option": option}, Expectation((Check("state", option),))

    def do_number(self) -> tuple[dict[str, Any], Expectation]:
        info = self.info
        value = self._number_value()
        lo, hi, step = info.min_value, info.max_value, info.step
        if _finite(lo, hi) and not lo - 1e-9 <= value <= hi + 1e-9:
            raise self.fail(f"value {value:g} is out of range {lo:g}..{hi:g}")
        if _finite(lo, step) and step > 0:
            k = (value - lo) / step
            if abs(k - round(k)) > 1e-6 * max(1.0, abs(k)):
                raise self.fail(
                    f"value {value:g} is not a multiple of the step {step:g} from {lo:g}",
                    hint=f"nearest: {lo + round(k) * step:g}",
                )
        tolerance = max(1e-4, abs(value) * 1e-6)
        return {"value": value}, Expectation((Check("state", value, tolerance),))

    def _number_value(self) -> float:
        value = self.args.get("value")
        if (type(value) is not float and not is_number(value)) or not math.isfinite(value):
            raise self.fail(f"value must be a number, got {value!r}")
        return float(value)

    def do_text(self) -> tuple[dict[str, Any], Expectation | None]:
        value = self.args.get("value")
        if ref_name(value) is not None:  # checked before queueing: the value is not known yet
            return {"value": value}, None
        if not isinstance(value, str):
            raise self.fail(f"value must be a string, got {value!r}")
        info = self.info
        if len(value) < info.min_length:
            raise self.fail(f"'{value}' is {len(value)} characters, min {info.min_length}")
        if info.max_length and len(value) > info.max_length:
            raise self.fail(f"'{value}' is {len(value)} characters, max {info.max_length}")
        if info.pattern:
            try:
                pattern = re.compile(info.pattern)
            except re.error:
                pattern = None  # a JavaScript-only pattern: the frontend's business, not ours
            if pattern is not None and pattern.fullmatch(value) is None:
                raise self.fail(f"'{value}' does not match the pattern {info.pattern}")
        return {"value": value}, Expectation((Check("state", value),))

    def do_light(self) -> tuple[dict[str, Any], Expectation | None]:
        info = self.info
        out: dict[str, Any] = {}
        checks: list[Check] = []
        state = self.flag("state")
        need = 0
        for name, cap in (
            ("brightness", _CAP_BRIGHTNESS),
            ("color_brightness", _CAP_RGB),
            ("white", _CAP_WHITE),
        ):
            value = self.num(name, 0.0, 1.0)
            if value is not None:
                out[name] = value
                need |= cap
        rgb = self.args.get("rgb")
        if rgb is not None:
            ok = isinstance(rgb, list | tuple) and len(rgb) == 3
            if not ok or not all(is_number(c) and 0.0 <= c <= 1.0 for c in rgb):
                raise self.fail(f"rgb must be three numbers in 0..1, got {rgb!r}")
            out["rgb"] = (float(rgb[0]), float(rgb[1]), float(rgb[2]))
            need |= _CAP_RGB
        mireds = self.num("color_temperature")
        if mireds is not None:
            lo, hi = info.min_mireds, info.max_mireds
            if _finite(lo, hi) and hi > 0 and not lo - 1e-6 <= mireds <= hi + 1e-6:
                raise self.fail(f"color_temperature {mireds:g} is out of range {lo:g}..{hi:g}")
            out["color_temperature"] = mireds
            need |= _CAP_COLOR_TEMPERATURE
        self._light_modes(need)
        effect = self.string("effect")
        if effect is not None:
            effects = list(info.effects)
            by_fold = {fold_effect(e): e for e in effects}
            if fold_effect(effect) == "none":
                out["effect"] = "None"
            elif fold_effect(effect) in by_fold:
                out["effect"] = by_fold[fold_effect(effect)]
            else:
                raise self.fail(
                    f"has no effect '{effect}' (effects: {', '.join(effects) or 'none'})"
                )
        for name in ("transition", "flash"):
            seconds = self.num(name)
            if seconds is not None:
                if seconds < 0:
                    raise self.fail(f"{name} must not be negative, got {seconds:g}")
                out[name] = seconds
        if state is not None:
            out["state"] = state
            checks.append(Check("state", state))
        if "flash" in out:
            return out, None  # a flash returns to the previous state by itself
        if state is not False:
            for name, tolerance in (
                ("brightness", UNIT_TOLERANCE),
                ("color_brightness", UNIT_TOLERANCE),
                ("white", UNIT_TOLERANCE),
                ("color_temperature", MIREDS_TOLERANCE),
            ):
                if name in out:
                    checks.append(Check(name, out[name], tolerance))
            if "rgb" in out:
                checks.append(Check("rgb", normalised_rgb(out["rgb"]), UNIT_TOLERANCE))
            if "effect" in out:
                checks.append(Check("effect", fold_effect(out["effect"])))
        return out, Expectation(tuple(checks)) if checks else None

    def _light_modes(self, need: int) -> None:
        modes = list(self.info.supported_color_modes)
        if not need or not modes:
            return  # no modes listed (API < 1.6): the device decides
        if any(int(mode) & need == need for mode in modes):
            return
        if need & _CAP_COLOR_TEMPERATURE and any(
            int(mode) & (need & ~_CAP_COLOR_TEMPERATURE | _CAP_COLD_WARM_WHITE)
            == need & ~_CAP_COLOR_TEMPERATURE | _CAP_COLD_WARM_WHITE
            for mode in modes
        ):
            return  # cold/warm white lights take a colour temperature too
        wanted = [
            name
            for name, cap in (
                ("brightness", _CAP_BRIGHTNESS),
                ("white", _CAP_WHITE),
                ("color_temperature", _CAP_COLOR_TEMPERATURE),
                ("rgb", _CAP_RGB),
            )
            if need & cap
        ]
        listing = ", ".join(getattr(m, "name", str(m)).lower() for m in modes)
        raise self.fail(f"does not support {' + '.join(wanted)} (colour modes: {listing})")

    def do_fan(self) -> tuple[dict[str, Any], Expectation | None]:
        info = self.info
        out: dict[str, Any] = {}
        checks: list[Check] = []
        state = self.flag("state")
        if state is not None:
            out["state"] = state
            checks.append(Check("state", state))
        level = self.args.get("speed_level")
        if level is not None:
            count = info.supported_speed_count
            self.require(count > 0 or info.supports_speed, "speed levels")
            if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= count:
                raise self.fail(f"speed_level must be an integer 0..{count}, got {level!r}")
            out["speed_level"] = level
            if level > 0:  # what a fan reports after speed 0 differs between platforms
                checks.append(Check("speed_level", level))
        oscillating = self.flag("oscillating")
        if oscillating is not None:
            self.require(info.supports_oscillation, "oscillation")
            out["oscillating"] = oscillating
            checks.append(Check("oscillating", oscillating))
        direction = self.string("direction")
        if direction is not None:
            self.require(info.supports_direction, "direction")
            if direction not in ("forward", "reverse"):
                raise self.fail(f"direction must be forward or reverse, got {direction!r}")
            out["direction"] = direction
            checks.append(Check("direction", direction))
        preset = self.choice("preset_mode", list(info.supported_preset_modes), "preset mode")
        if preset is not None:
            out["preset_mode"] = preset
            checks.append(Check("preset_mode", preset))
        if not out:
            raise self.fail("needs state, speed_level, oscillating, direction or preset_mode")
        if state is False:
            checks = [Check("state", False)]
        return out, Expectation(tuple(checks)) if checks else None

    def do_cover(self) -> tuple[dict[str, Any], Expectation | None]:
        info = self.info
        if self.flag("stop"):
            self.require(info.supports_stop, "stop")
            return {"stop": True}, None
        out: dict[str, Any] = {}
        checks: list[Check] = []
        position = self.num("position", 0.0, 1.0)
        if position is not None:
            if position not in (0.0, 1.0):
                self.require(info.supports_position, "positions other than open / close")
            out["position"] = position
            checks.append(Check("position", position, UNIT_TOLERANCE))
        tilt = self.num("tilt", 0.0, 1.0)
        if tilt is not None:
            self.require(info.supports_tilt, "tilt")
            out["tilt"] = tilt
            checks.append(Check("tilt", tilt, UNIT_TOLERANCE))
        if not out:
            raise self.fail("needs position, tilt or stop")
        return out, Expectation(tuple(checks), moves=True)

    def do_valve(self) -> tuple[dict[str, Any], Expectation | None]:
        info = self.info
        if self.flag("stop"):
            self.require(info.supports_stop, "stop")
            return {"stop": True}, None
        position = self.num("position", 0.0, 1.0)
        if position is None:
            raise self.fail("needs position or stop")
        if position not in (0.0, 1.0):
            self.require(info.supports_position, "positions other than open / close")
        check = Check("position", position, UNIT_TOLERANCE)
        return {"position": position}, Expectation((check,), moves=True)

    def do_lock(self) -> tuple[dict[str, Any], Expectation | None]:
        info = self.info
        command = self.string("command")
        if command not in ("lock", "unlock", "open"):
            raise self.fail(f"command must be lock, unlock or open, got {command!r}")
        if command == "open":
            self.require(info.supports_open, "open")
        out: dict[str, Any] = {"command": command}
        code = self.args.get("code")
        if ref_name(code) is not None:  # checked before queueing: the value is not known yet
            out["code"] = code
        elif code is not None:
            code = str(code)
            if info.code_format:
                try:
                    pattern = re.compile(info.code_format)
                except re.error:
                    pattern = None
                if pattern is not None and pattern.fullmatch(code) is None:
                    raise self.fail("code does not match the lock's code format")
            out["code"] = code
        elif info.requires_code:
            raise self.fail("requires a code")
        if command == "open":
            return out, None  # after "open" a lock reports open, unlocked or locked again
        want = "locked" if command == "lock" else "unlocked"
        return out, Expectation((Check("state", want),))

    def do_climate(self) -> tuple[dict[str, Any], Expectation | None]:
        info = self.info
        out: dict[str, Any] = {}
        checks: list[Check] = []
        for name, attr, what in (
            ("mode", "supported_modes", "mode"),
            ("fan_mode", "supported_fan_modes", "fan mode"),
            ("swing_mode", "supported_swing_modes", "swing mode"),
            ("preset", "supported_presets", "preset"),
        ):
            if name in self.args:
                names = [m.name.lower() for m in getattr(info, attr)]
                value = self.choice(name, names, what)
                out[name] = value
                checks.append(Check(name, value))
        for name, attr, what in (
            ("custom_fan_mode", "supported_custom_fan_modes", "custom fan mode"),
            ("custom_preset", "supported_custom_presets", "custom preset"),
        ):
            if name in self.args:
                custom = self.choice(name, list(getattr(info, attr)), what)
                out[name] = custom
                checks.append(Check(name, custom))
        flags = info.feature_flags
        if not flags and info.supports_two_point_target_temperature:
            flags = _CLIMATE_REQUIRES_TWO_POINT
        lo, hi = info.visual_min_temperature, info.visual_max_temperature
        bounds = (lo, hi) if _finite(lo, hi) and hi > lo else (None, None)
        single = self.num("target_temperature", *bounds)
        if single is not None:
            if flags & _CLIMATE_REQUIRES_TWO_POINT:
                raise self.fail(
                    "takes target_temperature_low / target_temperature_high, not target_temperature"
                )
            out["target_temperature"] = single
            checks.append(Check("target_temperature", single, TEMPERATURE_TOLERANCE))
        for name in ("target_temperature_low", "target_temperature_high"):
            temperature = self.num(name, *bounds)
            if temperature is not None:
                two_point = _CLIMATE_SUPPORTS_TWO_POINT | _CLIMATE_REQUIRES_TWO_POINT
                self.require(bool(flags & two_point), "two-point target temperatures")
                out[name] = temperature
                checks.append(Check(name, temperature, TEMPERATURE_TOLERANCE))
        low, high = out.get("target_temperature_low"), out.get("target_temperature_high")
        if low is not None and high is not None and low > high:
            raise self.fail(f"target_temperature_low {low:g} is above the high {high:g}")
        if "target_humidity" in self.args:
            self.require(info.supports_target_humidity, "a target humidity")
            hlo, hhi = info.visual_min_humidity, info.visual_max_humidity
            hbounds = (hlo, hhi) if _finite(hlo, hhi) and hhi > hlo else (None, None)
            humidity = self.num("target_humidity", *hbounds)
            out["target_humidity"] = humidity
            checks.append(Check("target_humidity", humidity, HUMIDITY_TOLERANCE))
        if not out:
            raise self.fail("needs at least one of mode, target_temperature, fan_mode, …")
        return out, Expectation(tuple(checks))

    def do_media_player(self) -> tuple[dict[str, Any], Expectation | None]:
        info = self.info
        flags = info.feature_flags
        out: dict[str, Any] = {}
        checks: list[Check] = []
        command = self.string("command")
        if command is not None:
            if command not in MEDIA_COMMANDS:
                raise self.fail(
                    f"has no command '{command}' (commands: {', '.join(MEDIA_COMMANDS)})"
                )
            if command == "pause" and not flags:
                self.require(info.supports_pause, "pause")
            self._media_feature(flags, command)
            out["command"] = command
            want: dict[str, tuple[str, Any]] = {
                "pause": ("state", "paused"),
                "turn_off": ("state", "off"),
                "mute": ("muted", True),
                "unmute": ("muted", False),
            }
            if command in want:
                checks.append(Check(*want[command]))
        volume = self.num("volume", 0.0, 1.0)
        if volume is not None:
            self._media_feature(flags, "volume")
            out["volume"] = volume
            checks.append(Check("volume", volume, UNIT_TOLERANCE))
        url = self.string("media_url")
        if url is not None:
            self._media_feature(flags, "media_url")
            out["media_url"] = url
            checks = []  # playing a URL: the state depends on the stream, nothing to confirm
        announcement = self.flag("announcement")
        if announcement is not None:
            if url is None:
                raise self.fail("announcement needs a media_url")
            if announcement:
                self._media_feature(flags, "announcement")
            out["announcement"] = announcement
        if not out:
            raise self.fail("needs a command, volume or media_url")
        return out, Expectation(tuple(checks)) if checks else None

    def _media_feature(self, flags: int, what: str) -> None:
        bit = _MEDIA_FEATURE.get(what)
        if flags and bit and not flags & bit:
            raise self.fail(f"does not support {what.replace('_', ' ')}")

    def do_action(self) -> tuple[dict[str, Any], None]:
        data = self.args.get("data", {})
        if not isinstance(data, Mapping):
            raise self.fail(f"data must be a mapping of argument names, got {data!r}")
        declared = {arg.name: arg for arg in self.info.args}
        extra = sorted(set(data) - set(declared))
        if extra:
            listing = ", ".join(declared) or "none"
            raise self.fail(f"has no argument {', '.join(map(repr, extra))} (arguments: {listing})")
        out: dict[str, Any] = {}
        for name, arg in declared.items():
            kind = getattr(arg.type, "name", None)
            if kind is None:
                raise self.fail(f"argument '{name}' has a type cmdctl does not know")
            kind = kind.lower()
            if name not in data:
                if not arg.optional:
                    raise self.fail(f"needs argument '{name}' ({_type_word(kind)})")
                out[name] = _default(kind, arg.default_value)
                continue
            out[name] = self._convert(name, kind, data[name])
        return {"data": out}, None

    def _convert(self, name: str, kind: str, value: JSONValue) -> Any:
        if kind.endswith("_array"):
            if not isinstance(value, list | tuple):
                raise self.fail(f"argument '{name}' must be a list ({_type_word(kind)})")
            element = kind.removesuffix("_array")
            return [self._convert(f"{name}[{i}]", element, v) for i, v in enumerate(value)]
        word = _type_word(kind)
        if ref_name(value) is not None:  # checked before queueing: the value is not known yet
            if kind == "string":
                return value
            raise self.fail(f"argument '{name}' must be {word}; a !secret is text")
        if kind == "bool" and isinstance(value, bool):
            return value
        if kind == "int" and is_number(value) and float(value).is_integer():
            if not _SINT32[0] <= value <= _SINT32[1]:
                raise self.fail(f"argument '{name}' {value} does not fit in a 32-bit integer")
            return int(value)
        if kind == "float" and is_number(value) and math.isfinite(value):
            return float(value)
        if kind == "string" and isinstance(value, str):
            return value
        hint = f"quote it: '{value}'" if kind == "string" and is_number(value) else None
        raise self.fail(f"argument '{name}' must be {word}, got {value!r}", hint=hint)


def _type_word(kind: str) -> str:
    if kind.endswith("_array"):
        return f"a list of {_type_word(kind.removesuffix('_array'))}s"
    return {"bool": "true or false", "int": "an integer", "float": "a number"}.get(kind, "a string")


def _default(kind: str, text: str) -> Any:
    """An optional argument's declared default (or the type's zero value)."""
    if kind.endswith("_array"):
        return []
    try:
        if kind == "bool":
            return text.strip().lower() in ("true", "1", "yes", "on")
        if kind == "int":
            return int(text) if text else 0
        if kind == "float":
            return float(text) if text else 0.0
    except ValueError:
        return 0 if kind == "int" else 0.0
    return text



def _finite(*values: float) -> bool:
    for v in values:
        if type(v) is not float and not is_number(v):  # floats first: what entity infos hold
            return False
        if not math.isfinite(v):
            return False
    return True
