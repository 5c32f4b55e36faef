"""The arguments a `Fleet`'s methods share: their defaults (the CLI's option defaults) and the
forms they are given in (`tags="power,night"`, `mode="queue"`, `value=True`)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from typing import TYPE_CHECKING

from cmdctl.core.errors import InputError

if TYPE_CHECKING:
    from cmdctl.device.address import DeviceAddress
    from cmdctl.drain.direct import Mode
    from cmdctl.inputs.variables import Value

#: `variables=` of `plan` / `bulk`: name → value (text, number, true/false), or `name=value`
#: strings as `--var` takes them (the value read as YAML: `volume=30` is a number).
Variables = Mapping[str, "Value | str | int | float | bool"] | Iterable[str]

Warn = Callable[[str], None]
Lookup = Callable[[str], "DeviceAddress | None"]

#: How long `send` tries directly before it queues (the CLI's `--timeout` default).
SEND_TIMEOUT_S = 5.0
#: A playbook expanding to more commands than this is refused (the CLI's `--max-commands`).
MAX_COMMANDS = 100_000
#: Devices worked on at once by immediate steps and drains (the CLI's `--concurrency`).
CONCURRENCY = 64
#: A `notify` hook running longer than this is killed (the CLI's `--notify-timeout`).
NOTIFY_TIMEOUT_S = 10.0
#: Devices `scene` reads at once, and how long it waits for one to answer (device.scene).
SCENE_CONCURRENCY = 32
SCENE_CONNECT_TIMEOUT = 5.0


def tags(value: str | Collection[str] | None) -> frozenset[str] | None:
    """`"power,night"` or `{"power", "night"}` → a set of tags (None: not given)."""
    if value is None:
        return None
    from cmdctl.inputs.playbook import parse_tags

    return parse_tags(value if isinstance(value, str) else ",".join(value))


def value_text(value: str | float | bool | None) -> str:
    """A value as `cmdctl send` takes it: True → "on", 40 → "40", None → ""."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def mode(mode: Mode | str) -> Mode:
    """A send mode given as a `Mode` or its value ("auto", "now", "queue")."""
    from cmdctl.drain.direct import Mode

    try:
        return Mode(mode)
    except ValueError:
        names = ", ".join(m.value for m in Mode)
        raise InputError(f"unknown send mode {mode!r}", hint=f"one of: {names}") from None
