"""The drain's run order (`cmdctl.drain.due.select`), rule by rule."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from cmdctl.core.model import Entry, Priority
from cmdctl.drain.due import select
from cmdctl.journal import events as ev
from cmdctl.journal.events import Event
from cmdctl.journal.store import Journal

from .conftest import make_entry

NOW = time.time()

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


def _journal_of(tmp: str, specs: list[tuple]) -> tuple[Journal, list[Entry]]:
    journal = Journal(Path(tmp))
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
    if events:
        journal.append(events)
    return journal, entries


@settings(max_examples=60, deadline=None)
@given(entry_specs)
def test_select_follows_the_run_order_rules(specs: list[tuple]) -> None:
    """Each rule of the run order, stated on its own (not by a second copy of the algorithm)."""
    with tempfile.TemporaryDirectory() as tmp:
        journal, entries = _journal_of(tmp, specs)
        work = select(journal.ledger(), NOW)
        expired = {e.id for e in entries if e.expires is not None and e.expires <= NOW}
        due = {e.id for e in entries if e.id not in expired and e.not_before <= NOW}
        # 1. exactly the due entries, each once; expired ones apart; nothing else
        assert sorted(e.id for e in work.due) == sorted(due)
        assert {e.id for e in work.expired} == expired
        # 2. a device's entries keep their queue order (ids are in queue order)
        for device in "abc":
            mine = [e.id for e in work.due if e.device == device]
            assert mine == sorted(mine)
        # 3. the devices take their turns in (priority, age) order: the k-th entry run belongs
        #    to the device of the k-th due entry by priority rank, then id
        by_rank = sorted((e for e in entries if e.id in due), key=lambda e: (e.priority.rank, e.id))
        assert [e.device for e in work.due] == [e.device for e in by_rank]
        # 4. the next due time: the earliest entry not due yet and not expired
        later = [e.not_before for e in entries if e.id not in due and e.id not in expired]
        assert work.next_due == (min(later) if later else None)
        # 5. --limit and --batch narrow it without changing the order
        only = select(journal.ledger(), NOW, only={"a"}, batch="B1")
        assert [e.id for e in only.due] == [
            e.id for e in work.due if e.device == "a" and e.batch == "B1"
        ]


def test_a_later_high_priority_entry_pulls_its_device_forward_without_overtaking() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal(Path(tmp))
        a1 = make_entry("a", "switch", "x", {"state": True}, not_before=NOW - 9)
        b1 = make_entry("b", "switch", "x", {"state": True}, not_before=NOW - 9)
        a2 = make_entry("a", "switch", "x", {"state": False}, priority=Priority.HIGH,
                        not_before=NOW - 9)
        journal.append([ev.queued(e) for e in (a1, b1, a2)])
        order = [e.id for e in select(journal.ledger(), NOW).due]
        # a2 is high: device a goes first, but with its older a1 (queue order), then a2, then b.
        assert order == [a1.id, a2.id, b1.id]


def _events_journal(tmp: str, events: list[Event]) -> Journal:
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
    journal = _events_journal(str(tmp_path), [*(ev.queued(e) for e in made),
                                          ev.started(n[9], NOW, attempt=1, run="r")])
    work = select(journal.ledger(), NOW)
    # High slots: 3 (c), 4 (a → its first entry 1 goes here). Normal: 2, 5 (b).
    # Low slots: 1's slot (a → 4), 8 (c).
    assert [e.id for e in work.due] == [n[3], n[1], n[2], n[5], n[4], n[8]]
    assert [e.id for e in work.expired] == [n[7]]
    assert work.next_due == made[5].not_before
    assert n[6] in [e.id for e in select(journal.ledger(), NOW + 100).due]


def test_only_waiting_entries_a_due_one_could_supersede_are_decoded(tmp_path: Path) -> None:
    """`later` holds the waiting entries that set an entity a due entry sets on the same device,
    and nothing else: a journal may hold 100,000 entries scheduled for tonight."""
    old_volume = make_entry("a", "number", "volume", {"value": 1.0}, batch="B0",
                            not_before=NOW + 60)
    old_power = make_entry("a", "switch", "power", {"state": True}, batch="B0",
                           not_before=NOW + 60)
    elsewhere = make_entry("b", "number", "volume", {"value": 1.0}, batch="B0",
                           not_before=NOW + 60)
    due_volume = make_entry("a", "number", "volume", {"value": 2.0}, batch="B1",
                            not_before=NOW - 1)
    journal = _events_journal(str(tmp_path), [ev.queued(e) for e in
                                              (old_volume, old_power, elsewhere, due_volume)])
    work = select(journal.ledger(), NOW)
    assert [e.id for e in work.due] == [due_volume.id]
    assert [e.id for e in work.later] == [old_volume.id]
    assert work.position[old_volume.id] < work.position[due_volume.id]
