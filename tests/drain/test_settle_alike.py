"""A chunk delivered together is settled in one sweep (`DeviceJob._settle_alike`): the same
events, outcomes, observer reports and job bookkeeping as settling each entry on its own."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest

from cmdctl.core.errors import DeviceError, DeviceRejected, DeviceUnavailable
from cmdctl.core.model import NO_COORDINATION, Condition, Coordination, Entry, State
from cmdctl.device.segment import Outcome
from cmdctl.drain import recovery
from cmdctl.drain.engine import Engine
from cmdctl.drain.job import DeviceJob
from cmdctl.drain.jobs import Pass, plan
from cmdctl.drain.observer import Finished, NullObserver
from cmdctl.drain.totals import Totals
from cmdctl.journal.events import Event
from cmdctl.journal.recorder import Recorder
from cmdctl.journal.store import Journal

from .conftest import make_entry

NOW = 1_800_000_000.0


class Seen(NullObserver):
    def __init__(self) -> None:
        self.done: list[Finished] = []

    def finished(self, done: Finished) -> None:
        self.done.append(done)


async def settled(
    tmp: Path, chunk: list[Entry], results: Sequence[Outcome | DeviceError], *, alike: bool
) -> tuple[list[Event], list[Finished], object]:
    """Settle `chunk` through `_results`, the sweep allowed or not; what each part saw."""
    random.seed(17)  # a mismatch is rescheduled with jitter: the same jitter for both
    seen = Seen()
    engine = Engine(Journal(tmp), lambda name: None, observer=seen, clock=lambda: NOW)
    written: list[Event] = []
    totals = Totals()
    job = plan(chunk, totals, lambda name: None)[0]
    # The first half was started by this run (their `started` events are in `running`).
    half = chunk[: len(chunk) // 2]
    starts = recovery.starts(half, NOW - 1, recovery.me("run", recovery.DRAIN, NOW + 60))
    job.started.update(e.id for e in half)
    job.running.update(zip((e.id for e in half), starts, strict=True))
    async with Recorder(written.extend) as rec:
        runner = DeviceJob(engine, Pass(rec), job)
        if not alike:
            runner._settle_alike = lambda chunk, result: False  # type: ignore[method-assign]
        runner._results(chunk, results)
    state = (job.todo, sorted(job.started), job.running, job.finished, totals.as_dict())
    return written, seen.done, state


def volume(n: int, **changes: object) -> Entry:
    entry = make_entry("tv", "number", "volume", {"value": float(n)}, step=f"s{n % 3}")
    return replace(entry, **changes)  # type: ignore[arg-type]


TAGGED = Coordination(tags=("bar",))


@pytest.mark.parametrize("elapsed", [0.123456789, 0.0, 2.5])
@pytest.mark.parametrize("status", ["delivered", "confirmed", "mismatch"])
async def test_one_sweep_settles_as_each_entry_would(
    tmp_path: Path, elapsed: float, status: str
) -> None:
    chunk = [volume(n, coordination=TAGGED if n % 4 == 0 else NO_COORDINATION) for n in range(9)]
    shared = Outcome(status, elapsed, "ok" if status == "confirmed" else "")
    swept = await settled(tmp_path / "a", chunk, [shared] * len(chunk), alike=True)
    each = await settled(tmp_path / "b", chunk, [shared] * len(chunk), alike=False)
    assert swept == each
    events, reports, _ = swept
    if status != "mismatch":  # a mismatch is retried or failed (`outcomes.mismatch`), not done
        assert [(e.type, e.id) for e in events] == [("done", e.id) for e in chunk]
        assert [len(r.events) for r in reports] == [2] * 4 + [1] * 5  # started, done / done


async def test_the_shared_head_is_swept_and_the_rest_settled_one_by_one(tmp_path: Path) -> None:
    # As a drain sees it: 99 delivered by one barrier, the last to the entity confirmed on its
    # own, then more delivered by the next barrier, a rejection and an unreachable device.
    chunk = [volume(n) for n in range(8)]
    first, second = Outcome("delivered", 0.02), Outcome("delivered", 0.05)
    results: list[Outcome | DeviceError] = [
        first, first, first, Outcome("confirmed", 0.03, "ok"), second, second,
        DeviceRejected("tv", "no number 'volume'"), DeviceUnavailable("tv", "refused"),
    ]
    swept = await settled(tmp_path / "a", chunk, results, alike=True)
    each = await settled(tmp_path / "b", chunk, results, alike=False)
    assert swept == each
    # A head of one: only that one is swept.
    alone = [first, Outcome("confirmed", 0.03, "ok"), first, first]
    assert await settled(tmp_path / "c", chunk[:4], alone, alike=True) == await settled(
        tmp_path / "d", chunk[:4], alone, alike=False
    )
    events, reports, state = swept
    assert [r.outcome for r in reports] == [*["delivered"] * 3, "confirmed", "delivered",
                                            "delivered", "failed"]
    assert [e.id for e in events] == [e.id for e in chunk[:7]]
    todo = state[0]
    assert isinstance(todo, list) and todo[len(chunk):] == chunk[7:]  # unreachable: again later


@pytest.mark.parametrize(
    "odd",
    [
        {"coordination": Coordination(pick="any", candidates=("tv-0", "tv-1"))},
        {"coordination": Coordination(wait_until=Condition("number", "volume", 1.0, 5.0))},
        {"state": State.CANCELLED},
    ],
    ids=["pick", "wait_until", "finished"],
)
async def test_a_chunk_with_an_entry_that_needs_more_is_settled_one_by_one(
    tmp_path: Path, odd: dict[str, object]
) -> None:
    chunk = [volume(n) for n in range(4)] + [volume(4, **odd)]
    shared = Outcome("delivered", 0.01)
    engine = Engine(Journal(tmp_path), lambda name: None, clock=lambda: NOW)
    job = plan(chunk, Totals(), lambda name: None)[0]
    written: list[Event] = []
    async with Recorder(written.extend) as rec:
        assert DeviceJob(engine, Pass(rec), job)._settle_alike(chunk, shared) is False
    assert written == [] and job.finished == {}  # it settled nothing: the general path will
    swept = await settled(tmp_path / "a", chunk, [shared] * len(chunk), alike=True)
    each = await settled(tmp_path / "b", chunk, [shared] * len(chunk), alike=False)
    assert swept == each
