"""A step value (`on`, `HDMI 1`, `{state: on, brightness: 0.4}`) → canonical `Command`.

The canonical arguments per domain are the table in docs/architecture.md. Only device-independent
checks live here (types, 0..1 ranges, enum names); the execution layer checks the rest against
the device's own entity list.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from typing import Any

from cmdctl.core.errors import InputError
from cmdctl.core.model import DOMAINS, MEDIA_COMMANDS, Command, JSONValue
from cmdctl.core.secretref import SecretRef
from cmdctl.core.timespec import format_duration, parse_duration
from cmdctl.inputs import yamlsrc

Path_ = tuple[str | int, ...]

CLIMATE_MODES = ("off", "heat_cool", "cool", "heat", "fan_only", "dry", "auto")
CLIMATE_FAN_MODES = (
    "on", "off", "auto", "low", "medium", "high", "middle", "focus", "diffuse", "quiet",
)  # fmt: skip
CLIMATE_SWING_MODES = ("off", "both", "vertical", "horizontal")
CLIMATE_PRESETS = ("none", "home", "away", "boost", "comfort", "eco", "sleep", "activity")
LOCK_COMMANDS = ("lock", "unlock", "open")
# Repeating these changes the outcome, so they must never be repeated automatically: a second
# `enqueue` queues the media twice; a lock's `open` (unlatch) is a press, not a state.
NON_IDEMPOTENT_MEDIA = frozenset({"volume_up", "volume_down", "toggle", "enqueue"})
NON_IDEMPOTENT_LOCK = frozenset({"open"})

_TARGET = re.compile(r"\S(?:.*\S)?")
_ACTION = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PERCENT = re.compile(r"\s*(\d+(?:\.\d+)?)\s*%\s*")
_HEX_RGB = re.compile(r"#([0-9a-fA-F]{6})")
_ON = {"on": True, "true": True, "off": False, "false": False}


class CommandValueError(InputError):
    """A value that does not fit its domain; `path` leads to the offending part of the value.

    `at_key` says the mapping key at the end of `path` is what is wrong (an unknown field).
    """

    def __init__(
        self, message: str, *, path: Path_ = (), hint: str | None = None, at_key: bool = False
    ) -> None:
        super().__init__(message, hint=hint)
        self.path = path
        self.at_key = at_key


def parse_selector(selector: str) -> tuple[str, str]:
    """`switch.tv_power` → (`switch`, `tv_power`), with a did-you-mean for unknown domains."""
    domain, dot, target = selector.partition(".")
    if not dot or not target:
        raise InputError(
            f"{selector!r} is not an entity selector",
            hint="write DOMAIN.ENTITY, like switch.tv_power or select.input",
        )
    if domain not in DOMAINS:
        raise InputError(
            f"unknown domain {domain!r} in {selector!r}",
            hint=yamlsrc.did_you_mean(domain, DOMAINS) or f"domains: {', '.join(DOMAINS)}",
        )
    check_target(domain, target)
    return domain, target


def check_target(domain: str, target: str) -> None:
    """Refuse an empty or badly spaced entity (or action) name."""
    pattern = _ACTION if domain == "action" else _TARGET
    if not pattern.fullmatch(target):
        what = "action name" if domain == "action" else "entity name"
        raise InputError(f"bad {what} {target!r} for {domain}")


def parse_command(domain: str, target: str, value: Any) -> Command:
    """The canonical command for `domain.target: value`; `CommandValueError` if it does not fit."""
    if domain not in DOMAINS:
        raise InputError(f"unknown domain {domain!r}", hint=yamlsrc.did_you_mean(domain, DOMAINS))
    check_target(domain, target)
    _check_secrets(domain, value, ())
    return Command(domain, target, _PARSERS[domain](value))


def parse_cli_value(domain: str, target: str, text: str) -> Command:
    """`cmdctl send DEVICE ENTITY VALUE`: VALUE is read as YAML, so `on`, `30`, `{state: on}` work.

    For `select` and `text` the words are taken as written unless quoted (`206` stays "206").
    """
    node = yamlsrc.load_text(text, "<command line>", allow_secret=True, max_alias_nodes=1_000)
    value = node.plain if node is not None else None
    if domain in ("select", "text") and not isinstance(value, str | SecretRef):
        value = text
    return parse_command(domain, target, value)


def idempotent_default(command: Command) -> bool:
    """False for commands whose repetition changes the outcome (presses, volume steps, enqueue,
    a lock's open)."""
    if command.domain == "button":
        return False
    if command.domain == "media_player":
        return command.args.get("command") not in NON_IDEMPOTENT_MEDIA
    if command.domain == "lock":
        return command.args.get("command") not in NON_IDEMPOTENT_LOCK
    return True


# --- secret arguments --------------------------------------------------------------------

#: Where `!secret NAME` may stand, as the hint says it.
SECRET_PLACES = "a lock's code, a text value or an action's data argument"


def _secret_fits(domain: str, path: Path_) -> bool:
    if domain == "lock":
        return path == ("code",)
    if domain == "text":
        return path == ()
    return domain == "action" and len(path) == 1  # a data argument itself, not inside a list


def _check_secrets(domain: str, value: Any, path: Path_) -> None:
    """Refuse a `SecretRef` where a secret makes no sense (`switch.x: !secret a`)."""
    if isinstance(value, SecretRef):
        if not _secret_fits(domain, path):
            a = "an" if domain[0] in "aeiou" else "a"
            where = f"{a} {domain} value"
            if path:
                where = "in a list" if isinstance(path[-1], int) else f"{path[-1]} of {a} {domain}"
            raise CommandValueError(
                f"{value} cannot be {where}", path=path, hint=f"a secret can be {SECRET_PLACES}"
            )
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_secrets(domain, item, (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_secrets(domain, item, (*path, i))


# --- per-domain parsers ------------------------------------------------------------------


def _shown(value: Any) -> str:
    if isinstance(value, SecretRef):
        return str(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "nothing"
    return repr(value)


def _on_off(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        return _ON.get(value.strip().lower())
    return None


def _switch(value: Any) -> dict[str, JSONValue]:
    state = _on_off(value)
    if state is None:
        raise CommandValueError(f"a switch takes on or off, not {_shown(value)}")
    return {"state": state}


def _number(value: Any) -> dict[str, JSONValue]:
    return {"value": _real(value, (), "a number")}


def _select(value: Any) -> dict[str, JSONValue]:
    return {"option": _string(value, (), "a select option", empty=False)}


def _text(value: Any) -> dict[str, JSONValue]:
    return {"value": _string(value, (), "a text value", empty=True)}


def _button(value: Any) -> dict[str, JSONValue]:
    if value is None or value is True or (isinstance(value, str) and value.strip() == "press"):
        return {}
    raise CommandValueError(f"a button takes press, not {_shown(value)}")


def _light(value: Any) -> dict[str, JSONValue]:
    state = _on_off(value)
    if state is not None:
        return {"state": state}
    fields: dict[str, Callable[[Any, Path_], JSONValue]] = {
        "state": lambda v, p: _flag(v, p, "state"),
        "brightness": lambda v, p: _fraction(v, p, "brightness"),
        "color_brightness": lambda v, p: _fraction(v, p, "color_brightness"),
        "white": lambda v, p: _fraction(v, p, "white"),
        "rgb": _rgb,
        "color_temperature": lambda v, p: _positive(v, p, "color_temperature (mireds)"),
        "effect": lambda v, p: _string(v, p, "effect", empty=False),
        "transition": lambda v, p: _seconds(v, p, "transition"),
        "flash": lambda v, p: _seconds(v, p, "flash"),
    }
    return _fields(value, fields, "a light takes on, off or a mapping")


def _cover(value: Any) -> dict[str, JSONValue]:
    return _positioned(value, "cover", ("position", "tilt", "stop"))


def _valve(value: Any) -> dict[str, JSONValue]:
    return _positioned(value, "valve", ("position", "stop"))


def _positioned(value: Any, domain: str, keys: tuple[str, ...]) -> dict[str, JSONValue]:
    if isinstance(value, str):
        word = value.strip().lower()
        if word == "open":
            return {"position": 1.0}
        if word == "close":
            return {"position": 0.0}
        if word == "stop":
            return {"stop": True}
    fields: dict[str, Callable[[Any, Path_], JSONValue]] = {
        "position": lambda v, p: _fraction(v, p, "position"),
        "tilt": lambda v, p: _fraction(v, p, "tilt"),
        "stop": _stop,
    }
    args = _fields(
        value,
        {key: fields[key] for key in keys},
        f"a {domain} takes open, close, stop or a mapping",
    )
    if "stop" in args and len(args) > 1:
        raise CommandValueError(f"a {domain} cannot stop and move in one command", path=("stop",))
    return args


def _stop(value: Any, path: Path_) -> JSONValue:
    if value is True:
        return True
    raise CommandValueError(f"stop must be true, not {_shown(value)}", path=path)


def _fan(value: Any) -> dict[str, JSONValue]:
    state = _on_off(value)
    if state is not None:
        return {"state": state}
    fields: dict[str, Callable[[Any, Path_], JSONValue]] = {
        "state": lambda v, p: _flag(v, p, "state"),
        "speed_level": lambda v, p: _whole(v, p, "speed_level", low=0, high=1000),
        "oscillating": lambda v, p: _flag(v, p, "oscillating"),
        "direction": lambda v, p: _choice(v, p, "direction", ("forward", "reverse")),
        "preset_mode": lambda v, p: _string(v, p, "preset_mode", empty=False),
    }
    return _fields(value, fields, "a fan takes on, off or a mapping")


def _climate(value: Any) -> dict[str, JSONValue]:
    if isinstance(value, str) or value is False:
        return {"mode": _choice(value, (), "climate mode", CLIMATE_MODES)}
    fields: dict[str, Callable[[Any, Path_], JSONValue]] = {
        "mode": lambda v, p: _choice(v, p, "mode", CLIMATE_MODES),
        "target_temperature": lambda v, p: _real(v, p, "target_temperature"),
        "target_temperature_low": lambda v, p: _real(v, p, "target_temperature_low"),
        "target_temperature_high": lambda v, p: _real(v, p, "target_temperature_high"),
        "fan_mode": lambda v, p: _choice(v, p, "fan_mode", CLIMATE_FAN_MODES),
        "swing_mode": lambda v, p: _choice(v, p, "swing_mode", CLIMATE_SWING_MODES),
        "preset": lambda v, p: _choice(v, p, "preset", CLIMATE_PRESETS),
        "custom_fan_mode": lambda v, p: _string(v, p, "custom_fan_mode", empty=False),
        "custom_preset": lambda v, p: _string(v, p, "custom_preset", empty=False),
        "target_humidity": lambda v, p: _ranged(v, p, "target_humidity (%)", 0.0, 100.0),
    }
    return _fields(value, fields, "a climate takes a mode or a mapping")


def _lock(value: Any) -> dict[str, JSONValue]:
    if isinstance(value, str):
        return {"command": _choice(value, (), "lock command", LOCK_COMMANDS)}
    fields: dict[str, Callable[[Any, Path_], JSONValue]] = {
        "command": lambda v, p: _choice(v, p, "command", LOCK_COMMANDS),
        "code": lambda v, p: _string(v, p, "code (quote it)", empty=False),
    }
    args = _fields(value, fields, "a lock takes lock, unlock, open or a mapping")
    if "command" not in args:
        raise CommandValueError("a lock mapping needs a command: lock, unlock or open")
    return args


def _media_player(value: Any) -> dict[str, JSONValue]:
    if isinstance(value, str):
        return {"command": _choice(value, (), "media_player command", MEDIA_COMMANDS)}
    fields: dict[str, Callable[[Any, Path_], JSONValue]] = {
        "command": lambda v, p: _choice(v, p, "command", MEDIA_COMMANDS),
        "volume": lambda v, p: _fraction(v, p, "volume"),
        "media_url": lambda v, p: _string(v, p, "media_url", empty=False),
        "announcement": lambda v, p: _flag(v, p, "announcement"),
    }
    return _fields(value, fields, "a media_player takes a command or a mapping")


def _action(value: Any) -> dict[str, JSONValue]:
    if value is None:
        return {"data": {}}
    if not isinstance(value, dict):
        raise CommandValueError(f"action data must be a mapping, not {_shown(value)}")
    data: dict[str, JSONValue] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not _ACTION.fullmatch(key):
            raise CommandValueError(f"bad action argument name {key!r}", path=(key,), at_key=True)
        data[key] = _action_value(item, (key,))
    return {"data": data}


def _action_value(value: Any, path: Path_) -> JSONValue:
    # ESPHome user actions take bool, int, float, string, or lists of one of those.
    if isinstance(value, list):
        return [_action_scalar(item, (*path, i)) for i, item in enumerate(value)]
    return _action_scalar(value, path)


def _action_scalar(value: Any, path: Path_) -> JSONValue:
    if isinstance(value, SecretRef):
        return value.marker()
    if isinstance(value, float) and not math.isfinite(value):
        raise CommandValueError(f"{path[0]} must be a finite number", path=path)
    if isinstance(value, str | int | float | bool):
        return value
    raise CommandValueError(
        f"action argument {path[0]} must be text, a number, true/false or a list of those,"
        f" not {_shown(value)}",
        path=path,
    )


_PARSERS: dict[str, Callable[[Any], dict[str, JSONValue]]] = {
    "switch": _switch,
    "light": _light,
    "number": _number,
    "select": _select,
    "button": _button,
    "text": _text,
    "cover": _cover,
    "fan": _fan,
    "climate": _climate,
    "lock": _lock,
    "valve": _valve,
    "media_player": _media_player,
    "action": _action,
}


# --- field checks ------------------------------------------------------------------------


def _fields(
    value: Any, fields: Mapping[str, Callable[[Any, Path_], JSONValue]], expected: str
) -> dict[str, JSONValue]:
    if not isinstance(value, dict):
        raise CommandValueError(f"{expected}, not {_shown(value)}")
    if not value:
        raise CommandValueError(f"{expected}; this mapping is empty")
    args: dict[str, JSONValue] = {}
    for key, item in value.items():
        if key not in fields:
            raise CommandValueError(
                f"unknown field {key!r}",
                path=(key,),
                at_key=True,
                hint=yamlsrc.did_you_mean(str(key), fields) or f"fields: {', '.join(fields)}",
            )
        args[key] = fields[key](item, (key,))
    return args


def _flag(value: Any, path: Path_, what: str) -> bool:
    state = _on_off(value)
    if state is None:
        raise CommandValueError(
            f"{what} must be on/off or true/false, not {_shown(value)}", path=path
        )
    return state


def _real(value: Any, path: Path_, what: str) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise CommandValueError(f"{what} must be a number, not {_shown(value)}", path=path)


def _ranged(value: Any, path: Path_, what: str, low: float, high: float) -> float:
    number = _real(value, path, what)
    if not low <= number <= high:
        raise CommandValueError(
            f"{what} must be between {low:g} and {high:g}, not {number:g}", path=path
        )
    return number


def _positive(value: Any, path: Path_, what: str) -> float:
    number = _real(value, path, what)
    if number <= 0:
        raise CommandValueError(f"{what} must be more than 0, not {number:g}", path=path)
    return number


def _whole(value: Any, path: Path_, what: str, *, low: int, high: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and low <= value <= high:
        return value
    raise CommandValueError(
        f"{what} must be a whole number {low}..{high}, not {_shown(value)}", path=path
    )


def _fraction(value: Any, path: Path_, what: str) -> float:
    if isinstance(value, str):
        match = _PERCENT.fullmatch(value)
        if match is None:
            raise CommandValueError(
                f"{what} must be 0..1 or a percentage, not {value!r}",
                path=path,
                hint='like 0.4 or "40%"',
            )
        share = float(match.group(1)) / 100
        if share > 1:
            raise CommandValueError(f"{what} must be at most 100%", path=path)
        return share
    number = _real(value, path, what)
    if not 0.0 <= number <= 1.0:
        raise CommandValueError(
            f"{what} must be between 0 and 1, not {number:g}", path=path, hint='like 0.4 or "40%"'
        )
    return number


def _rgb(value: Any, path: Path_) -> JSONValue:
    if isinstance(value, str):
        match = _HEX_RGB.fullmatch(value.strip())
        if match is None:
            raise CommandValueError(f'rgb must be "#rrggbb" or [r, g, b], not {value!r}', path=path)
        digits = match.group(1)
        return [round(int(digits[i : i + 2], 16) / 255, 4) for i in (0, 2, 4)]
    if isinstance(value, list) and len(value) == 3:
        return [_fraction(item, (*path, i), "each rgb component") for i, item in enumerate(value)]
    raise CommandValueError(
        f'rgb must be "#rrggbb" or [r, g, b] in 0..1, not {_shown(value)}', path=path
    )


#: The longest light transition or flash the native API can carry: uint32 milliseconds.
MAX_LIGHT_SECONDS = (2**32 - 1) / 1000


def _seconds(value: Any, path: Path_, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise CommandValueError(f"{what} must be a duration, not {_shown(value)}", path=path)
    try:
        seconds = parse_duration(value)
    except InputError as err:
        raise CommandValueError(f"{what}: {err.message}", path=path, hint=err.hint) from None
    if seconds > MAX_LIGHT_SECONDS:
        raise CommandValueError(
            f"{what} {_shown(value)} is longer than a device can be told "
            f"({format_duration(MAX_LIGHT_SECONDS)})",
            path=path,
            hint="the ESPHome API carries it in milliseconds, at most 2^32 - 1",
        )
    return seconds


def _string(value: Any, path: Path_, what: str, *, empty: bool) -> JSONValue:
    if isinstance(value, SecretRef):  # _check_secrets let it stand only where one fits
        return value.marker()
    if isinstance(value, str) and (empty or value.strip()):
        return value
    if isinstance(value, str):
        raise CommandValueError(f"{what} must not be empty", path=path)
    hint = "quote it" if isinstance(value, bool | int | float) else None
    raise CommandValueError(f"{what} must be text, not {_shown(value)}", path=path, hint=hint)


def _choice(value: Any, path: Path_, what: str, choices: tuple[str, ...]) -> str:
    if isinstance(value, bool):  # YAML reads on/off as booleans
        value = "on" if value else "off"
    if isinstance(value, str):
        word = value.strip().lower()
        if word in choices:
            return word
        hint = yamlsrc.did_you_mean(word, choices) or f"one of: {', '.join(choices)}"
        raise CommandValueError(f"unknown {what} {value!r}", path=path, hint=hint)
    raise CommandValueError(
        f"{what} must be one of {', '.join(choices)}, not {_shown(value)}", path=path
    )
