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
