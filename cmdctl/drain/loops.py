"""The loops around engine passes: one `drain` (cron) and `cmdctl run` (foreground), each under
the drain lock with one group-commit recorder, and the device lookup they take."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from cmdctl.drain import collector
from cmdctl.drain.engine import Engine
from cmdctl.drain.observer import Observer
from cmdctl.drain.options import MAX_PASSES, DrainOptions
from cmdctl.drain.totals import Totals
from cmdctl.journal.claims import Claims
from cmdctl.journal.ledger import Ledger
from cmdctl.journal.recorder import Recorder
from cmdctl.journal.store import Journal

if TYPE_CHECKING:
    from cmdctl.device.address import DeviceAddress

#: `cmdctl run` checks the journal for new work this often when idle (one stat call).
POLL_S = 0.2


def lookup(devices: Mapping[str, DeviceAddress]) -> Callable[[str], DeviceAddress | None]:
    """A device lookup over a mapping of name → address."""
    return devices.get


async def drain(
    journal: Journal,
    devices: Callable[[str], DeviceAddress | None],
    options: DrainOptions | None = None,
    *,
    observer: Observer | None = None,
) -> Totals:
    """One drain under the drain lock (BusyError at once if another drain holds it)."""
    return await drain_with(Engine(journal, devices, options, observer=observer))


async def drain_with(engine: Engine) -> Totals:
    """One drain by `engine` (its journal, devices, options and observer)."""
    journal = engine.journal
    totals = Totals()
    began = time.monotonic()
    with journal.try_drain_lock(), collector.paced():
        claims = Claims(journal)
        async with Recorder(claims.append) as rec:
            for _ in range(MAX_PASSES):
                before = totals.entries - totals.held
                await engine.drain_pass(rec, totals, await _read(claims), claims.withdrawn)
                # Another pass only when entries wait on a barrier this pass may have opened.
                progressed = totals.entries - totals.held > before
                if not engine.waiting or not progressed or engine.stopping():
                    break
                await rec.flush()
    totals.interrupted = engine.interrupted
    totals.timed_out = engine.stop_reason == "--max-time reached"
    totals.seconds = time.monotonic() - began
    return totals


async def _read(claims: Claims) -> Ledger:
    """The journal read for a pass, in a worker thread, handed over and not kept: the caller
    passes it straight to `drain_pass`, which drops it once it has its entries, so the raw
    lines are freed while the devices work. (The result does not travel back through the
    thread's futures: they keep it until the cycle collector runs.)"""
    box: list[Ledger] = []
    await asyncio.to_thread(_look, claims, box)
    return box.pop()


def _look(claims: Claims, box: list[Ledger]) -> None:
    """Read the journal for a pass (the recorder is idle: nothing of ours is in flight)."""
    scan, ledger = claims.journal.load()
    claims.seen(scan)
    box.append(ledger)


def journal_stamp(journal: Journal) -> tuple[int, int]:
    """(size, mtime_ns) of the journal file: changes whenever anything is appended."""
    try:
        st = journal.path.stat()
    except FileNotFoundError:
        return (0, 0)
    return (st.st_size, st.st_mtime_ns)


async def serve(engine: Engine, *, poll: float = POLL_S) -> Totals:
    """`cmdctl run`: drain, then wait for new or newly due work, until a stop is requested."""
    journal = engine.journal
    totals = Totals()
    began = time.monotonic()
    stop = engine.stop_event()
    with journal.try_drain_lock():
        claims = Claims(journal)
        async with Recorder(claims.append) as rec:
            while engine.stop_reason is None:
                stamp = journal_stamp(journal)
                with collector.paced():  # not while idle: only a pass makes that much
                    wake_at = await engine.drain_pass(
                        rec, totals, await _read(claims), claims.withdrawn
                    )
                    await rec.flush()
                seen = journal_stamp(journal)
                if seen != stamp:
                    continue  # we (or someone) appended: look again before idling
                while engine.stop_reason is None and journal_stamp(journal) == seen:
                    if wake_at is not None and engine.clock() >= wake_at:
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), poll)
    totals.interrupted = engine.interrupted
    totals.seconds = time.monotonic() - began
    return totals
