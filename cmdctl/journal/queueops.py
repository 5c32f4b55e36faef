"""What a person can do to queued entries: cancel, retry, reprioritise. Returns events to append."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from cmdctl.core.model import Entry, Priority, State
from cmdctl.journal import events as ev
from cmdctl.journal.events import Event

#: States a person may cancel: not yet started, or waiting for a person's decision.
CANCELLABLE = frozenset({State.PENDING, State.UNKNOWN})
#: States a person may re-run.
RETRYABLE = frozenset({State.FAILED, State.UNKNOWN, State.EXPIRED, State.CANCELLED, State.SKIPPED})


@dataclass(frozen=True, slots=True)
class Change:
    """The events to append, and the entries left alone with the reason why."""

    events: tuple[Event, ...]
    changed: tuple[Entry, ...]
    refused: tuple[tuple[Entry, str], ...]


def cancel(
    entries: Iterable[Entry], *, who: str, now: float, reason: str = "",
    orphaned: Collection[str] = (),
) -> Change:
    """Cancel pending (or unknown) entries; running or finished ones are refused with why.

    `orphaned`: ids of running entries whose process is known to be dead (the caller decides:
    it holds the drain lock, or the sender's pid is gone); those are cancelled too, so an entry
    whose drain died is never stuck beyond a person's reach.
    """
    out: list[Event] = []
    changed: list[Entry] = []
    refused: list[tuple[Entry, str]] = []
    for entry in entries:
        if entry.state in CANCELLABLE or (
            entry.state is State.RUNNING and entry.id in orphaned
        ):
            out.append(ev.cancelled(entry.id, now, who=who, reason=reason))
            changed.append(entry)
        elif entry.state is State.RUNNING:
            refused.append((entry, "running now; it cannot be called back"))
        else:
            refused.append((entry, f"already {entry.state.value}"))
    return Change(tuple(out), tuple(changed), tuple(refused))


def in_backoff(entry: Entry, now: float) -> bool:
    """Pending, tried before, and not due again until later: waiting out a retry backoff."""
    return entry.state is State.PENDING and entry.attempts > 0 and entry.not_before > now


def retry(entries: Iterable[Entry], *, who: str, now: float) -> Change:
    """Queue failed / unknown / expired / cancelled / skipped entries again, due now; make
    pending entries waiting out a backoff due now (their attempts count stays)."""
    out: list[Event] = []
    changed: list[Entry] = []
    refused: list[tuple[Entry, str]] = []
    for entry in entries:
        if in_backoff(entry, now):
            out.append(ev.rescheduled(entry.id, now, not_before=now, attempts=entry.attempts))
            changed.append(entry)
        elif entry.state is State.PENDING and entry.not_before > now:
            refused.append((entry, "is scheduled for later, not backing off; it runs when due"))
        elif entry.state is State.PENDING:
            refused.append((entry, "is pending and due now; the next drain runs it"))
        elif entry.state in RETRYABLE:
            out.append(ev.retried(entry.id, now, who=who))
            past_expiry = entry.expires is not None and entry.expires <= now
            if entry.not_before > now or past_expiry:
                # A retry means "now": pull it forward, and past its old expiry if it has one.
                fields: dict[str, object] = {"not_before": now, "attempts": 0}
                if past_expiry:
                    fields["expires"] = None
                out.append(Event(ev.RESCHEDULED, entry.id, now, fields))
            changed.append(entry)
        elif entry.state is State.DONE:
            refused.append((entry, "already done; queue a new command instead"))
        else:
            refused.append((entry, f"is {entry.state.value}; nothing to retry"))
    return Change(tuple(out), tuple(changed), tuple(refused))


def reprioritise(entries: Iterable[Entry], priority: Priority, *, now: float) -> Change:
    """Change the priority of entries that have not finished."""
    out: list[Event] = []
    changed: list[Entry] = []
    refused: list[tuple[Entry, str]] = []
    for entry in entries:
        if entry.finished:
            refused.append((entry, f"already {entry.state.value}"))
        elif entry.priority is priority:
            refused.append((entry, f"already {priority.value}"))
        else:
            out.append(ev.reprioritised(entry.id, now, priority=priority))
            changed.append(entry)
    return Change(tuple(out), tuple(changed), tuple(refused))
