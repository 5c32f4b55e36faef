"""queueops: what a person may do to entries in each state, applied to a real journal."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from cmdctl.core.model import Entry, Priority, State
from cmdctl.journal import events as ev
from cmdctl.journal import queueops
from cmdctl.journal.ledger import Ledger
from cmdctl.journal.queueops import Change
from cmdctl.journal.store import Journal

from .builders import entry, event

NOW = 1000.0

#: The events after `queued` that bring an entry into each state.
TO_STATE: dict[State, tuple[str, ...]] = {
    State.PENDING: (),
    State.RUNNING: (ev.STARTED,),
    State.DONE: (ev.STARTED, ev.DONE),
    State.FAILED: (ev.STARTED, ev.FAILED),
    State.CANCELLED: (ev.CANCELLED,),
    State.EXPIRED: (ev.EXPIRED,),
    State.SUPERSEDED: (ev.SUPERSEDED,),
    State.SKIPPED: (ev.SKIPPED,),
    State.UNKNOWN: (ev.STARTED, ev.UNKNOWN),
}


def one_in_each_state(
    journal: Journal, priority: Priority = Priority.NORMAL
) -> dict[State, str]:
    """Queue one entry per state and bring it there; returns their ids by state."""
    made = {
        state: entry(device=f"tv-{state.value}", created=10.0, priority=priority)
        for state in State
    }
    journal.append([ev.queued(e) for e in made.values()])
    journal.append(
        [event(kind, made[state].id, 20.0 + n) for state, kinds in TO_STATE.items()
         for n, kind in enumerate(kinds)]
    )
    ledger = journal.ledger()
    assert {state: ledger.state(e.id) for state, e in made.items()} == {s: s for s in State}
    return {state: e.id for state, e in made.items()}


def apply(journal: Journal, operation: Callable[[list[Entry]], Change]) -> Change:
    """Run `operation` on every entry under the journal lock and append what it decided."""

    def decide(ledger: Ledger) -> Change:
        return operation(list(ledger.entries()))

    change, report = journal.transact(decide)
    assert report.events == len(change.events)
    return change


def by_state(change: Change) -> tuple[set[State], dict[State, str]]:
    changed = {e.state for e in change.changed}
    refused = {e.state: why for e, why in change.refused}
    return changed, refused


def test_cancel_takes_pending_and_unknown_and_says_why_it_refuses_the_rest(
    journal: Journal,
) -> None:
    ids = one_in_each_state(journal)
    change = apply(journal, lambda es: queueops.cancel(es, who="bob", now=NOW, reason="oops"))
    changed, refused = by_state(change)
    assert changed == {State.PENDING, State.UNKNOWN}
    assert refused == {
        State.RUNNING: "running now; it cannot be called back",
        State.DONE: "already done",
        State.FAILED: "already failed",
        State.CANCELLED: "already cancelled",
        State.EXPIRED: "already expired",
        State.SUPERSEDED: "already superseded",
        State.SKIPPED: "already skipped",
    }
    assert [(e.type, e.fields["who"], e.fields["reason"]) for e in change.events] == [
        (ev.CANCELLED, "bob", "oops")
    ] * 2
    ledger = journal.ledger()
    assert ledger.state(ids[State.PENDING]) is State.CANCELLED
    assert ledger.state(ids[State.UNKNOWN]) is State.CANCELLED
    assert ledger.state(ids[State.RUNNING]) is State.RUNNING


def test_retry_requeues_what_can_run_again_and_refuses_done_and_live(journal: Journal) -> None:
    ids = one_in_each_state(journal)
    change = apply(journal, lambda es: queueops.retry(es, who="bob", now=NOW))
    changed, refused = by_state(change)
    assert changed == set(queueops.RETRYABLE)
    assert refused == {
        State.DONE: "already done; queue a new command instead",
        State.PENDING: "is pending and due now; the next drain runs it",
        State.RUNNING: "is running; nothing to retry",
        State.SUPERSEDED: "is superseded; nothing to retry",
    }
    # Due at created=10 < NOW with no expiry: a retry alone, no reschedule.
    assert {e.type for e in change.events} == {ev.RETRIED}
    ledger = journal.ledger()
    for state in queueops.RETRYABLE:
        assert ledger.state(ids[state]) is State.PENDING, state


def test_retry_makes_a_backed_off_entry_due_now_but_leaves_scheduled_work_alone(
    journal: Journal,
) -> None:
    backing_off = entry(created=10.0)
    scheduled = entry(created=10.0, not_before=NOW + 3600)
    journal.append([ev.queued(backing_off), ev.queued(scheduled)])
    journal.append([ev.rescheduled(backing_off.id, 20.0, not_before=NOW + 30, attempts=2)])
    change = apply(journal, lambda es: queueops.retry(es, who="bob", now=NOW))
    assert [e.id for e in change.changed] == [backing_off.id]
    assert [(e.id, why) for e, why in change.refused] == [
        (scheduled.id, "is scheduled for later, not backing off; it runs when due")
    ]
    after = journal.ledger().get(backing_off.id)
    assert (after.state, after.not_before, after.attempts) == (State.PENDING, NOW, 2)


def test_retry_pulls_a_later_or_expired_entry_forward_to_now(journal: Journal) -> None:
    later = entry(created=10.0, not_before=NOW + 3600)
    lapsed = entry(created=10.0, expires=NOW - 1)
    journal.append([ev.queued(later), ev.queued(lapsed)])
    journal.append([event(ev.CANCELLED, later.id, 20.0), event(ev.EXPIRED, lapsed.id, 21.0)])
    change = apply(journal, lambda es: queueops.retry(es, who="bob", now=NOW))
    resched = {e.id: e.fields for e in change.events if e.type == ev.RESCHEDULED}
    assert resched == {
        later.id: {"not_before": NOW, "attempts": 0},
        lapsed.id: {"not_before": NOW, "attempts": 0, "expires": None},
    }
    ledger = journal.ledger()
    for e in (later, lapsed):
        after = ledger.get(e.id)
        assert (after.state, after.not_before) == (State.PENDING, NOW)
    assert ledger.get(later.id).expires is None


def test_a_retried_expired_entry_is_not_expired_again(journal: Journal) -> None:
    """Issue 13, item 7: the retry's `rescheduled` carried `expires: null`, which the fold
    ignored, so the next drain expired the entry again."""
    lapsed = entry(created=10.0, expires=NOW - 1)
    journal.append([ev.queued(lapsed), event(ev.EXPIRED, lapsed.id, 21.0)])
    apply(journal, lambda es: queueops.retry(es, who="bob", now=NOW))
    ledger = journal.ledger()
    assert ledger.get(lapsed.id).expires is None
    assert ledger.expired(NOW) == []


@pytest.mark.parametrize("priority", [Priority.HIGH, Priority.LOW])
def test_reprioritise_changes_unfinished_entries_only(
    journal: Journal, priority: Priority
) -> None:
    ids = one_in_each_state(journal)
    change = apply(journal, lambda es: queueops.reprioritise(es, priority, now=NOW))
    changed, refused = by_state(change)
    unfinished = {s for s in State if not s.finished}
    assert changed == unfinished
    assert refused == {s: f"already {s.value}" for s in State if s.finished}
    ledger = journal.ledger()
    for state in State:
        want = priority if state in unfinished else Priority.NORMAL
        assert ledger.get(ids[state]).priority is want, state


def test_reprioritise_refuses_the_priority_it_already_has(journal: Journal) -> None:
    ids = one_in_each_state(journal, Priority.HIGH)
    change = apply(journal, lambda es: queueops.reprioritise(es, Priority.HIGH, now=NOW))
    assert change.events == () and change.changed == ()
    assert by_state(change)[1][State.PENDING] == "already high"
    assert journal.ledger().get(ids[State.PENDING]).priority is Priority.HIGH


def test_nothing_to_change_appends_nothing(journal: Journal) -> None:
    one_in_each_state(journal)
    size = journal.path.stat().st_size
    change = apply(journal, lambda es: queueops.cancel(
        [e for e in es if e.state is State.DONE], who="bob", now=NOW))
    assert change.events == () and len(change.refused) == 1
    assert journal.path.stat().st_size == size
