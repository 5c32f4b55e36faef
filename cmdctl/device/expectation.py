"""What "done" looks like: the state an entity must show once a command has taken effect.

`device.validator` builds an `Expectation` for each command it accepts; the device session reads
states until every `Check` holds (or the deadline passes, a mismatch). Works on aioesphomeapi
state objects by duck typing, so importing this module does not import the client.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeGuard

# Verification tolerances: states travel as float32, and devices round.
UNIT_TOLERANCE = 0.01  # values in 0..1 (brightness, position, volume)
MIREDS_TOLERANCE = 1.0
TEMPERATURE_TOLERANCE = 0.05
HUMIDITY_TOLERANCE = 0.5


@dataclass(frozen=True, slots=True)
class Check:
    """One field of an entity state and the value it must show (`tolerance` for numbers)."""

    field: str
    want: Any
    tolerance: float = 0.0

    def holds(self, state: Any) -> bool:
        """True when `state` shows the wanted value."""
        return _same(observe(state, self.field), self.want, self.tolerance)


@dataclass(frozen=True, slots=True)
class Expectation:
    """What the entity's state must show once the command has taken effect."""

    checks: tuple[Check, ...]
    moves: bool = False  # covers / valves: still moving at the deadline is not a mismatch

    def reached(self, state: Any) -> bool:
        """True when every check holds on `state` (a state with no value never matches)."""
        if state is None or getattr(state, "missing_state", False):
            return False
        return all(check.holds(state) for check in self.checks)

    def moving(self, state: Any) -> bool:
        """True when a moving entity is still on its way (current_operation not idle)."""
        if not self.moves or state is None:
            return False
        return observe(state, "current_operation") not in (None, "idle")

    def describe(self) -> str:
        """`position=1, tilt=0.5`."""
        return ", ".join(f"{c.field}={_show(c.want)}" for c in self.checks)

    def observed(self, state: Any) -> str:
        """The same fields as seen on `state` (`position=0.4`), or `no state`."""
        if state is None or getattr(state, "missing_state", False):
            return "no state"
        parts = [f"{c.field}={_show(observe(state, c.field))}" for c in self.checks]
        if self.moves:
            parts.append(f"operation={observe(state, 'current_operation')}")
        return ", ".join(parts)


def observe(state: Any, name: str) -> Any:
    """A state field in comparable form: enum names lower-case, rgb normalised, effect folded."""
    if name == "rgb":
        return normalised_rgb(
            (getattr(state, "red", 0.0), getattr(state, "green", 0.0), getattr(state, "blue", 0.0))
        )
    value = getattr(state, name, None)
    if name == "effect":
        return fold_effect(value or "")
    enum_name = getattr(value, "name", None)
    if isinstance(enum_name, str) and isinstance(value, int):
        return enum_name.lower()
    return value


def fold_effect(name: str) -> str:
    """An effect name as compared: lower-case, "" and "None" both `none`."""
    return "none" if name.strip().lower() in ("", "none") else name.strip().lower()


def normalised_rgb(rgb: Sequence[float]) -> tuple[float, float, float]:
    """ESPHome scales colours so the largest channel is 1 (brightness lives elsewhere)."""
    top = max(rgb)
    if top <= 0:
        return (1.0, 1.0, 1.0)
    return (rgb[0] / top, rgb[1] / top, rgb[2] / top)


def _same(seen: Any, want: Any, tolerance: float) -> bool:
    if isinstance(want, tuple):
        return (
            isinstance(seen, tuple)
            and len(seen) == len(want)
            and all(_same(s, w, tolerance) for s, w in zip(seen, want, strict=True))
        )
    if isinstance(want, float) and is_number(seen):
        return math.isfinite(seen) and abs(seen - want) <= max(tolerance, 1e-6 * abs(want))
    return bool(seen == want)


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, tuple):
        return "[" + ", ".join(_show(v) for v in value) + "]"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def is_number(value: Any) -> TypeGuard[int | float]:
    """An int or float, and not a bool."""
    return isinstance(value, int | float) and not isinstance(value, bool)
