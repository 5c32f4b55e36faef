"""The drain engine: run due journal entries on their devices, concurrently, durably, with retries.

One pass: recover entries a dead process left RUNNING, expire what is past `expires`, take the due
entries (`cmdctl.drain.due`), and run devices in parallel up to the concurrency, each over ONE
connection with its entries in queue order (`cmdctl.drain.job`). Every `started` and outcome event
goes through the group-commit `Recorder`, and what an outcome records is decided in
`cmdctl.drain.outcomes`. Transient failures (classified once, in `device.classify`) are retried
with tenacity under `retry`'s policy; whatever still fails at the end of the run is rescheduled
in the journal with backoff, or failed once it has used its attempts.

Fleet coordination, per pass, in this order: `--tags` / `--skip-tags` select entries; barriers
(`cmdctl.drain.gates`) hold back or skip entries whose `after:` step has not finished everywhere
(or, `scope: device`, on their device; a `delay:` gap is waited out in the device job);
coalescing (`cmdctl.drain.coalesce`) supersedes stale state-setting entries; rolling windows and
failure thresholds (`cmdctl.drain.rollout`) gate device jobs per batch. Entries with `pick`
(failover / any) run after the device jobs, one at a time, on the first reachable candidate.
The loops around passes (`drain`, `cmdctl run`) are in `cmdctl.drain.loops`.

The engine never prints: progress goes to an `Observer`, results come back as `Totals`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from collections.abc import Set as AbstractSet
from typing import TYPE_CHECKING

from cmdctl.core.errors import DeviceError, DeviceUnavailable
from cmdctl.core.ids import new_id
from cmdctl.core.model import Entry
from cmdctl.core.secretref import Lookup
from cmdctl.drain import gates, outcomes, recovery, retry
from cmdctl.drain import totals as tot
from cmdctl.drain.coalesce import coalesce
from cmdctl.drain.due import select, tagged
from cmdctl.drain.observer import Finished, NullObserver, Observer
from cmdctl.drain.options import (
    GAP_WAIT_S,
    HARD_STOP_GRACE_S,
    STOP_MARGIN_S,
    Clock,
    DrainOptions,
)
from cmdctl.drain.outcomes import Verdict
from cmdctl.drain.rollout import Rollout
from cmdctl.drain.totals import Totals
from cmdctl.journal import events as ev
from cmdctl.journal.events import Event
from cmdctl.journal.ledger import Ledger
from cmdctl.journal.recorder import Recorder
from cmdctl.journal.store import Journal

if TYPE_CHECKING:
    # The device side (and the client under it, ~0.15 s to import) loads when a pass has
    # work: a cron drain with nothing due never imports it.
    from cmdctl.device.address import DeviceAddress
    from cmdctl.drain.jobs import Job, Pass


class Engine:
    """Runs entries on devices; one instance per process run (`drain`, `run`, or immediate)."""

    def __init__(
        self,
        journal: Journal,
        devices: Callable[[str], DeviceAddress | None],
        options: DrainOptions | None = None,
        *,
        observer: Observer | None = None,
        clock: Clock = time.time,
        monotonic: Clock = time.monotonic,
        sleep: retry.Sleep = asyncio.sleep,
        kind: str = recovery.DRAIN,
        secrets: Lookup | None = None,
    ) -> None:
        self.journal = journal
        self.secrets = secrets  # `!secret` arguments: looked up just before sending
        self.devices = devices
        self.options = options or DrainOptions()
        self.observer: Observer = observer or NullObserver()
        self.clock = clock
        self.monotonic = monotonic
        self.sleep = sleep
        self.kind = kind
        self.run_id = new_id()
        self.began = monotonic()
        self.deadline = (
            None if self.options.max_time is None else self.began + self.options.max_time
        )
        self.stop_reason: str | None = None  # set once: no new work is taken after it
        self.interrupted = False
        self._stop_event: asyncio.Event | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._failed: dict[str, list[str]] = {}  # batch → devices failed in this run (thresholds)
        self.waiting = 0  # entries the last pass left for a barrier that may open in a later one

    # -- stopping ------------------------------------------------------------------------------

    def request_stop(self, reason: str, *, signal: bool = True) -> None:
        """Take no new work; a second request cancels what is in flight."""
        if signal:
            self.interrupted = True
        if self.stop_reason is not None:
            for task in list(self._tasks):
                task.cancel()
            return
        self.stop_reason = reason
        if self._stop_event is not None:
            self._stop_event.set()

    def stop_event(self) -> asyncio.Event:
        """Set once a stop is requested (created in the running loop on first use)."""
        if self._stop_event is None:
            self._stop_event = asyncio.Event()
            if self.stop_reason is not None:
                self._stop_event.set()
        return self._stop_event

    def stopping(self) -> bool:
        """True once no new work may start (signal, or --max-time near)."""
        if self.stop_reason is None and self.deadline is not None:
            margin = min(STOP_MARGIN_S, (self.options.max_time or 0.0) * 0.1)
            if self.monotonic() >= self.deadline - margin:
                self.stop_reason = "--max-time reached"
        return self.stop_reason is not None

    async def pause(self, seconds: float) -> None:
        """A backoff or pacing sleep that a stop request cuts short."""
        event = self.stop_event()
        if event.is_set():
            return
        if self.sleep is not asyncio.sleep:  # injected (tests): no real waiting
            await self.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)

    # -- a pass --------------------------------------------------------------------------------

    async def drain_pass(
        self, rec: Recorder, totals: Totals, ledger: Ledger,
        withdrawn: AbstractSet[str] = frozenset(),
    ) -> float | None:
        """Recover, expire, run everything due; returns the next due time (epoch) or None.

        `withdrawn` is kept current by the recorder's appends (`cmdctl.journal.claims`): entries a
        person cancelled after `ledger` was read, which this pass must not send.
        """
        self.stop_event()
        now = self.clock()
        options = self.options
        fixes = recovery.recover(ledger, now, run=self.run_id, holding_drain_lock=True)
        for _, verdict in fixes:
            for event in verdict.events:
                ledger.apply(event)
        work = select(ledger, now, only=options.only, batch=options.batch)
        if options.tags is not None or options.skip_tags is not None:
            work.due = [e for e in work.due if tagged(e, options.tags, options.skip_tags)]
        barrier = gates.check(ledger, work.due)
        work.due = barrier.ready
        self.waiting = barrier.waiting
        hold = barrier.hold  # empty unless a barrier holds something (a bulk's usual pass)
        gaps = [(e, hold[e.id]) for e in work.due if hold.get(e.id, now) > now] if hold else []
        later = [(e, until) for e, until in gaps if until - now > GAP_WAIT_S]
        if later:  # too long to wait out in this pass: queued, due then, with the note
            ids = {e.id for e, _ in later}
            work.due = [e for e in work.due if e.id not in ids]
            soonest = min(until for _, until in later)
            work.next_due = soonest if work.next_due is None else min(work.next_due, soonest)
        unknown = ledger.entries_of(e.id for e, v in fixes if v.outcome == tot.UNKNOWN)
        del ledger  # the caller holds none either: its raw lines are freed before the work
        settled: list[tuple[Entry, Verdict]] = [
            (entry, outcomes.skipped(entry, now, why)) for entry, why in barrier.skipped
        ]
        losers: Sequence[tuple[Entry, Entry]] = ()
        if options.coalesce:
            work.due, losers = coalesce(work.due, work.later, work.position)
        settled += [(entry, outcomes.expired(entry, now)) for entry in work.expired]
        events = [e for _, v in fixes for e in v.events]
        waits = [gates.due_then(entry, now, until) for entry, until in later]
        for entry, until in later:
            note = gates.delay_note(entry, until)
            if entry.reason != note:
                waits.insert(0, ev.held(entry.id, now, reason=note))
        events += [ev.superseded(old.id, now, by=new.id) for old, new in losers]
        events += [e for _, v in settled for e in v.events]
        if waits:
            await rec.durable(*waits)
            for entry, _ in later:
                totals.tally(entry.device).add(tot.SKIPPED)
            totals.left += len(later)
        if events:
            await rec.durable(*events)
            # A person may have cancelled some of these since `ledger` was read: the claims
            # dropped their events, so they are no outcome of this run and are not counted.
            gone = withdrawn
            totals.superseded += sum(1 for old, _ in losers if old.id not in gone)
            totals.recovered += sum(1 for e in events if e.type in (ev.UNKNOWN, ev.RESCHEDULED))
            for entry, verdict in settled:
                if entry.id not in gone:
                    tally = totals.tally(entry.device)
                    tally.add(verdict.outcome)
                    if verdict.outcome == tot.EXPIRED:
                        tally.error = f"{entry.device}: {entry.command.selector}: {verdict.detail}"
                    self._tell(entry, verdict)
            for entry in unknown:
                tally = totals.tally(entry.device)
                tally.add(tot.UNKNOWN)
                tally.error = f"{entry.device}: {entry.command.selector}: {entry.reason}"
                self.observer.finished(Finished(entry, tot.UNKNOWN, entry.reason or ""))
        due, next_at = work.due, work.next_due
        if self.stopping():
            for entry in due:
                totals.tally(entry.device).add(tot.SKIPPED)
            totals.left += len(due)
            return next_at
        picked = [e for e in due if e.coordination.pick is not None]
        if picked:
            due = [e for e in due if e.coordination.pick is None]
        if not due and not picked:
            return next_at
        from cmdctl.drain.jobs import Pass, plan

        rollout = Rollout(due, window=options.window, max_fail=options.max_fail,
                          fail_fast=options.fail_fast, failed=self._failed) or None
        ctx = Pass(rec, withdrawn, rollout, barrier.hold)
        jobs = plan(due, totals, self.devices)
        # Each job holds its own entries and drops them as they finish: nothing here may keep
        # the pass's lists (100,000 entries are a third of a drain's memory).
        del work, due, barrier, gaps
        if jobs:
            self.observer.planned([e for job in jobs for e in job.todo])
            await self.run_jobs(ctx, jobs, totals)
        if picked:
            self.observer.planned(picked)
            await self._run_picked(ctx, picked, totals)
        return next_at

    def _tell(self, entry: Entry, verdict: Verdict) -> None:
        self.observer.finished(Finished(entry, verdict.outcome, verdict.detail,
                                        verdict.duration, verdict.events))

    async def run_now(
        self, rec: Recorder, entries: Sequence[Entry], started: Sequence[Event], totals: Totals,
        *, requeue: bool,
    ) -> None:
        """Run entries this process already recorded as started (send, immediate steps), with
        their `started` events: no selection, no windows or thresholds (those are for drains)."""
        from cmdctl.drain.jobs import Pass, plan

        self.stop_event()
        jobs = plan(entries, totals, self.devices, requeue=requeue, prestarted=started)
        self.observer.planned(list(entries))
        await self.run_jobs(Pass(rec), jobs, totals)

    # -- device jobs ---------------------------------------------------------------------------

    async def run_jobs(self, ctx: Pass, jobs: list[Job], totals: Totals) -> None:
        """Run device jobs, at most `concurrency` at once; returns when all have ended."""
        from cmdctl.drain.job import DeviceJob

        slots = asyncio.Semaphore(max(1, self.options.concurrency))
        watchdog = asyncio.ensure_future(self._watchdog())
        try:
            tasks = []
            for job in jobs:
                task = asyncio.ensure_future(DeviceJob(self, ctx, job).run(slots, totals))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                tasks.append(task)
            results = await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            watchdog.cancel()
        for result in results:
            if isinstance(result, BaseException) and not isinstance(
                result, asyncio.CancelledError
            ):
                raise result

    async def _watchdog(self) -> None:
        """Cancel in-flight work once --max-time is past its grace (a 2nd signal does it too)."""
        if self.deadline is None:
            return
        while (wait := self.deadline + HARD_STOP_GRACE_S - self.monotonic()) > 0:
            await asyncio.sleep(min(wait, 0.5))
        for task in list(self._tasks):
            task.cancel()

    # -- failover / any-of -----------------------------------------------------------------------

    async def _run_picked(self, ctx: Pass, picked: Sequence[Entry], totals: Totals) -> None:
        """Entries with `pick`, one at a time, after the device jobs (one connection per device).

        failover: the first candidate that can be reached, in order; any: the least busy
        reachable one (fewest entries given an outcome in this run so far, then in order).
        """
        for n, entry in enumerate(picked):
            if self.stopping():
                rest = picked[n:]
                for left in rest:
                    totals.tally(left.device).add(tot.SKIPPED)
                totals.left += len(rest)
                return
            names = list(entry.coordination.candidates) or [entry.device]
            if entry.coordination.pick == "any":
                names.sort(key=lambda name: sum(totals.tally(name).counts.values()))
            task = asyncio.ensure_future(self._pick(ctx, entry, names, totals))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # this pass itself is being cancelled, not just that entry

    async def _pick(
        self, ctx: Pass, entry: Entry, names: Sequence[str], totals: Totals
    ) -> None:
        """Run `entry` on the first of `names` that connects; give up with the last error."""
        from cmdctl.drain.job import DeviceJob
        from cmdctl.drain.jobs import Job

        last: DeviceError = DeviceUnavailable(entry.device, "no candidate is in the inventory")
        for name in names:
            address = self.devices(name)
            if address is None:
                continue
            runner = DeviceJob(self, ctx, Job(name, address, [entry], totals.tally(name)))
            session = runner.session(address)
            try:
                self.observer.step(name, "connecting")
                await session.connect()
            except DeviceError as err:
                session.close()
                last = err
                self.observer.step(name, f"unreachable, next candidate: {err.reason}")
                continue
            began = self.monotonic()
            try:
                await runner.work(session)
            except DeviceError as err:
                runner.give_up(err)
            except asyncio.CancelledError:
                runner.abandon("stopped while in flight")
                runner.leave(totals)
                raise
            finally:
                session.close()
                runner.job.tally.seconds += self.monotonic() - began
            runner.leave(totals)
            return
        DeviceJob(self, ctx, Job(entry.device, None, [entry], totals.tally(entry.device))
                  ).give_up(last)
