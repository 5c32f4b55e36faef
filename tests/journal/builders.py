"""Entries and events for journal tests: one builder, so every test means the same by "an entry"."""

from __future__ import annotations

from cmdctl.core.ids import new_id
from cmdctl.core.model import Command, Entry, Priority
from cmdctl.journal import events as ev
from cmdctl.journal.events import Event

CMD = Command("light", "backlight", {"state": True, "brightness": 0.4})


def entry(
    entry_id: str | None = None,
    *,
    batch: str = "B1",
    device: str = "tv-1",
    created: float = 0.0,
    not_before: float | None = None,
    expires: float | None = None,
    priority: Priority = Priority.NORMAL,
) -> Entry:
    """A pending entry (a fresh id unless given), due at `created` unless `not_before`."""
    return Entry(
        id=entry_id or new_id(),
        batch=batch,
        device=device,
        command=CMD,
        priority=priority,
        created=created,
        not_before=created if not_before is None else not_before,
        expires=expires,
        idempotent=True,
        verify=True,
        max_attempts=3,
        who="t@h",
        origin="bulk",
        step="light",
        playbook="pb",
    )


def queued_batch(n: int, batch: str = "B1") -> list[Event]:
    """`queued` events of `n` fresh entries of `batch`, one device each."""
    return [ev.queued(entry(batch=batch, device=f"tv-{i}")) for i in range(n)]


#: One event of every type a person or the drain writes after `queued`, by type.
_EVENTS = {
    ev.STARTED: lambda i, ts: ev.started(i, ts, attempt=1, run="r"),
    ev.ATTEMPT_FAILED: lambda i, ts: ev.attempt_failed(i, ts, error="e", kind="k", retry_at=ts + 1),
    ev.RESCHEDULED: lambda i, ts: ev.rescheduled(i, ts, not_before=ts + 60, attempts=1),
    ev.DONE: lambda i, ts: ev.done(i, ts, outcome="confirmed", duration=0.1),
    ev.FAILED: lambda i, ts: ev.failed(i, ts, error="e", kind="rejected"),
    ev.CANCELLED: lambda i, ts: ev.cancelled(i, ts, who="bob"),
    ev.EXPIRED: lambda i, ts: ev.expired(i, ts),
    ev.SUPERSEDED: lambda i, ts: ev.superseded(i, ts, by="Q"),
    ev.SKIPPED: lambda i, ts: ev.skipped(i, ts, reason="r"),
    ev.UNKNOWN: lambda i, ts: ev.unknown(i, ts, reason="r"),
    ev.HELD: lambda i, ts: ev.held(i, ts, reason="threshold"),
    ev.REPRIORITISED: lambda i, ts: ev.reprioritised(i, ts, priority=Priority.LOW),
    ev.RETRIED: lambda i, ts: ev.retried(i, ts, who="bob"),
}


def event(kind: str, entry_id: str, ts: float) -> Event:
    """An event of type `kind` for `entry_id` at `ts`; unknown kinds are a future version's."""
    make = _EVENTS.get(kind)
    return make(entry_id, ts) if make else Event(kind, entry_id, ts, {"x": [1]}, 2)
