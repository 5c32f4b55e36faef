"""The drain engine against simulated devices: order, exactly once, outcomes, journal state."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from cmdctl.core.errors import ExitCode, JournalError
from cmdctl.core.model import Priority
from cmdctl.drain import engine as eng
from cmdctl.drain import loops, recovery
from cmdctl.drain.due import select
from cmdctl.drain.options import DrainOptions
from cmdctl.journal.events import Event
from cmdctl.journal.framing import Mark
from cmdctl.journal.store import AppendReport, Journal
from cmdctl.simulator import Fleet

from .conftest import addresses, make_entry, queue, received, states, tvs


async def test_three_devices_every_command_once_in_order(journal: Journal, fleet3: Fleet) -> None:
    entries = []
    for dev in fleet3.devices:
        for n in range(5):
            entries.append(make_entry(dev.name, "number", "volume", {"value": float(10 + n)}))
        entries.append(make_entry(dev.name, "switch", "tv_power", {"state": True}))
        entries.append(make_entry(dev.name, "button", "identify", {}, idempotent=False))
    queue(journal, entries)
    totals = await loops.drain(journal, loops.lookup(addresses(fleet3)))
    assert totals.exit_code() == 0, totals.as_dict()
    assert set(states(journal).values()) == {"done"}
    for dev in fleet3.devices:
        want = [("number.volume", {"value": float(10 + n)}) for n in range(5)]
        want += [("switch.tv_power", {"state": True}), ("button.identify", {})]
        assert received(dev) == want
    # Only the last command to an entity in a chunk is verified; earlier ones end delivered.
    assert totals.count("confirmed") == 2 * 3
    assert totals.count("delivered") == 5 * 3


async def test_expired_entries_are_dropped_not_run(journal: Journal, fleet3: Fleet) -> None:
    now = time.time()
    stale = make_entry("bar-tv-1", "switch", "tv_power", {"state": True}, expires=now - 1)
    fresh = make_entry("bar-tv-1", "switch", "tv_power", {"state": False}, expires=now + 60)
    queue(journal, [stale, fresh])
    totals = await loops.drain(journal, loops.lookup(addresses(fleet3)))
    assert received(fleet3.devices[0]) == [("switch.tv_power", {"state": False})]
    ledger = journal.ledger()
    assert ledger.get(stale.id).state.value == "expired"
    assert "expired" in (ledger.get(stale.id).reason or "")
    assert ledger.get(fresh.id).state.value == "done"
    # 0 means "everything asked for is done": an entry that will never run is failed for good.
    assert totals.count("expired") == 1 and totals.exit_code() == ExitCode.FAILED
    assert totals.devices["bar-tv-1"].error == (
        "bar-tv-1: switch.tv_power: expired before it could run"
    )


async def test_a_device_missing_from_the_inventory_keeps_its_work_queued(
    journal: Journal, fleet3: Fleet
) -> None:
    (ghost,) = queue(journal, [make_entry("patio-tv", "switch", "tv_power", {"state": True})])
    totals = await loops.drain(journal, loops.lookup(addresses(fleet3)))
    assert journal.ledger().get(ghost.id).state.value == "pending"
    assert totals.exit_code() == ExitCode.UNREACHABLE
    assert "patio-tv: not in the inventory" in (totals.devices["patio-tv"].error or "")


async def test_entries_of_a_dead_drain_are_recovered_then_run(
    journal: Journal, fleet3: Fleet
) -> None:
    dead = recovery.Owner("DEADRUN", recovery.DRAIN, 999_999, recovery.this_host(), 0.0)
    idem = make_entry("bar-tv-1", "number", "volume", {"value": 42.0})
    press = make_entry("bar-tv-1", "button", "identify", {}, idempotent=False)
    queue(journal, [idem, press])
    journal.append([recovery.started(idem, time.time(), dead),
                    recovery.started(press, time.time(), dead)])
    totals = await loops.drain(journal, loops.lookup(addresses(fleet3)))
    assert received(fleet3.devices[0]) == [("number.volume", {"value": 42.0})]  # no press
    ledger = journal.ledger()
    assert ledger.get(idem.id).state.value == "done"
    assert ledger.get(press.id).state.value == "unknown"
    assert totals.recovered == 2
    assert totals.exit_code() == ExitCode.FAILED  # a person must look at the press


async def test_priority_then_age_and_queue_order_per_device(journal: Journal) -> None:
    async with Fleet(tvs(2)) as fleet:
        low = make_entry("bar-tv-1", "number", "volume", {"value": 1.0}, priority=Priority.LOW)
        normal = make_entry("bar-tv-2", "number", "volume", {"value": 2.0})
        high_late = make_entry("bar-tv-1", "number", "volume", {"value": 3.0},
                               priority=Priority.HIGH)
        queue(journal, [low, normal, high_late])
        work = select(journal.ledger(), time.time())
        # bar-tv-1's high entry pulls its earlier low one forward, never overtakes it
        assert [e.id for e in work.due] == [low.id, normal.id, high_late.id]
        await loops.drain(journal, loops.lookup(addresses(fleet)), DrainOptions(concurrency=1))
        assert [a["value"] for _, a in received(fleet.devices[0])] == [1.0, 3.0]


async def test_run_mode_picks_up_entries_when_they_fall_due(
    journal: Journal, fleet3: Fleet
) -> None:
    engine = eng.Engine(journal, loops.lookup(addresses(fleet3)))
    later = make_entry("bar-tv-2", "switch", "tv_power", {"state": True},
                       not_before=time.time() + 0.8)
    queue(journal, [later])
    serving = asyncio.ensure_future(loops.serve(engine, poll=0.05))
    await asyncio.sleep(0.3)
    assert received(fleet3.devices[1]) == []  # not due yet
    now_entry = queue(journal, [make_entry("bar-tv-1", "switch", "tv_power", {"state": True})])
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and not (
        received(fleet3.devices[0]) and received(fleet3.devices[1])
    ):
        await asyncio.sleep(0.05)
    engine.request_stop("test over", signal=False)
    totals = await asyncio.wait_for(serving, 5)
    assert received(fleet3.devices[0]) == [("switch.tv_power", {"state": True})]
    assert received(fleet3.devices[1]) == [("switch.tv_power", {"state": True})]
    assert {journal.ledger().state(e.id).value for e in (later, *now_entry)} == {"done"}
    assert totals.count("confirmed") == 2


class FailingJournal(Journal):
    """A journal whose disk fills up after `ok` appends."""

    def __init__(self, directory: Path, ok: int) -> None:
        super().__init__(directory)
        self.ok = ok

    def _spend(self) -> None:
        if self.ok <= 0:
            raise JournalError("writing journal.jsonl failed, nothing accepted: No space left")
        self.ok -= 1

    def append(self, events: Sequence[Event]) -> AppendReport:
        self._spend()
        return super().append(events)

    def append_since(
        self, since: Mark | None, decide: Callable[[Sequence[bytes], bool], Sequence[Event]]
    ) -> tuple[AppendReport, Mark]:
        self._spend()  # the drain's appends (cmdctl.journal.claims)
        return super().append_since(since, decide)


async def test_a_journal_that_stops_accepting_stops_the_drain_before_any_unrecorded_press(
    tmp_path: Path, fleet3: Fleet
) -> None:
    journal = FailingJournal(tmp_path / "j", ok=1)
    presses = [make_entry("bar-tv-1", "button", "identify", {}, idempotent=False)
               for _ in range(3)]
    queue(journal, presses)  # uses the one good append
    with pytest.raises(JournalError, match="nothing accepted"):
        await loops.drain(journal, loops.lookup(addresses(fleet3)))
    # Its `started` could not be recorded, so no press was sent.
    assert received(fleet3.devices[0]) == []
    assert {Journal(tmp_path / "j").ledger().state(e.id).value for e in presses} == {"pending"}


async def test_the_ledger_a_pass_reads_is_freed_before_the_devices_work(
    journal: Journal, fleet3: Fleet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A drain of 100,000 entries must not hold the journal's raw lines while it sends."""
    import weakref

    from cmdctl.journal.ledger import Ledger

    queue(journal, [make_entry(dev.name, "switch", "tv_power", {"state": True})
                    for dev in fleet3.devices])
    read: list[weakref.ref[Ledger]] = []
    alive: list[bool] = []
    load, run_jobs = Journal.load, eng.Engine.run_jobs

    def spy_load(self: Journal) -> Any:
        scan, ledger = load(self)
        read.append(weakref.ref(ledger))
        return scan, ledger

    async def spy_run_jobs(self: eng.Engine, *args: Any) -> None:
        alive.append(read[-1]() is not None)
        await run_jobs(self, *args)

    monkeypatch.setattr(Journal, "load", spy_load)
    monkeypatch.setattr(eng.Engine, "run_jobs", spy_run_jobs)
    totals = await loops.drain(journal, loops.lookup(addresses(fleet3)))
    assert totals.exit_code() == 0 and alive == [False]
