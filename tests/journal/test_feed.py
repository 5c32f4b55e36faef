"""The live feed (`cmdctl.journal.feed`): every committed event once, in order, past compaction."""

from __future__ import annotations

import asyncio
import os

from cmdctl.journal import archive
from cmdctl.journal import events as ev
from cmdctl.journal.events import Event
from cmdctl.journal.feed import EventFilter, Feed, FeedEvent
from cmdctl.journal.store import Journal
from tests.journal.builders import entry


def _keys(items: list[FeedEvent]) -> list[tuple[str, str, float]]:
    return [(i.event.type, i.event.id, i.event.ts) for i in items]


def _all(journal: Journal) -> list[tuple[str, str, float]]:
    """Every event ever written: archived ones and those still in the journal."""
    archived, current = archive.read_all(journal.directory)
    return [(e.type, e.id, e.ts) for e in map(ev.decode, [*archived, *current])]


def test_an_absent_journal_is_empty_then_followed_from_its_first_line(journal: Journal) -> None:
    feed = Feed(journal.directory)
    assert feed.poll() == []
    e = entry(created=1.0)
    journal.append([ev.queued(e)])
    (item,) = feed.poll()
    assert item.event.type == ev.QUEUED and item.entry == ev_entry(item)
    assert feed.poll() == []


def ev_entry(item: FeedEvent) -> object:
    from cmdctl.journal.entry import entry_from_queued

    return entry_from_queued(item.event)


def test_each_poll_returns_what_was_committed_since_with_its_entry(journal: Journal) -> None:
    a, b = entry(created=1.0, device="tv-1"), entry(created=1.0, device="tv-2")
    journal.append([ev.queued(a), ev.queued(b)])
    feed = Feed(journal.directory)
    assert [i.entry.device for i in feed.poll() if i.entry] == ["tv-1", "tv-2"]
    journal.append([ev.started(b.id, 2.0, attempt=1, run="r")])
    journal.append([ev.done(b.id, 3.0, outcome="confirmed", duration=1.0)])
    got = feed.poll()
    assert _keys(got) == [(ev.STARTED, b.id, 2.0), (ev.DONE, b.id, 3.0)]
    assert all(i.entry is not None and i.entry.device == "tv-2" for i in got)


def test_an_uncommitted_append_waits_for_its_last_line(journal: Journal) -> None:
    a = entry(created=1.0)
    journal.append([ev.queued(a)])
    feed = Feed(journal.directory)
    feed.poll()
    from cmdctl.journal.framing import frame_lines

    lines = frame_lines(
        ev.encode_many(
            [
                ev.started(a.id, 2.0, attempt=1, run="r"),
                ev.done(a.id, 3.0, outcome="delivered", duration=1),
            ]
        )
    )
    with open(journal.path, "ab") as f:
        f.write(lines[0])
    assert feed.poll() == []
    with open(journal.path, "ab") as f:
        f.write(lines[1])
    assert [i.event.type for i in feed.poll()] == [ev.STARTED, ev.DONE]


def _finish(journal: Journal, n: int, ts: float) -> list[str]:
    ids = []
    for i in range(n):
        e = entry(created=ts, device=f"tv-{i}")
        journal.append([ev.queued(e)])
        journal.append([ev.done(e.id, ts + 1, outcome="confirmed", duration=1.0)])
        ids.append(e.id)
    return ids


def test_a_compaction_loses_nothing_and_repeats_nothing(journal: Journal) -> None:
    _finish(journal, 3, 10.0)  # old: archived
    live = entry(created=500.0)
    journal.append([ev.queued(live)])  # live: kept
    feed = Feed(journal.directory)
    seen = feed.poll()
    inode = os.stat(journal.path).st_ino
    journal.append([ev.started(live.id, 501.0, attempt=1, run="r")])  # not yet polled
    journal.compact(keep_seconds=100.0, now=1000.0)
    assert os.stat(journal.path).st_ino != inode
    journal.append([ev.done(live.id, 502.0, outcome="confirmed", duration=1.0)])
    seen += feed.poll()
    seen += feed.poll()
    assert sorted(_keys(seen)) == sorted(_all(journal))  # each event once, archived or not
    assert len(set(_keys(seen))) == len(seen) == 9
    assert [i.event.type for i in seen[-2:]] == [ev.STARTED, ev.DONE]
    assert seen[-1].entry is not None and seen[-1].entry.id == live.id


def test_two_compactions_between_polls_repeat_nothing(journal: Journal) -> None:
    keep = entry(created=900.0)
    journal.append([ev.queued(keep)])
    feed = Feed(journal.directory)
    seen = feed.poll()
    journal.compact(keep_seconds=100.0, now=1000.0)
    journal.append([ev.started(keep.id, 950.0, attempt=1, run="r")])
    journal.compact(keep_seconds=100.0, now=1000.0)
    journal.append([ev.done(keep.id, 960.0, outcome="confirmed", duration=1.0)])
    seen += feed.poll()
    assert [i.event.type for i in seen] == [ev.QUEUED, ev.STARTED, ev.DONE]


def test_filter_by_time_batch_and_device() -> None:
    a = entry(batch="B1", device="tv-1")
    item = FeedEvent(Event(ev.DONE, a.id, 50.0, {}), a)
    assert EventFilter()(item)
    assert EventFilter(since=40.0, batch="B1", device="tv-1")(item)
    assert not EventFilter(since=60.0)(item)
    assert not EventFilter(batch="B2")(item)
    assert not EventFilter(device="tv-2")(item)
    assert not EventFilter(device="tv-1")(FeedEvent(item.event, None))


def test_as_json_puts_the_entry_first_and_keeps_the_fields() -> None:
    a = entry(batch="B1", device="tv-1")
    item = FeedEvent(ev.failed(a.id, 5.0, error="tv-1: refused", kind="unreachable"), a)
    assert item.as_json() == {
        "id": a.id,
        "batch": "B1",
        "device": "tv-1",
        "selector": "light.backlight",
        "type": "failed",
        "ts": 5.0,
        "error": "tv-1: refused",
        "kind": "unreachable",
    }


def test_afollow_yields_events_appended_while_it_waits(journal: Journal) -> None:
    a = entry(created=1.0)

    async def main() -> list[str]:
        feed = Feed(journal.directory)
        got: list[str] = []

        async def consume() -> None:
            async for item in feed.afollow(wait=0.01):
                got.append(item.event.type)
                if len(got) == 2:
                    return

        task = asyncio.create_task(consume())
        await asyncio.sleep(0.05)
        journal.append([ev.queued(a)])
        journal.append([ev.started(a.id, 2.0, attempt=1, run="r")])
        await asyncio.wait_for(task, timeout=5)
        feed.close()
        return got

    assert asyncio.run(main()) == [ev.QUEUED, ev.STARTED]
