"""What each outcome of an attempt writes to the journal: the one place for that policy.

The engine's device jobs, failover picks, `send` and immediate steps, and crash recovery all
decide here which events an outcome becomes, so "done", "failed", "in doubt", "try again later"
and "left for later" mean the same thing whoever met them. Each function returns a `Verdict`:
the outcome (a `cmdctl.drain.totals` name), its one-line detail and the events to record.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from cmdctl.core import slots
from cmdctl.core.errors import DeliveryUnknown, DeviceError, DeviceUnavailable
from cmdctl.core.model import Entry, JSONValue, State
from cmdctl.core.timespec import format_time_utc
from cmdctl.drain import retry
from cmdctl.drain import totals as tot
from cmdctl.journal import events as ev
from cmdctl.journal.entry import fold, state_after
from cmdctl.journal.events import Event, new_event


@dataclass(frozen=True, slots=True)
class Verdict:
    """How one entry's attempt ended, and what the journal records for it."""

    outcome: str  # a `cmdctl.drain.totals` name
    detail: str
    events: tuple[Event, ...] = ()
    duration: float | None = None  # seconds from sending to confirmation / delivery (done)

    def after(self, entry: Entry) -> Entry:
        """`entry` once this verdict's events are in the journal."""
        for event in self.events:
            entry = fold(entry, event)
        return entry

    def state_after(self, entry: Entry) -> State:
        """`self.after(entry).state`, without building the entry."""
        return state_after(entry.state, self.events)


#: `Verdict(outcome, detail, events, duration)`, built in half the time (`cmdctl.core.slots`).
new_verdict: Callable[[str, str, tuple[Event, ...], float | None], Verdict]
new_verdict = slots.constructor(Verdict)


def not_safe(entry: Entry) -> str:
    """The tail of every "in doubt" reason: why it is not repeated, and how a person can."""
    return f"not safe to repeat (`cmdctl queue retry {entry.id}` runs it again)"


def done(
    entry: Entry, now: float, *, status: str, elapsed: float, detail: str,
    ran_on: str | None = None, waited: float | None = None,
) -> Verdict:
    """Confirmed or delivered (`status`); `waited`: seconds its `wait_until:` took."""
    duration = round(elapsed, 4)
    if waited is not None:
        cond = entry.coordination.wait_until
        seen = f"{cond.selector} was {cond.wanted} after {waited:.1f}s" if cond else ""
        detail = f"{detail}; {seen}" if detail else seen
    if ran_on is None and waited is None and type(duration) is float and duration > 0:
        event = _plain_done(entry.id, now, status, duration)
    else:
        event = ev.done(entry.id, now, outcome=status, duration=duration, ran_on=ran_on,
                        waited=None if waited is None else round(waited, 3))
    return new_verdict(status, detail, (event,), duration)


def done_alike(
    entries: Sequence[Entry], now: float, *, status: str, elapsed: float, detail: str
) -> tuple[list[Event], Verdict]:
    """`done` for entries that share one outcome (no `ran_on`, no `waited`): each entry's one
    event, and the verdict every one of them gets but for its event. Built in one pass: a
    chunk's commands are delivered together, and a verdict each cost 6 % of a drain.
    The events share their fields, which are the same for all (nothing changes them)."""
    shared = done(entries[0], now, status=status, elapsed=elapsed, detail=detail)
    (first,) = shared.events
    fields, version = first.fields, first.v
    return [first, *(new_event(ev.DONE, e.id, now, fields, version) for e in entries[1:])], shared


#: The fields of the last plain `done` event made: (outcome, duration) → fields.
_last_done: dict[tuple[str, float], Mapping[str, JSONValue]] = {}


def _plain_done(entry_id: str, now: float, status: str, duration: float) -> Event:
    """`ev.done` without `ran_on` / `waited`, sharing its fields with the previous one when they
    are equal (nothing changes an event's fields once made): the entries of one chunk are
    delivered together, and a drain holds tens of thousands of these while they wait for the
    disk."""
    key = (status, duration)
    fields = _last_done.get(key)
    if fields is None:
        fields = ev.done(entry_id, now, outcome=status, duration=duration).fields
        _last_done.clear()
        _last_done[key] = fields
    return new_event(ev.DONE, entry_id, now, fields, ev.VERSION)


def wait_failed(entry: Entry, now: float, why: str) -> Verdict:
    """Done on the device, but its `wait_until:` state did not come: failed, with the cause."""
    error = f"{entry.device}: {why}"
    return Verdict(tot.FAILED, error, (ev.failed(entry.id, now, error=error, kind="wait"),))


def rejected(entry: Entry, now: float, err: DeviceError) -> Verdict:
    """A permanent failure (bad value, unknown entity, wrong key): failed, never retried."""
    text = err.one_line()
    return Verdict(tot.FAILED, text, (ev.failed(entry.id, now, error=text, kind=err.kind),))


def in_doubt(entry: Entry, now: float, why: str) -> Verdict:
    """An `idempotent: false` command that may or may not have run: a person must decide."""
    reason = (f"{why}; the command may or may not have reached {entry.device} and is "
              f"{not_safe(entry)}")
    return Verdict(tot.UNKNOWN, f"{entry.device}: {reason}",
                   (ev.unknown(entry.id, now, reason=reason),))


