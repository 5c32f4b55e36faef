"""Group commit: few appends for many events; `durable` means on disk; failures surface."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from cmdctl.core.errors import JournalError
from cmdctl.journal import events as ev
from cmdctl.journal.events import Event
from cmdctl.journal.recorder import Recorder
from cmdctl.journal.store import Journal

from .conftest import make_entry


def _queued(n: int) -> list[Event]:
    return [ev.queued(make_entry("d", "switch", "x", {"state": True})) for _ in range(n)]


async def test_concurrent_events_are_grouped_into_few_appends(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    events = _queued(1000)

    async def producer(chunk: list[Event]) -> None:
        for event in chunk:
            rec.record(event)
            await asyncio.sleep(0)

    async with Recorder(journal.append, interval=0.01) as rec:
        await asyncio.gather(*(producer(events[i::10]) for i in range(10)))
    assert rec.written == 1000
    assert rec.appends < 20
    assert len(journal.ledger()) == 1000


async def test_durable_returns_only_once_the_event_is_on_disk(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    async with Recorder(journal.append, interval=10.0) as rec:  # would otherwise wait 10 s
        first, second = _queued(2)
        rec.record(first)
        await asyncio.wait_for(rec.durable(second), 2.0)
        on_disk = set(journal.ledger().ids())
        assert {first.id, second.id} <= on_disk


class Failing:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, events: Sequence[Event]) -> None:
        self.calls += 1
        raise JournalError("fsync of journal.jsonl failed, nothing accepted: EIO")


async def test_a_failed_append_reaches_every_waiter_and_stops_further_records() -> None:
    failing = Failing()
    rec = Recorder(failing, interval=0.01)
    rec.start()
    a, b, c = _queued(3)
    rec.record(a)
    with pytest.raises(JournalError, match="nothing accepted"):
        await asyncio.wait_for(rec.durable(b), 2.0)
    with pytest.raises(JournalError):
        rec.record(c)
    with pytest.raises(JournalError):
        await rec.close()
    assert failing.calls == 1  # never retried: the fsync outcome is unknowable


async def test_close_writes_what_is_left(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    rec = Recorder(journal.append, interval=10.0)
    rec.start()
    events = _queued(5)
    rec.record_many(events)
    await asyncio.wait_for(rec.close(), 2.0)
    assert len(journal.ledger()) == 5


class Slow:
    """An append that records what each call carried, and takes its time (as an fsync does)."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.sizes: list[int] = []

    def __call__(self, events: Sequence[Event]) -> None:
        import time

        time.sleep(0.01)
        self.sizes.append(len(events))
        self.journal.append(events)


async def test_a_backlog_is_written_in_appends_of_at_most_max_pending(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    slow = Slow(journal)
    events = _queued(1000)
    async with Recorder(slow, interval=10.0, max_pending=64) as rec:
        for event in events:
            rec.record(event)  # a backlog far past max_pending before the writer runs
        await asyncio.wait_for(rec.flush(), 10.0)
    assert max(slow.sizes) <= 64 and rec.largest <= 64
    assert sum(slow.sizes) == rec.written == 1000
    assert list(journal.ledger().ids()) == [e.id for e in events]  # in order, all of them


async def test_the_events_of_one_record_call_travel_in_one_append(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    slow = Slow(journal)
    groups = [_queued(n) for n in (3, 50, 40, 200, 7)]
    async with Recorder(slow, interval=10.0, max_pending=64) as rec:
        for group in groups:
            rec.record_many(group)
    assert slow.sizes == [53, 40, 200, 7]  # whole calls, up to 64 unless one call is larger


async def test_waiters_are_released_in_order_as_soon_as_their_events_are_on_disk(
    tmp_path: Path,
) -> None:
    import threading

    journal = Journal(tmp_path)
    slow = Slow(journal)
    gate = threading.Event()

    def held(events: Sequence[Event]) -> None:
        gate.wait(10.0)  # the first append is in flight while the rest below arrives
        slow(events)

    released: list[tuple[str, int]] = []  # (who, events on disk when released)

    async def wait(name: str, events: list[Event]) -> None:
        await rec.durable(*events)
        on_disk = len(journal.ledger())
        assert on_disk >= int(name)  # never released before its own events are on disk
        released.append((name, on_disk))

    async with Recorder(held, interval=10.0, max_pending=50) as rec:
        zeroth = asyncio.ensure_future(wait("1", _queued(1)))
        await asyncio.sleep(0.05)  # the writer took that event and waits at the gate
        first = asyncio.ensure_future(wait("51", _queued(50)))
        await asyncio.sleep(0)  # `first` asks before the backlog below comes
        for _ in range(20):
            rec.record_many(_queued(50))
        last = asyncio.ensure_future(wait("1052", _queued(1)))
        await asyncio.sleep(0)
        gate.set()
        await asyncio.wait_for(asyncio.gather(zeroth, first, last), 10.0)
    assert [name for name, _ in released] == ["1", "51", "1052"]
    assert released[1][1] < 1052  # the first waiter did not wait behind the whole backlog


async def test_a_failed_split_append_fails_the_waiters_queued_after_it_too() -> None:
    failing = Failing()
    rec = Recorder(failing, interval=10.0, max_pending=2)
    rec.start()
    rec.record_many(_queued(2))
    rec.record_many(_queued(2))
    with pytest.raises(JournalError, match="nothing accepted"):
        await asyncio.wait_for(rec.durable(*_queued(1)), 2.0)
    with pytest.raises(JournalError):
        await rec.close()
    assert failing.calls == 1
