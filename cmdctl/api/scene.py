"""`Scene`: the saved state of some devices, and the playbook text that puts it back.

The playbook is an ordinary one (`cmdctl validate` / `bulk` take it as it is): one step per
entity per device, each with `targets:` its device and a `name:` saying both, so a person can
read it, delete a line or change a value. Comments say when and from where it was saved, how to
restore it, and per device what was left out and why. Values are written the way a person
writes them (`on`, `open`, `"HDMI 1"`, `"#ff8000"`); strings are always quoted, so that no
option or text changes meaning in YAML (`"on"`, `"1.10"`, `"yes"` stay text).
"""

from __future__ import annotations

import json
import re
import time
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cmdctl.core.errors import ExitCode
from cmdctl.core.model import Command, JSONValue
from cmdctl.core.version import __version__
from cmdctl.device import scene as device_scene
from cmdctl.device.scene import DeviceScene, LeftOut

#: The playbook's fleet keys, and why (README: Scenes).
PRIORITY = "high"  # a restore is asked for by a person who wants the room back now
EXPIRES = "+1h"  # counted from `bulk`: a device away for longer is not reset later by surprise
ATTEMPTS = 3  # the playbook default: a device that drops a command gets it again
# rgb components are kept to this many decimals (device.scene rounds states so).
_DECIMALS = 4
#: Comment lines are wrapped here (the file is read in 80-column terminals too).
WIDTH = 79