def unreachable(
    entry: Entry, now: float, err: DeviceError, *, requeue: bool, policy: retry.RetryPolicy,
    due_now: bool = False,
) -> Verdict:
    """A transient failure that outlasted this run's retries.

    Requeued (`requeue`) while attempts remain: pending again after a backoff (`due_now`: at
    once, for a `send` falling back to the queue); otherwise failed, with the attempts used.
    A permanent error is `rejected`.
    """
    if not err.retryable:
        return rejected(entry, now, err)
    error = err.one_line()
    attempt = entry.attempts + 1
    if requeue and (due_now or attempt < entry.max_attempts):
        at = now if due_now else now + retry.reschedule_delay(attempt, policy)
        return Verdict(tot.UNREACHABLE, error, (
            ev.attempt_failed(entry.id, now, error=error, kind=err.kind, retry_at=at),
            ev.rescheduled(entry.id, now, not_before=at, attempts=attempt),
        ))
    used = f"{attempt} attempt" + ("" if attempt == 1 else "s")
    why = f"gave up after {used}: {error}" if requeue else error
    return Verdict(tot.UNREACHABLE, error, (
        ev.attempt_failed(entry.id, now, error=error, kind=err.kind, retry_at=None),
        ev.failed(entry.id, now, error=why, kind=err.kind, attempts=attempt),
    ))


def written_then_lost(err: DeviceError) -> bool:
    """True when the command was written before the connection failed (it may have run)."""
    return isinstance(err, DeliveryUnknown)


def transient(entry: Entry, now: float, err: DeviceUnavailable) -> Verdict | None:
    """A transient failure of one command inside a chunk: None when it is worth another try
    in this run; in doubt when it was written and must not be repeated."""
    if written_then_lost(err) and not entry.idempotent:
        return in_doubt(entry, now, err.reason)
    return None


def mismatch(
    entry: Entry, now: float, detail: str, *, requeue: bool, policy: retry.RetryPolicy
) -> Verdict:
    """Sent, but the state did not follow: retried later while it may be, else failed."""
    error = f"{entry.device}: {entry.command.selector}: state did not follow ({detail})"
    attempt = entry.attempts + 1
    if entry.idempotent and attempt < entry.max_attempts and requeue:
        at = now + retry.reschedule_delay(attempt, policy)
        return Verdict(tot.FAILED, error, (
            ev.attempt_failed(entry.id, now, error=error, kind="mismatch", retry_at=at),
            ev.rescheduled(entry.id, now, not_before=at, attempts=attempt),
        ))
    return Verdict(tot.FAILED, error, (
        ev.attempt_failed(entry.id, now, error=error, kind="mismatch", retry_at=None),
        ev.failed(entry.id, now, error=error, kind="mismatch"),
    ))


def left(entry: Entry, now: float, *, started: bool) -> Verdict:
    """Not got to in this run: pending as it was (a `started` one is put back, no attempt
    counted)."""
    events = (
        (ev.rescheduled(entry.id, now, not_before=entry.not_before, attempts=entry.attempts),)
        if started else ()
    )
    return Verdict(tot.SKIPPED, "left for the next drain", events)


def abandoned(entry: Entry, now: float, who: str, *, times: int = 1, limit: int = 3) -> Verdict:
    """Recovery: a dead process left `entry` running (for the `times`-th time). Idempotent:
    pending again, the interrupted attempt not counted (the interruption was ours, not the
    device's), until `limit` interruptions: then failed, for a command that kills every drain
    that runs it must not block its device forever."""
    if not entry.idempotent:
        return in_doubt(entry, now, f"interrupted: {who} died after starting it")
    reason = f"interrupted: {who} died before recording an outcome"
    if times >= limit:
        why = (f"{reason}, {times} times in a row; not tried again "
               f"(`cmdctl queue retry {entry.id}` runs it again)")
        return Verdict(tot.FAILED, why, (
            ev.attempt_failed(entry.id, now, error=reason, kind="interrupted", retry_at=None),
            ev.failed(entry.id, now, error=why, kind="interrupted"),
        ))
    return Verdict(tot.UNREACHABLE, reason, (
        ev.attempt_failed(entry.id, now, error=reason, kind="interrupted", retry_at=now),
        ev.rescheduled(entry.id, now, not_before=now, attempts=max(0, entry.attempts - 1)),
    ))


def expired(entry: Entry, now: float) -> Verdict:
    """A pending entry whose `expires` time has passed."""
    return Verdict(tot.EXPIRED, "expired before it could run", (
        ev.expired(entry.id, now, reason=f"not run before it expired at {_iso(entry.expires)}"),
    ))


def skipped(entry: Entry, now: float, why: str) -> Verdict:
    """A prerequisite failed (barriers)."""
    return Verdict(tot.SKIPPED, why, (ev.skipped(entry.id, now, reason=why),))


def _iso(ts: float | None) -> str:
    return "?" if ts is None else format_time_utc(ts)  # never raises, whatever the journal holds
