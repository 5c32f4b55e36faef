"""Conditions on one device: does an entity's state show what `when:` / `wait_until:` want.

A `Condition` (`cmdctl.core.model`) becomes an `Expectation` on the entity's main field, so the
session's state book can wait for it like for a confirmation; `shown` says what the entity shows
in the playbook's words (`on`, `21.5`, `HDMI 1`). Duck-typed on aioesphomeapi states.
"""

from __future__ import annotations

from typing import Any

from cmdctl.core.model import CONDITION_DOMAINS, Condition, show_value
from cmdctl.device.expectation import UNIT_TOLERANCE, Check, Expectation, observe


def expectation(cond: Condition) -> Expectation:
    """What the entity's state must show for `cond` to hold."""
    kind = CONDITION_DOMAINS[cond.domain]
    if kind == "position":
        return Expectation(
            (Check("position", 1.0 if cond.value == "open" else 0.0, UNIT_TOLERANCE),)
        )
    return Expectation((Check("state", cond.value),))


def shown(cond: Condition, state: Any) -> str:
    """What the entity shows, as a playbook would say it; `unknown` when it has no state."""
    if state is None or getattr(state, "missing_state", False):
        return "unknown (no state)"
    kind = CONDITION_DOMAINS[cond.domain]
    if kind == "position":
        position = observe(state, "position")
        if not isinstance(position, float):
            return "unknown"
        return (
            "closed"
            if position <= UNIT_TOLERANCE
            else ("open" if position >= 1 - UNIT_TOLERANCE else f"at {position:.0%}")
        )
    return show_value(observe(state, "state"))