# A word that YAML reads as itself, as a string: lower-case enum names (heat_cool, forward).
_PLAIN = re.compile(r"[a-z][a-z0-9_]*")
# A step name YAML reads as the same string: a device name, one space, an entity (never a
# number, a boolean or a key: value pair).
_STEP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]* [a-z0-9_][a-z0-9_./-]*")
# YAML 1.1 words that are not strings (PyYAML reads `on` as true, `null` as None).
_YAML_WORDS = frozenset(
    ["y", "n", "yes", "no", "on", "off", "true", "false", "null"]
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Scene:
    """What `scene save` read: every selected device, saved or with its error."""

    pattern: str
    taken_at: float  # epoch seconds
    devices: tuple[DeviceScene, ...]

    @property
    def saved(self) -> tuple[DeviceScene, ...]:
        """The devices that were read."""
        return tuple(d for d in self.devices if d.error is None)

    @property
    def failed(self) -> tuple[DeviceScene, ...]:
        """The devices that could not be read (unreachable or refused us)."""
        return tuple(d for d in self.devices if d.error is not None)

    @property
    def count(self) -> int:
        """Settings (steps) across the saved devices."""
        return sum(len(d.settings) for d in self.devices)

    @property
    def exit_code(self) -> ExitCode:
        """As for `devices probe`: 1 if a device refused us, else 4 if one was unreachable."""
        return device_scene.exit_code(self.devices)

    def playbook(self, path: str = "SCENE.yml") -> str:
        """The playbook text that restores the saved devices; `path` is named in its header.

        ValueError when there is nothing to restore (no settings: a playbook needs steps).
        """
        if not self.count:
            raise ValueError("nothing to restore: the scene has no settings")
        return "\n".join(_lines(self, path)) + "\n"


def _lines(scene: Scene, path: str) -> Iterable[str]:
    saved = [d for d in scene.saved if d.settings]
    when = time.strftime("%Y-%m-%d %H:%M:%S %z", time.localtime(scene.taken_at))
    names = ", ".join(d.device for d in scene.saved)
    yield from _comment(
        f"Scene saved by cmdctl {__version__} at {when} from "
        f"{_plural(len(scene.saved), 'device')} ({scene.pattern!r}): {names}."
    )
    for down in scene.failed:
        reason = down.error.reason if down.error is not None else ""
        yield from _comment(f"NOT SAVED: {down.device} ({down.status}: {reason}).")
    command = f"cmdctl bulk {_shell_word(path)}"
    yield from _comment(
        f"Restore: {command} (queued; a drain or `cmdctl run` sends it). "
        f"Preview: {command} --check --online"
    )
    yield from _comment("One step per setting; edit a value, reorder or delete steps as you like.")
    yield f"name: {_string(f'Scene {scene.pattern} {when[:16]}')}"
    yield f"targets: [{', '.join(_key(d.device) for d in saved)}]"
    yield f"priority: {PRIORITY}  # a person asking for the room back wants it now"
    yield f'expires: "{EXPIRES}"  # from `bulk`: not put back hours later by surprise'
    yield "defaults:"
    yield f"  attempts: {ATTEMPTS}"
    yield "  verify: true  # each setting is confirmed against what the device reports"
    yield "steps:"
    for device in scene.saved:
        yield from _device(device)


def _device(device: DeviceScene) -> Iterable[str]:
    named = device.friendly_name and device.friendly_name != device.device
    friendly = f" ({device.friendly_name})" if named else ""
    count = _plural(len(device.settings), "setting")
    by_reason: dict[str, list[LeftOut]] = {}
    for item in device.left_out:
        by_reason.setdefault(item.reason, []).append(item)
    yield ""
    tail = "; left out:" if by_reason else ""
    yield from _comment(f"{device.device}{friendly}: {count}{tail}", indent="  ")
    for reason, items in by_reason.items():
        shown = ", ".join(i.selector + (f" ({i.detail})" if i.detail else "") for i in items)
        yield from _comment(f"  {device_scene.WHY[reason]}: {shown}", indent="  ", more="    ")
    for setting, name in zip(device.settings, _step_names(device), strict=True):
        if setting.note:
            yield from _comment(f"{setting.command.selector}: {setting.note}", indent="  ")
        yield f"  - name: {name if _STEP_NAME.fullmatch(name) else _string(name)}"
        yield f"    targets: {_key(device.device)}"
        yield from _command(setting.command, indent="    ")


def _command(command: Command, *, indent: str) -> Iterable[str]:
    """`selector: value` on one line, or a mapping's fields one per line when that is long."""
    line = f"{indent}{command.selector}: {value(command)}"
    if len(line) <= WIDTH or not isinstance(command.args, Mapping) or len(command.args) < 2:
        yield line
        return
    yield f"{indent}{command.selector}:"
    for key, item in command.args.items():
        yield f"{indent}  {key}: {_field(key, item)}"


def _step_names(device: DeviceScene) -> list[str]:
    """`bar-tv-1 volume`; `bar-tv-1 number.volume` where two domains share the entity id."""
    targets = [s.command.target for s in device.settings]
    return [
        f"{device.device} "
        + (s.command.selector if targets.count(s.command.target) > 1 else s.command.target)
        for s in device.settings
    ]


# -- values ---------------------------------------------------------------------------------------


def value(command: Command) -> str:
    """A command's canonical args as a playbook writes them (`on`, `{position: 0.4}`)."""
    args = command.args
    match command.domain:
        case "switch":
            return _on_off(args["state"])
        case "number":
            return _number(args["value"])
        case "select":
            return _text(args["option"])
        case "text":
            return _text(args["value"])
        case "cover" | "valve" if set(args) == {"position"} and args["position"] in (0.0, 1.0):
            return "open" if args["position"] == 1.0 else "close"
        case "light" | "fan" if set(args) == {"state"}:
            return _on_off(args["state"])
    return _mapping(args)


def _mapping(args: Mapping[str, JSONValue]) -> str:
    parts = [f"{key}: {_field(key, item)}" for key, item in args.items()]
    return "{" + ", ".join(parts) + "}"


def _field(key: str, item: JSONValue) -> str:
    if key == "state" and isinstance(item, bool):
        return _on_off(item)
    if key == "rgb" and isinstance(item, list):
        return _rgb([_fraction(c) for c in item])
    if isinstance(item, bool):
        return "true" if item else "false"
    if isinstance(item, int | float):
        return _number(item)
    if isinstance(item, str):
        return item if _PLAIN.fullmatch(item) and item not in _YAML_WORDS else _text(item)
    return _text(json.dumps(item))  # not produced by device.scene; kept readable if it were


def _rgb(rgb: list[float]) -> str:
    """`"#ff8000"` when that is exact (to the 4 decimals a scene keeps), else `[1, 0.5, 0]`."""
    levels = [round(c * 255) for c in rgb]
    if all(round(level / 255, _DECIMALS) == c for level, c in zip(levels, rgb, strict=True)):
        return _string("#" + "".join(f"{level:02x}" for level in levels))
    return "[" + ", ".join(_number(c) for c in rgb) + "]"


def _fraction(item: JSONValue) -> float:
    assert isinstance(item, int | float) and not isinstance(item, bool)
    return min(1.0, max(0.0, float(item)))


def _on_off(state: JSONValue) -> str:
    return "on" if state else "off"


def _number(number: JSONValue) -> str:
    """Fixed-point (YAML 1.1 reads `1e-05` as a string), integers without `.0`."""
    assert isinstance(number, int | float) and not isinstance(number, bool)
    if float(number).is_integer() and abs(number) < 1e15:
        return str(int(number))
    return f"{number:.6f}".rstrip("0").rstrip(".")


def _text(text: str) -> str:
    """A step value's text: `_string`, with `${` written `$${` so a playbook does not read
    a device's text (a channel banner "${x}") as a variable reference."""
    return _string(text.replace("${", "$${"))


def _string(text: str) -> str:
    """A double-quoted YAML scalar: JSON's escapes, plus `\\uXXXX` for every character YAML
    would read as a line break or refuse (controls, NEL, LS/PS, BOM), so the text is exact."""
    quoted = json.dumps(text, ensure_ascii=False)
    return "".join(_escape(c) if _unsafe(c) else c for c in quoted)


def _unsafe(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp")


def _escape(char: str) -> str:
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _key(name: str) -> str:
    """A device name (letters, digits, `_.-`): plain unless YAML would read it otherwise."""
    if re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]*", name) and name.lower() not in _YAML_WORDS:
        return name
    return _string(name)


def _shell_word(path: str) -> str:
    import shlex

    return shlex.quote(path)


# -- comments -------------------------------------------------------------------------------------


def _comment(text: str, *, indent: str = "", more: str = "  ") -> Iterable[str]:
    """`text` as comment lines of at most WIDTH columns (continued lines indented by `more`);
    line breaks and controls escaped, so nothing a device says can end the comment."""
    import textwrap

    clean = "".join(_escape(c) if _unsafe(c) else c for c in text)
    width = max(40, WIDTH - len(indent) - 2)
    lines = textwrap.wrap(
        clean, width, subsequent_indent=more, break_on_hyphens=False, drop_whitespace=True
    )
    for line in lines:
        yield f"{indent}# {line}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' * (n != 1)}"
