"""`journal.delta`: a read through the writers' records folds to exactly what a full read does."""

from __future__ import annotations

import os
import tempfile
from array import array
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cmdctl.journal import delta, snapshot
from cmdctl.journal import events as ev
from cmdctl.journal.events import Event
from cmdctl.journal.ledger import Ledger
from cmdctl.journal.store import Journal

from .builders import entry, event


def full(journal: Journal) -> tuple[int, list[int], list[object], list[object]]:
    """What a read of every line gives: committed count, damaged lines, entries, problems."""
    scan = journal.read()
    ledger = Ledger.from_lines(scan.lines)
    return (
        len(scan.lines),
        [d.line for d in scan.damaged],
        [(i, ledger.state(i), ledger.get(i)) for i in ledger.ids()],
        sorted(map(repr, ledger.problems)),
    )


def loaded(journal: Journal) -> tuple[int, list[int], list[object], list[object]]:
    scan, ledger = journal.load()
    return (
        scan.committed,
        [d.line for d in scan.damaged],
        [(i, ledger.state(i), ledger.get(i)) for i in ledger.ids()],
        sorted(map(repr, ledger.problems)),
    )


def summary_of(journal: Journal) -> object:
    return journal.load()[1].summary()


def test_every_append_leaves_a_record_and_a_read_uses_them(journal: Journal) -> None:
    first = [entry(device=f"tv-{i}") for i in range(5)]
    journal.append([ev.queued(e) for e in first])
    journal.append([ev.started(first[0].id, 2.0, attempt=1, run="r"),
                    ev.done(first[0].id, 3.0, outcome="confirmed", duration=0.1)])
    journal.append([ev.cancelled(first[1].id, 4.0, who="bob")])
    scan, _ = journal.load()
    assert scan.start == journal.path.stat().st_size  # nothing left to read from the journal
    assert scan.committed == 8
    assert loaded(journal) == full(journal)
    assert summary_of(journal).counts  # pending times come from the records, not the lines


def test_records_of_another_file_or_a_rewritten_one_are_not_used(journal: Journal) -> None:
    journal.append([ev.queued(entry()) for _ in range(3)])
    blob = (journal.directory / delta.DELTA_FILE).read_bytes()
    # The same bytes in a new file (a copy, a restore): another inode, so the records are
    # ignored and the journal itself is read.
    copy = journal.path.with_suffix(".copy")
    copy.write_bytes(journal.path.read_bytes())  # a new inode while the old one still exists
    copy.replace(journal.path)
    scan, _ = journal.load()
    assert scan.start == 0 and loaded(journal) == full(journal)
    # The same inode with other bytes at the record's end: the CRC check refuses it.
    journal.append([ev.queued(entry())])
    size = journal.path.stat().st_size
    with open(journal.path, "r+b") as f:
        f.seek(size - 20)
        f.write(b"0" * 8)  # breaks that line's CRC too: it must show as damaged
    scan, _ = journal.load()
    assert scan.damaged and loaded(journal) == full(journal)
    assert blob  # (the first file's records were there all along)


def test_a_torn_or_damaged_delta_file_costs_only_speed(journal: Journal) -> None:
    for _ in range(3):
        journal.append([ev.queued(entry()) for _ in range(4)])
    path = journal.directory / delta.DELTA_FILE
    blob = path.read_bytes()
    path.write_bytes(blob[:-7])  # a crash while the last record was written
    scan, _ = journal.load()
    assert 0 < scan.start < journal.path.stat().st_size
    assert loaded(journal) == full(journal)
    damaged = bytearray(blob)
    damaged[100] ^= 0xFF  # inside the first record's payload
    path.write_bytes(bytes(damaged))
    scan, _ = journal.load()
    assert scan.start == 0 and loaded(journal) == full(journal)
    path.write_bytes(b"not a delta file at all")
    assert loaded(journal) == full(journal)


def test_a_line_written_behind_the_journals_back_breaks_the_chain(journal: Journal) -> None:
    journal.append([ev.queued(entry())])
    with journal.path.open("ab") as f:
        f.write(b"garbage\n")
    journal.append([ev.queued(entry())])
    scan, _ = journal.load()
    assert [d.line for d in scan.damaged] == [2]
    assert loaded(journal) == full(journal)


