"""The fleet keys at the journal edge: `Entry.coordination` as a `queued` record stores it, and
back, leniently (a journal is read whatever wrote it).

Written by `events.queued_fields` after the `QUEUED_KEYS`; read by `entry.entry_of`, which shares
one `Coordination` per distinct value (a bulk's entries carry the same keys).
"""

from __future__ import annotations

import math
from typing import Any

from cmdctl.core.model import (
    CONDITION_DOMAINS,
    NO_COORDINATION,
    ON_FAILURE,
    SCOPES,
    Condition,
    Coordination,
    JSONValue,
)

#: The fleet keys a `queued` event may carry after `QUEUED_KEYS` (`Entry.coordination`).
COORDINATION_KEYS = (
    "tags", "after", "on_failure", "pick", "candidates", "serial", "scope", "gap", "when",
    "wait_until",
)  # fmt: skip


def coordination_fields(c: Coordination) -> dict[str, JSONValue]:
    """`c` as a `queued` event stores it: only the keys that are set (`Entry.as_json` shows
    the same keys, so they are written in one place, `Coordination.as_json`)."""
    return c.as_json()


_SHARED: dict[tuple[Any, ...], Coordination] = {}
_SHARED_MAX = 4096


def pop_coordination(fields: dict[str, Any]) -> Coordination:
    """Take the fleet keys out of a `queued` event's fields, as one (shared) `Coordination`.

    Lenient like the rest of the fold: a key of the wrong type is ignored, not fatal. Entries of
    one step carry equal keys, so equal values share one instance (a drain may hold 100,000).
    """
    if not any(k in fields for k in COORDINATION_KEYS):
        return NO_COORDINATION
    tags, after, on_failure, pick, candidates, serial, scope, gap, when, wait_until = (
        fields.pop(k, None) for k in COORDINATION_KEYS
    )
    key: tuple[Any, ...] = (
        tuple(tags) if type(tags) is list else tags,
        after,
        on_failure,
        pick,
        tuple(candidates) if type(candidates) is list else candidates,
        serial,
        scope,
        gap,
        tuple(when.items()) if type(when) is dict else when,
        tuple(wait_until.items()) if type(wait_until) is dict else wait_until,
    )
    try:
        shared = _SHARED.get(key)
    except TypeError:  # an unhashable value: not shared (and not valid either)
        shared, key = None, ()
    if shared is not None:
        return shared
    value = Coordination(
        tags=_strings(tags),
        after=after if isinstance(after, str) else None,
        on_failure=on_failure if on_failure in ON_FAILURE else "skip",
        pick=pick if isinstance(pick, str) else None,
        candidates=_strings(candidates),
        serial=serial if isinstance(serial, int | str) and not isinstance(serial, bool) else None,
        scope=scope if scope in SCOPES else "batch",
        gap=float(gap) if _number(gap) and 0 < gap < math.inf else 0.0,
        when=_condition(when),
        wait_until=_condition(wait_until),
    )
    if key:
        if len(_SHARED) >= _SHARED_MAX:
            _SHARED.clear()
        _SHARED[key] = value
    return value


def _number(raw: Any) -> bool:
    return isinstance(raw, int | float) and not isinstance(raw, bool)


def _condition(raw: Any) -> Condition | None:
    """A `when` / `wait_until` as stored; None when it is not one (lenient, like the fold)."""
    if not isinstance(raw, dict):
        return None
    entity, value, timeout = raw.get("entity"), raw.get("value"), raw.get("timeout", 0.0)
    if not isinstance(entity, str) or not isinstance(value, bool | int | float | str):
        return None
    domain, _, target = entity.partition(".")
    if domain not in CONDITION_DOMAINS or not target:
        return None
    if _number(value):
        value = float(value)
    wait = float(timeout) if _number(timeout) and 0 <= timeout < math.inf else 0.0
    return Condition(domain, target, value, wait)


def _strings(raw: Any) -> tuple[str, ...]:
    if isinstance(raw, str):
        return (raw,)
    if isinstance(raw, list):
        return tuple(x for x in raw if isinstance(x, str))
    return ()
