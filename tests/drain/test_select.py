"""The drain's run order (`engine.select`): priority, then age; a device's entries in order."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from cmdctl.core.model import Entry, Priority
from cmdctl.drain import engine as eng
from cmdctl.journal import events as ev
from cmdctl.journal.events import Event
from cmdctl.journal.store import Journal

from .conftest import make_entry

NOW = time.time()


def _journal_of(tmp: str, events: list[Event]) -> Journal:
    journal = Journal(Path(tmp))
    if events:
        journal.append(events)
    return journal


def _entry(
    device: str, priority: Priority, not_before: float = NOW - 1, expires: float | None = None
) -> Entry:
    """A pending entry, due before NOW unless told otherwise."""
    return make_entry(device, "switch", "x", {"state": True}, priority=priority,
                      not_before=not_before, expires=expires)


def test_priority_then_age_but_a_device_keeps_its_order(tmp_path: Path) -> None:
    spec: list[tuple[str, Priority, dict[str, float]]] = [
        ("a", Priority.LOW, {}),
        ("b", Priority.NORMAL, {}),
        ("c", Priority.HIGH, {}),
        ("a", Priority.HIGH, {}),  # must not overtake the first entry of a
        ("b", Priority.NORMAL, {}),
        ("d", Priority.HIGH, {"not_before": NOW + 90}),  # later
        ("e", Priority.HIGH, {"expires": NOW - 5}),  # expired
        ("c", Priority.LOW, {}),
        ("f", Priority.HIGH, {}),  # running: not due
    ]
    made: list[Entry] = []
    for device, priority, times in spec:  # ids grow with creation: queue order is id order
        made.append(_entry(device, priority, **times))
    n = {i + 1: e.id for i, e in enumerate(made)}
    journal = _journal_of(str(tmp_path), [*(ev.queued(e) for e in made),
                                          ev.started(n[9], NOW, attempt=1, run="r")])
    work = eng.select(journal.ledger(), NOW)
    # High slots: 3 (c), 4 (a → its first entry 1 goes here). Normal: 2, 5 (b).
    # Low slots: 1's slot (a → 4), 8 (c).
    assert [e.id for e in work.due] == [n[3], n[1], n[2], n[5], n[4], n[8]]
    assert [e.id for e in work.expired] == [n[7]]
    assert work.next_due == made[5].not_before
    assert n[6] in [e.id for e in eng.select(journal.ledger(), NOW + 100).due]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from("abc"), st.sampled_from(list(Priority))),
        min_size=1,
        max_size=25,
    )
)
def test_never_runs_an_entry_before_an_earlier_one_of_its_device(
    spec: list[tuple[str, Priority]],
) -> None:
    made = [_entry(d, p) for d, p in spec]
    with tempfile.TemporaryDirectory() as tmp:
        order = eng.select(_journal_of(tmp, [ev.queued(e) for e in made]).ledger(), NOW).due
    assert sorted(e.id for e in order) == sorted(e.id for e in made)
    for device in "abc":
        ids = [e.id for e in order if e.device == device]
        assert ids == sorted(ids)
    # Priority order holds for the slots: the devices of the (rank, id)-sorted entries.
    slots = sorted(made, key=lambda e: (e.priority.rank, e.id))
    assert [e.device for e in order] == [e.device for e in slots]


entry_specs = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),  # device
        st.sampled_from(list(Priority)),
        st.sampled_from([-60.0, 0.0, 30.0]),  # not_before offset
        st.sampled_from([None, -1.0, 600.0]),  # expires offset
        st.sampled_from(["B1", "B2"]),
        st.booleans(),  # rescheduled once (two records: the slow path)
    ),
    max_size=25,
)


@settings(max_examples=40, deadline=None)
@given(entry_specs)
def test_due_expired_and_next_due_are_exactly_the_pending_entries_by_time(
    specs: list[tuple],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        entries = [
            make_entry(device, "switch", "x", {"state": True}, priority=prio, batch=batch,
                       not_before=NOW + nb, expires=None if ex is None else NOW + ex)
            for device, prio, nb, ex, batch, _ in specs
        ]
        events = [ev.queued(e) for e in entries]
        events += [
            ev.rescheduled(e.id, NOW, not_before=e.not_before, attempts=1)
            for e, spec in zip(entries, specs, strict=True) if spec[5]
        ]
        journal = _journal_of(tmp, events)
        work = eng.select(journal.ledger(), NOW)
        lapsed = {e.id for e in entries if e.expires is not None and e.expires <= NOW}
        ready = {e.id for e in entries if e.id not in lapsed and e.not_before <= NOW}
        assert sorted(e.id for e in work.expired) == sorted(lapsed)
        assert sorted(e.id for e in work.due) == sorted(ready)
        later = [e.not_before for e in entries
                 if e.not_before > NOW and (e.expires is None or e.expires > NOW)]
        assert work.next_due == (min(later) if later else None)
        # A filter selects the same entries in the same relative order (one device: id order).
        only = eng.select(journal.ledger(), NOW, only={"a"}, batch="B1")
        assert [e.id for e in only.due] == [
            e.id for e in work.due if e.device == "a" and e.batch == "B1"
        ]
