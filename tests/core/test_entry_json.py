"""`Entry.as_json` shows an entry's fleet keys when it has them, and nothing new when not."""

from __future__ import annotations

from cmdctl.core.model import (
    NO_COORDINATION,
    Command,
    Condition,
    Coordination,
    Entry,
    Priority,
)

PLAIN_KEYS = [
    "id", "batch", "device", "selector", "args", "state", "outcome", "priority", "attempts",
    "max_attempts", "created", "not_before", "expires", "started", "finished", "idempotent",
    "step", "playbook", "origin", "who", "last_error", "reason", "ran_on",
]  # fmt: skip


def _entry(coordination: Coordination = NO_COORDINATION) -> Entry:
    return Entry(
        id="01E", batch="01B", device="tv-1", command=Command("number", "volume", {"value": 7}),
        priority=Priority.NORMAL, created=1.0, not_before=1.0, expires=None, idempotent=True,
        verify=True, max_attempts=3, who="ann@bar", origin="bulk", step="volume",
        coordination=coordination,
    )  # fmt: skip


def test_fleet_keys_show_when_set_as_a_queued_event_stores_them_and_only_then() -> None:
    assert list(_entry().as_json()) == PLAIN_KEYS  # without them: exactly what it was
    flow = Coordination(tags=("power", "ir"), after="power on", on_failure="run", serial="25%")
    shown = _entry(flow).as_json()
    assert list(shown) == [*PLAIN_KEYS, "tags", "after", "on_failure", "serial"]
    assert {k: shown[k] for k in ("tags", "after", "on_failure", "serial")} == {
        "tags": ["power", "ir"], "after": "power on", "on_failure": "run", "serial": "25%",
    }  # fmt: skip
    picked = Coordination(pick="failover", candidates=("tv-1", "tv-2"), serial=2)
    assert {k: v for k, v in _entry(picked).as_json().items() if k not in PLAIN_KEYS} == {
        "pick": "failover", "candidates": ["tv-1", "tv-2"], "serial": 2,
    }  # fmt: skip
    timed = Coordination(after="a", scope="device", gap=5.0,
                         when=Condition("switch", "tv_power", True),
                         wait_until=Condition("sensor", "t", 21.5, timeout=20.0))
    assert {k: v for k, v in _entry(timed).as_json().items() if k not in PLAIN_KEYS} == {
        "after": "a", "on_failure": timed.on_failure, "scope": "device", "gap": 5.0,
        "when": {"entity": "switch.tv_power", "value": True},
        "wait_until": {"entity": "sensor.t", "value": 21.5, "timeout": 20.0},
    }  # fmt: skip
