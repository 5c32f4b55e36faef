"""A drain of 100,000 entries in bounded memory: what it holds is let go as soon as it can be,
and what it shares between events is exactly what it would have written one by one."""

from __future__ import annotations

import gc
import time
from collections.abc import Sequence

from cmdctl.core.model import Entry
from cmdctl.drain import loops, outcomes, recovery
from cmdctl.drain.observer import Finished
from cmdctl.drain.options import DrainOptions
from cmdctl.drain.totals import Tally
from cmdctl.journal import events as ev
from cmdctl.journal.store import Journal
from cmdctl.simulator import Fleet

from .conftest import addresses, make_entry, queue, tvs


class Count:
    """Counts the live entries of `first` when the job of `second` connects."""

    def __init__(self, first: str, second: str) -> None:
        self.first, self.second = first, second
        self.alive: int | None = None

    def planned(self, entries: Sequence[Entry]) -> None:
        pass

    def step(self, device: str, text: str) -> None:
        if device == self.second and text == "connecting" and self.alive is None:
            gc.collect()
            self.alive = sum(1 for o in gc.get_objects()
                             if type(o) is Entry and o.device == self.first)

    def finished(self, done: Finished) -> None:
        pass

    def device_done(self, tally: Tally) -> None:
        pass


async def test_a_device_job_lets_go_of_its_entries_before_the_next_job_runs(
    journal: Journal,
) -> None:
    async with Fleet(tvs(2)) as fleet:
        one, two = (d.name for d in fleet.devices)
        queue(journal, [make_entry(name, "number", "volume", {"value": float(n)})
                        for n in range(50) for name in (one, two)])
        seen = Count(one, two)
        totals = await loops.drain(journal, loops.lookup(addresses(fleet)),
                                   DrainOptions(concurrency=1), observer=seen)
    assert totals.exit_code() == 0
    assert seen.alive == 0  # the pass kept none of them for its whole length


def _entries(n: int, attempts: int = 0) -> list[Entry]:
    from dataclasses import replace

    return [replace(make_entry("tv", "switch", "power", {"state": True}), attempts=attempts)
            for _ in range(n)]


def test_started_events_of_a_chunk_are_what_started_writes_and_share_their_fields() -> None:
    owner = recovery.me("RUN", recovery.DRAIN, time.time() + 30.0)
    chunk = _entries(3) + _entries(2, attempts=1) + _entries(1)
    now = time.time()
    got = recovery.starts(chunk, now, owner)
    one_by_one = [recovery.started(e, now, owner) for e in chunk]
    assert [ev.encode(e) for e in got] == [ev.encode(e) for e in one_by_one]
    assert got[0].fields is got[1].fields is got[5].fields
    assert got[3].fields is got[4].fields and got[3].fields is not got[0].fields
    assert got[3].fields["attempt"] == 2


def test_done_events_of_one_delivery_are_what_ev_done_writes_and_share_their_fields() -> None:
    a, b, c, d = _entries(4)
    now = time.time()
    one = outcomes.done(a, now, status="delivered", elapsed=0.012345, detail="").events[0]
    two = outcomes.done(b, now, status="delivered", elapsed=0.012345, detail="").events[0]
    other = outcomes.done(c, now, status="confirmed", elapsed=0.012345, detail="").events[0]
    moved = outcomes.done(d, now, status="delivered", elapsed=0.0123, detail="",
                          ran_on="tv-2").events[0]
    for event, entry, status, ran_on in ((one, a, "delivered", None), (two, b, "delivered", None),
                                         (other, c, "confirmed", None),
                                         (moved, d, "delivered", "tv-2")):
        plain = ev.done(entry.id, now, outcome=status, duration=round(event.fields["duration"], 4),
                        ran_on=ran_on)
        assert ev.encode(event) == ev.encode(plain)
    assert one.fields is two.fields
    assert other.fields is not one.fields and other.fields["outcome"] == "confirmed"
    assert moved.fields["ran_on"] == "tv-2"
