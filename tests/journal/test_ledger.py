"""The fold: states, due order, lookups, and the lazy path agreeing with the full decode."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cmdctl.core.errors import InputError
from cmdctl.core.model import Priority, State
from cmdctl.journal import events as ev
from cmdctl.journal.entry import entry_from_queued, fold
from cmdctl.journal.events import Event
from cmdctl.journal.framing import frame
from cmdctl.journal.ledger import Ledger

from .builders import entry, event


def lines_of(evs: list[Event]) -> list[bytes]:
    """Framed journal lines, as the journal stores them (one append each)."""
    return [frame([ev.encode(e)])[:-1] for e in evs]


def both(evs: list[Event]) -> list[Ledger]:
    return [Ledger.from_events(evs), Ledger.from_lines(lines_of(evs))]


def test_fold_walks_an_entry_through_its_life() -> None:
    e = entry("A")
    evs = [
        ev.queued(e),
        ev.started("A", 10.0, attempt=1, run="r1"),
        ev.attempt_failed("A", 11.0, error="refused", kind="unreachable", retry_at=20.0),
        ev.rescheduled("A", 11.0, not_before=20.0, attempts=1),
        ev.reprioritised("A", 12.0, priority=Priority.HIGH),
        ev.started("A", 20.0, attempt=2, run="r2"),
        ev.done("A", 21.0, outcome="confirmed", duration=1.0),
    ]
    states = []
    for ledger in both(evs):
        got = ledger.get("A")
        assert got.state is State.DONE and got.outcome == "confirmed"
        assert got.attempts == 2 and got.priority is Priority.HIGH
        assert got.not_before == 20.0 and got.last_error == "refused"
        assert got.started == 20.0 and got.finished_at == 21.0 and got.updated == 21.0
        states.append(ledger.state("A"))
    assert states == [State.DONE, State.DONE]


@pytest.mark.parametrize(
    ("event", "state"),
    [
        (ev.started("A", 1.0, attempt=1, run="r"), State.RUNNING),
        (ev.attempt_failed("A", 1.0, error="x", kind="k", retry_at=None), State.PENDING),
        (ev.failed("A", 1.0, error="bad key", kind="rejected"), State.FAILED),
        (ev.cancelled("A", 1.0, who="bob", reason="no"), State.CANCELLED),
        (ev.expired("A", 1.0), State.EXPIRED),
        (ev.superseded("A", 1.0, by="B"), State.SUPERSEDED),
        (ev.skipped("A", 1.0, reason="barrier"), State.SKIPPED),
        (ev.unknown("A", 1.0, reason="interrupted"), State.UNKNOWN),
        (Event("teleported", "A", 1.0, {"x": 1}, 2), State.PENDING),
    ],
)
def test_each_event_type_moves_the_state(event: Event, state: State) -> None:
    for ledger in both([ev.queued(entry("A")), event]):
        assert ledger.state("A") is state
        assert ledger.get("A").state is state
        assert ledger.get("A").updated == 1.0


def test_failed_and_superseded_record_why() -> None:
    a = Ledger.from_events(
        [ev.queued(entry("A")), ev.failed("A", 1.0, error="bad key", kind="rejected")]
    ).get("A")
    assert (a.outcome, a.last_error, a.finished_at) == ("rejected", "bad key", 1.0)
    b = Ledger.from_events([ev.queued(entry("B")), ev.superseded("B", 2.0, by="C")]).get("B")
    assert b.superseded_by == "C"


def test_retry_resets_attempts_and_outcome() -> None:
    evs = [
        ev.queued(entry("A")),
        ev.started("A", 1.0, attempt=1, run="r"),
        ev.failed("A", 2.0, error="gone", kind="unreachable"),
        ev.retried("A", 3.0, who="bob"),
    ]
    for ledger in both(evs):
        got = ledger.get("A")
        assert got.state is State.PENDING and got.attempts == 0
        assert got.outcome is None and got.finished_at is None
        assert got.last_error == "gone"


def test_events_for_unknown_ids_and_duplicates_are_reported_not_fatal() -> None:
    evs = [
        ev.done("ZZ", 1.0, outcome="confirmed", duration=0.1),
        ev.queued(entry("A")),
        ev.queued(entry("A")),
    ]
    for ledger in both(evs):
        assert len(ledger) == 1
        reasons = sorted((p.entry_id, p.reason) for p in ledger.problems)
        assert reasons == [("A", "queued twice"), ("ZZ", "event for an unknown id")]


def test_expired_is_the_pending_entries_past_their_expiry() -> None:
    # The run order of due entries is the drain's (tests/drain/test_select.py).
    evs = [
        ev.queued(entry("01", expires=5.0)),
        ev.queued(entry("02", expires=50.0)),
        ev.queued(entry("03")),
        ev.queued(entry("04", expires=5.0)),
        ev.cancelled("04", 1.0, who="bob"),  # finished: not pending
    ]
    for ledger in both(evs):
        assert [e.id for e in ledger.expired(now=10.0)] == ["01"]
        assert [e.id for e in ledger.expired(now=50.0)] == ["01", "02"]


def test_lookup_by_id_and_prefix() -> None:
    ledger = Ledger.from_events([ev.queued(entry(i)) for i in ("01ABCD", "01ABCE", "01XYZ")])
    assert ledger.lookup("01ABCD").id == "01ABCD"
    assert ledger.lookup("01x").id == "01XYZ"
    with pytest.raises(InputError, match="matches 2 entries"):
        ledger.lookup("01ABC")
    with pytest.raises(InputError, match="no entry"):
        ledger.lookup("99")
    with pytest.raises(InputError):
        ledger.lookup("  ")


def test_filters_counts_batches_stuck_and_summary() -> None:
    evs = [
        ev.queued(entry("A", device="x", batch="B1", not_before=50.0)),
        ev.queued(entry("B", device="y", batch="B1", not_before=30.0)),
        ev.queued(entry("C", device="x", batch="B2")),
        ev.started("C", 1.0, attempt=1, run="r"),
        ev.queued(entry("D", device="y", batch="B2")),
        ev.started("D", 1.0, attempt=1, run="r"),
        ev.done("D", 2.0, outcome="delivered", duration=1.0),
    ]
    for ledger in both(evs):
        assert [e.id for e in ledger.entries(device="x")] == ["A", "C"]
        assert [e.id for e in ledger.entries(batch="B2", state=State.DONE)] == ["D"]
        assert ledger.counts() == {State.PENDING: 2, State.RUNNING: 1, State.DONE: 1}
        progress = ledger.batches()
        assert (progress["B1"].total, progress["B1"].finished) == (2, 0)
        assert (progress["B2"].total, progress["B2"].finished) == (2, 1)
        assert [e.id for e in ledger.stuck()] == ["C"]
        summary = ledger.summary()
        assert (summary.oldest_pending, summary.next_due, summary.stuck) == (0.0, 30.0, 1)


event_kinds = st.sampled_from(
    [
        "started",
        "attempt_failed",
        "rescheduled",
        "done",
        "failed",
        "cancelled",
        "expired",
        "superseded",
        "skipped",
        "unknown",
        "reprioritised",
        "retried",
        "future_type",
    ]
)


@settings(max_examples=100)
@given(st.lists(st.tuples(st.sampled_from("ABC"), event_kinds), max_size=30))
def test_lazy_fold_agrees_with_the_full_fold(steps: list[tuple[str, str]]) -> None:
    evs = [ev.queued(entry(i)) for i in "ABC"]
    evs += [event(kind, i, float(n)) for n, (i, kind) in enumerate(steps)]
    expected = {}
    for e in evs:
        if e.type == "queued":
            expected[e.id] = entry_from_queued(e)
        else:
            expected[e.id] = fold(expected[e.id], e)
    for ledger in both(evs):
        for entry_id, want in expected.items():
            assert ledger.state(entry_id) is want.state
            assert ledger.get(entry_id) == want


def test_batch_heads_are_the_first_entry_of_each_batch() -> None:
    evs = [
        ev.queued(entry("01A", batch="B1")),
        ev.queued(entry("01B", batch="B2", device="tv-2")),
        ev.queued(entry("01C", batch="B1", device="tv-3")),
        ev.queued(entry("01D", batch="B3")),
    ]
    for ledger in both(evs):
        assert {b: e.id for b, e in ledger.batch_heads().items()} == {
            "B1": "01A",
            "B2": "01B",
            "B3": "01D",
        }
        assert {b: e.id for b, e in ledger.batch_heads(["B3"]).items()} == {"B3": "01D"}
        assert ledger.batch_heads(["nope"]) == {}


def test_a_finished_entry_changes_only_when_a_person_retries_it() -> None:
    # Found by the chaos soak: a drain that planned an entry just before it was cancelled
    # appended attempt_failed + rescheduled, which reopened it; compaction then archived it
    # as cancelled while the journal still held the later events.
    evs = [
        ev.queued(entry("01A")),
        ev.cancelled("01A", 1.0, who="p@h"),
        ev.started("01A", 2.0, attempt=1, run="stale-drain"),
        ev.attempt_failed("01A", 3.0, error="refused", kind="unreachable", retry_at=9.0),
        ev.rescheduled("01A", 3.0, not_before=9.0, attempts=1),
        ev.queued(entry("01B")),
        ev.started("01B", 2.0, attempt=1, run="r"),
        ev.done("01B", 3.0, outcome="confirmed", duration=0.1),
        ev.cancelled("01B", 4.0, who="p@h"),
    ]
    for ledger in both(evs):
        assert ledger.state("01A") is State.CANCELLED
        assert ledger.get("01A").state is State.CANCELLED
        assert ledger.get("01A").attempts == 0
        assert ledger.state("01B") is State.DONE and ledger.get("01B").outcome == "confirmed"
        assert len(ledger.records("01A")) == 5  # the events are kept, for `queue show`
    again = [*evs, ev.retried("01A", 5.0, who="p@h")]
    for ledger in both(again):
        assert ledger.state("01A") is State.PENDING
        assert ledger.get("01A").state is State.PENDING
