"""Reading committed lines back by position (`store._Reader`): what it reads ahead going forward
through the file is what the file holds, however the reads jump about."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cmdctl.core.model import State
from cmdctl.journal import store
from cmdctl.journal.store import Journal

from .builders import queued_batch

SIZE = 5 * store.READ_AHEAD // 2  # the window is slid a few times, and cut at the end


def opened(path: Path, data: bytes) -> int:
    path.write_bytes(data)
    return os.open(path, os.O_RDONLY)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    start=st.integers(0, SIZE),
    reads=st.lists(
        st.tuples(st.booleans(), st.integers(0, SIZE), st.integers(1, 2 * store.READ_AHEAD)),
        max_size=60,
    ),
)
def test_every_read_is_what_the_file_holds(
    tmp_path_factory: pytest.TempPathFactory,
    seed: int,
    start: int,
    reads: list[tuple[bool, int, int]],
) -> None:
    data = random.Random(seed).randbytes(SIZE)
    path = tmp_path_factory.mktemp("r") / "journal.jsonl"
    reader = store._Reader(opened(path, data))
    assert reader.read_from(start) == data[start:]
    at = 0
    for forward, offset, size in reads:
        # Forward: the next line right after the last one (how a pass reads its entries).
        place = min(at if forward else offset, SIZE - 1)
        size = min(size, SIZE - place)  # a line never runs past the file's end
        assert reader.read_at(place, size) == data[place : place + size]
        at = place + size


def test_a_pass_over_many_lines_reads_the_file_a_window_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lines = [b'{"t":"queued","id":"%05d"}\n' % n for n in range(20_000)]
    data = b"".join(lines)
    reader = store._Reader(opened(tmp_path / "journal.jsonl", data))
    reader.read_from(len(data))  # everything was folded from elsewhere: read back by position
    calls = []
    real = os.pread

    def counted(fd: int, size: int, offset: int) -> bytes:
        calls.append(size)
        return real(fd, size, offset)

    monkeypatch.setattr(store.os, "pread", counted)
    offset = 0
    for line in lines:
        assert reader.read_at(offset, len(line)) == line
        offset += len(line)
    assert len(calls) <= len(data) // store.READ_AHEAD + 2
    calls.clear()
    assert reader.read_at(17, 9) == data[17:26]  # a jump back: that line alone
    assert calls == [9]


def test_pending_entries_read_back_by_position_are_the_ones_queued(tmp_path: Path) -> None:
    events = queued_batch(3_000)
    Journal(tmp_path).append(events)
    ledger = Journal(tmp_path).ledger()  # a fresh load: folded, lines read back by position
    assert [(n, e.id) for n, e in enumerate(ledger.entries(state=State.PENDING))] == list(
        enumerate(sorted(e.id for e in events))
    )
    assert [r[1] for r in ledger.rows_in(State.PENDING)] == [e.id for e in events]


def test_threads_reading_one_reader_each_get_their_own_lines(tmp_path: Path) -> None:
    # cmdctl loads a ledger per thread (serve's requests, a drain), but a library caller may
    # hand one ledger to several threads.
    import sys
    import threading

    lines = [b'{"t":"queued","id":"%06d"}\n' % n for n in range(30_000)]
    data = b"".join(lines)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    reader = store._Reader(opened(tmp_path / "journal.jsonl", data))
    reader.read_from(len(data))
    wrong: list[int] = []

    def walk(first: int) -> None:
        for n in range(first, len(lines), 3):  # forward, each thread through its own lines
            if reader.read_at(starts[n], len(lines[n])) != lines[n]:
                wrong.append(n)

    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as the interpreter can
    try:
        threads = [threading.Thread(target=walk, args=(k,)) for k in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(before)
    assert wrong == []