def test_a_snapshot_prunes_the_records_it_covers_and_compaction_drops_them(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal.append([ev.queued(entry()) for _ in range(10)])
    path = journal.directory / delta.DELTA_FILE
    assert path.exists()
    monkeypatch.setattr(snapshot, "SNAPSHOT_AFTER_BYTES", 0)
    journal.load()  # writes a snapshot covering everything
    assert not path.exists()
    e = entry()
    journal.append([ev.queued(e), ev.cancelled(e.id, 5.0, who="bob")])
    assert path.exists()
    journal.compact(keep_seconds=0.0, now=1e12)
    assert not path.exists()
    assert loaded(journal) == full(journal)


def test_the_delta_file_is_private(journal: Journal) -> None:
    old = os.umask(0)
    try:
        journal.append([ev.queued(entry())])
    finally:
        os.umask(old)
    assert (journal.directory / delta.DELTA_FILE).stat().st_mode & 0o777 == 0o600


# -- the property: any history reads back the same through records, snapshot and lines -----

ops = st.lists(
    st.one_of(
        st.tuples(st.just("queue"), st.integers(1, 6)),
        st.tuples(st.just("batches"), st.integers(1, 12)),  # one append, a batch per entry
        st.tuples(st.sampled_from([ev.STARTED, ev.DONE, ev.CANCELLED, ev.RETRIED, ev.HELD,
                                   ev.RESCHEDULED, ev.REPRIORITISED, "custom", "ghost"]),
                  st.integers(0, 50)),
        st.tuples(st.just("garbage"), st.just(0)),
        st.tuples(st.just("requeue"), st.integers(0, 50)),
        st.tuples(st.just("mixed"), st.integers(0, 50)),
        st.tuples(st.just("read"), st.sampled_from([0, 1 << 40])),
        st.tuples(st.just("tear-delta"), st.integers(1, 40)),
        st.tuples(st.just("compact"), st.just(0)),
    ),
    min_size=1,
    max_size=25,
)


def _event(kind: str, entry_id: str, ts: float) -> Event:
    if kind == "ghost":
        return ev.done("NO-SUCH-ID", ts, outcome="confirmed", duration=0.1)
    return event(kind, entry_id, ts)  # "custom_kind": a type the delta cannot code


@settings(max_examples=60, deadline=None)
@given(ops)
def test_any_history_reads_the_same_with_or_without_the_caches(
    history: list[tuple[str, int]],
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal(Path(tmp) / "j")
        ids: list[str] = []
        queued: dict[str, Event] = {}
        for step, (op, n) in enumerate(history):
            ts = 10.0 + step
            if op in ("queue", "batches"):
                made = [entry(device=f"tv-{i % 3}", created=ts,
                              batch=f"B{step}-{i}" if op == "batches" else "B1")
                        for i in range(n)]
                events = [ev.queued(e) for e in made]
                queued.update((e.id, q) for e, q in zip(made, events, strict=True))
                ids += [e.id for e in made]
                journal.append(events)
            elif op == "mixed":
                # One append, as a drain's group commit mixes them: an event that arrives
                # before its entry's `queued` (an unknown id there), the queued, its start, and
                # an event for an older entry.
                e = entry(created=ts)
                q = ev.queued(e)
                queued[e.id] = q
                older = [_event(ev.DONE, ids[n % len(ids)], ts)] if ids else []
                ids.append(e.id)
                journal.append([_event(ev.CANCELLED, e.id, ts), q,
                                _event(ev.STARTED, e.id, ts), *older])
            elif op == "requeue" and ids:
                journal.append([queued[ids[n % len(ids)]]])  # "queued twice"
            elif op == "garbage" and journal.path.exists():
                with journal.path.open("ab") as f:
                    f.write(b"garbage\n")
            elif op == "read":
                snapshot.SNAPSHOT_AFTER_BYTES, before = n, snapshot.SNAPSHOT_AFTER_BYTES
                try:
                    journal.load()
                finally:
                    snapshot.SNAPSHOT_AFTER_BYTES = before
            elif op == "tear-delta":
                path = journal.directory / delta.DELTA_FILE
                if path.exists():
                    blob = path.read_bytes()
                    path.write_bytes(blob[: max(0, len(blob) - n)])
            elif op == "compact":
                journal.compact(keep_seconds=0.0, now=1e12)
            elif ids:
                journal.append([_event(op, ids[n % len(ids)], ts)])
            assert loaded(journal) == full(journal)
        if ids:
            whole = Ledger.from_lines(journal.read().lines)
            assert summary_of(journal) == whole.summary()
            assert journal.load()[1].batches() == whole.batches()


def test_records_survive_short_writes(journal: Journal, monkeypatch: pytest.MonkeyPatch) -> None:
    # A write that takes at most 100 bytes: the journal and its delta record must loop, or the
    # record is torn and the next reader falls back to reading the journal.
    real_write = os.write
    monkeypatch.setattr(os, "write", lambda fd, data: real_write(fd, bytes(data[:100])))
    journal.append([ev.queued(entry(device=f"tv-{i}")) for i in range(20)])
    monkeypatch.undo()
    scan, _ = journal.load()
    assert scan.start == journal.path.stat().st_size  # the record covered the whole append
    assert loaded(journal) == full(journal)


@settings(max_examples=300, deadline=None)
@given(
    # zero bytes in every place of a length's four, and side by side across two lengths
    st.lists(st.integers(0, 1 << 20) | st.sampled_from([0, 1, 255, 256, 1 << 16, 1 << 24]),
             max_size=40),
    st.sampled_from([0, 1, 4096, (1 << 32) - (1 << 21), (1 << 32) - 1, 1 << 32]),
)
def test_line_places_are_offset_and_length_as_the_ledger_packs_them(
    lengths: list[int], start: int
) -> None:
    # Each place is `offset << 32 | (length - 1)`; a line that starts at 4 GiB or later, or
    # an empty one (length 0, newline missing), has no place: the reader then reads the lines.
    offsets = [start + sum(lengths[:i]) for i in range(len(lengths))]
    fits = all(o < 1 << 32 for o in offsets) and all(n >= 1 for n in lengths)
    expected = [o << 32 | (n - 1) for o, n in zip(offsets, lengths, strict=True)]
    got = delta._places(array("I", lengths), start)
    assert (list(got) if got is not None else None) == (expected if fits else None)
