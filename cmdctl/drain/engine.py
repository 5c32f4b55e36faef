"""The drain engine: run due journal entries on their devices, concurrently, durably, with retries.

One pass: recover entries a dead process left RUNNING, expire what is past `expires`, take the due
entries (priority, then age; per device in queue order), and run devices in parallel up to the
concurrency, each over ONE connection with its entries in queue order. Every `started` and
outcome event goes through the group-commit `Recorder`; for an `idempotent: false` entry the
`started` event is on disk before its command is sent, so a crash can never repeat it silently.

Within a device, idempotent entries are sent in chunks (back to back, one delivery barrier); an
`idempotent: false` entry travels in a chunk of its own, so a dropped connection puts at most that
one entry in doubt. Transient failures (classified once, in `device.classify`) are retried with
tenacity under `retry`'s policy; whatever still fails at the end of the run is rescheduled
in the journal with backoff, or failed once it has used its attempts.

Fleet coordination, per pass, in this order: `--tags` / `--skip-tags` select entries; barriers
(`cmdctl.drain.gates`) hold back or skip entries whose `after:` step has not finished everywhere;
coalescing (`cmdctl.drain.coalesce`) supersedes stale state-setting entries; rolling windows and
failure thresholds (`cmdctl.drain.rollout`) gate device jobs per batch; a device's `pace` sends its
commands one at a time, spaced. Entries with `pick` (failover / any) run after the device jobs,
one at a time, on the first reachable candidate. A drain makes further passes (at most
`MAX_PASSES`) while entries wait on a barrier that its own work may have opened.

The engine never prints: progress goes to an `Observer`, results come back as `Totals`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Protocol

from cmdctl.core.errors import DeviceError, DeviceRejected, DeviceUnavailable
from cmdctl.core.ids import new_id
from cmdctl.core.model import Entry, State
from cmdctl.device.classify import DeliveryUnknown
from cmdctl.device.transport import (
    CONNECT_TIMEOUT,
    VERIFY_TIMEOUT,
    DeviceAddress,
    DeviceSession,
    Outcome,
)
from cmdctl.drain import gates, recovery, retry
from cmdctl.drain import totals as tot
from cmdctl.drain.coalesce import coalesce
from cmdctl.drain.rollout import Gate, Limit, Rollout
from cmdctl.drain.totals import Tally, Totals
from cmdctl.journal import events as ev
from cmdctl.journal.claims import Claims
from cmdctl.journal.entry import entry_of
from cmdctl.journal.ledger import Ledger
from cmdctl.journal.recorder import Recorder
from cmdctl.journal.store import Journal

#: Devices worked on at once: spares the Wi-Fi AP (esphome-protocol.md §5 says 32–64) while
#: a 50-device venue still goes in one wave.
DEFAULT_CONCURRENCY = 64
#: Idempotent entries of one device sent back to back before one delivery barrier.
CHUNK = 512
#: Stop taking new work this long before --max-time, so in-flight work can finish in time.
STOP_MARGIN_S = 2.0
#: After --max-time (or a second signal), cancel what is still in flight after this grace.
HARD_STOP_GRACE_S = 5.0
#: A closed socket reaches the device a few loop turns later; a windowed device job waits this
#: long after closing so the next device of the window never overlaps it on the device side.
WINDOW_SETTLE_S = 0.01
#: Passes one drain makes while entries wait for a barrier that its own work may open; a chain
#: of `after:` steps deeper than this finishes in the next drain.
MAX_PASSES = 32

Clock = Callable[[], float]


class Observer(Protocol):
    """What the engine tells whoever shows progress (the CLI); every method must be cheap."""

    def planned(self, entries: Sequence[Entry]) -> None:
        """These due entries will be worked on in this pass."""

    def step(self, device: str, text: str) -> None:
        """`device` is now doing `text` ("connecting", "sending 3", "retry 2 in 1.0s: …")."""

    def finished(self, entry: Entry, outcome: str, detail: str) -> None:
        """`entry` got `outcome` (a `cmdctl.drain.totals` name) in this run."""

    def device_done(self, tally: Tally) -> None:
        """Nothing more will happen on this device in this pass."""


class NullObserver:
    """An observer that ignores everything."""

    def planned(self, entries: Sequence[Entry]) -> None:
        """Ignore."""

    def step(self, device: str, text: str) -> None:
        """Ignore."""

    def finished(self, entry: Entry, outcome: str, detail: str) -> None:
        """Ignore."""

    def device_done(self, tally: Tally) -> None:
        """Ignore."""


@dataclass(frozen=True, slots=True)
class DrainOptions:
    """How a drain runs; durations in seconds."""

    max_time: float | None = None  # stop taking work this long after the start
    concurrency: int = DEFAULT_CONCURRENCY
    only: Collection[str] | None = None  # device names (--limit), None: every device
    batch: str | None = None  # only this batch
    policy: retry.RetryPolicy = retry.DEFAULT
    connect_timeout: float = CONNECT_TIMEOUT
    verify_timeout: float = VERIFY_TIMEOUT
    job_timeout: float | None = None  # per device call; None: the device's own, else default
    chunk: int = CHUNK
    window: Limit | None = None  # --window N | N%: devices of a batch in progress at once
    max_fail: Limit | None = None  # --max-fail N | N%: failed devices before a batch is held
    fail_fast: bool = False  # --fail-fast: max_fail 1
    tags: frozenset[str] | None = None  # --tags: only entries with one of these tags
    skip_tags: frozenset[str] | None = None  # --skip-tags: not entries with one of these
    coalesce: bool = True  # supersede older state-setting entries (see cmdctl.drain.coalesce)


@dataclass(slots=True)
class _Job:
    """One device's work in one pass."""

    device: str
    address: DeviceAddress | None
    todo: list[Entry]  # entries without an outcome in this run yet, in queue order
    tally: Tally
    started: set[str] = dataclasses.field(default_factory=set)  # RUNNING in the journal now
    requeue: bool = True  # transient give-up → rescheduled (False: failed; immediate steps)
    prestarted: bool = False  # `started` already on disk (send / immediate steps)
    failed_batches: set[str] = dataclasses.field(default_factory=set)  # failed/unreachable/unknown
    last_sent: float | None = None  # monotonic time the last command left (for `pace`)


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
    ) -> None:
        self.journal = journal
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
        self._rec: Recorder | None = None
        self._withdrawn: AbstractSet[str] = frozenset()
        self._rollout: Rollout | None = None
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

    # -- a pass --------------------------------------------------------------------------------

    async def drain_pass(
        self, rec: Recorder, totals: Totals, ledger: Ledger,
        withdrawn: AbstractSet[str] = frozenset(),
    ) -> float | None:
        """Recover, expire, run everything due; returns the next due time (epoch) or None.

        `withdrawn` is kept current by the recorder's appends (`cmdctl.journal.claims`): entries a
        person cancelled after `ledger` was read, which this pass must not send.
        """
        self._rec = rec
        self._withdrawn = withdrawn
        self.stop_event()
        now = self.clock()
        fixes = recovery.recover(ledger, now, run=self.run_id, holding_drain_lock=True)
        for event in fixes:
            ledger.apply(event)
        unknown = [ledger.get(e.id) for e in fixes if e.type == ev.UNKNOWN]
        work = select(ledger, now, only=self.options.only, batch=self.options.batch)
        if self.options.tags is not None or self.options.skip_tags is not None:
            work.due = [e for e in work.due
                        if tagged(e, self.options.tags, self.options.skip_tags)]
        barrier = gates.check(ledger, work.due)
        work.due = barrier.ready
        self.waiting = barrier.waiting
        del ledger  # the caller holds none either: its raw lines are freed before the work
        for entry, why in barrier.skipped:
            fixes.append(ev.skipped(entry.id, now, reason=why))
        losers: Sequence[tuple[Entry, Entry]] = ()
        if self.options.coalesce:
            work.due, losers = coalesce(work.due)
            fixes += [ev.superseded(old.id, now, by=new.id) for old, new in losers]
        fixes += [recovery.expired(entry, now) for entry in work.expired]
        if fixes:
            await rec.durable(*fixes)
            # A person may have cancelled some of these since `ledger` was read: the claims
            # dropped their events, so they are no outcome of this run and are not counted.
            gone = self._withdrawn
            totals.superseded += sum(1 for old, _ in losers if old.id not in gone)
            totals.recovered += sum(1 for e in fixes if e.type in (ev.UNKNOWN, ev.RESCHEDULED))
            for entry, why in barrier.skipped:
                if entry.id not in gone:
                    totals.tally(entry.device).add(tot.SKIPPED)
                    self.observer.finished(entry, tot.SKIPPED, why)
            for entry in work.expired:
                if entry.id not in gone:
                    totals.tally(entry.device).add(tot.EXPIRED)
                    self.observer.finished(entry, tot.EXPIRED, "expired before it could run")
            for entry in unknown:
                tally = totals.tally(entry.device)
                tally.add(tot.UNKNOWN)
                tally.error = f"{entry.device}: {entry.command.selector}: {entry.reason}"
                self.observer.finished(entry, tot.UNKNOWN, entry.reason or "")
        due, next_at = work.due, work.next_due
        if self.stopping():
            for entry in due:
                totals.tally(entry.device).add(tot.SKIPPED)
            totals.left += len(due)
            return next_at
        picked = [e for e in due if e.coordination.pick is not None]
        if picked:
            due = [e for e in due if e.coordination.pick is None]
        self._rollout = Rollout(due, window=self.options.window, max_fail=self.options.max_fail,
                                fail_fast=self.options.fail_fast, failed=self._failed) or None
        jobs = self.plan_jobs(due, totals)
        del work, due  # each job holds its own entries and drops them as they finish
        if jobs:
            self.observer.planned([e for job in jobs for e in job.todo])
            await self.run_jobs(jobs, totals)
        if picked:
            self.observer.planned(picked)
            await self._run_picked(picked, totals)
        return next_at

    # -- failover / any-of -----------------------------------------------------------------------

    async def _run_picked(self, picked: Sequence[Entry], totals: Totals) -> None:
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
            task = asyncio.ensure_future(self._pick(entry, names, totals))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # this pass itself is being cancelled, not just that entry

    async def _pick(self, entry: Entry, names: Sequence[str], totals: Totals) -> None:
        """Run `entry` on the first of `names` that connects; give up with the last error."""
        last: DeviceError = DeviceUnavailable(entry.device, "no candidate is in the inventory")
        for name in names:
            address = self.devices(name)
            if address is None:
                continue
            session = DeviceSession(
                address,
                connect_timeout=self.options.connect_timeout,
                verify_timeout=self.options.verify_timeout,
                job_timeout=self.options.job_timeout,
            )
            job = _Job(name, address, [entry], totals.tally(name))
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
                await self._session(job, session)
            except DeviceError as err:
                self._give_up(job, err)
            except asyncio.CancelledError:
                self._abandon(job, "stopped while in flight")
                self._leave(job, totals)
                raise
            finally:
                session.close()
                job.tally.seconds += self.monotonic() - began
            self._leave(job, totals)
            return
        self._give_up(_Job(entry.device, None, [entry], totals.tally(entry.device)), last)

    def plan_jobs(
        self, entries: Sequence[Entry], totals: Totals, *, requeue: bool = True,
        prestarted: bool = False,
    ) -> list[_Job]:
        """One job per device, devices in order of their first entry, entries in queue order."""
        jobs: dict[str, _Job] = {}
        for entry in entries:
            job = jobs.get(entry.device)
            if job is None:
                job = jobs[entry.device] = _Job(
                    entry.device, self.devices(entry.device), [], totals.tally(entry.device),
                    requeue=requeue, prestarted=prestarted,
                )
            job.todo.append(entry)
            if prestarted:
                job.started.add(entry.id)
        return list(jobs.values())

    async def run_jobs(self, jobs: list[_Job], totals: Totals) -> None:
        """Run device jobs, at most `concurrency` at once; returns when all have ended."""
        slots = asyncio.Semaphore(max(1, self.options.concurrency))
        watchdog = asyncio.ensure_future(self._watchdog())
        try:
            tasks = []
            for job in jobs:
                task = asyncio.ensure_future(self._guarded(job, slots, totals))
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

    async def _guarded(self, job: _Job, slots: asyncio.Semaphore, totals: Totals) -> None:
        rollout = self._rollout
        if rollout is None:
            await self._slotted(job, slots, totals)
            return
        entered = await rollout.enter(rollout.of(e.batch for e in job.todo))
        try:
            await self._slotted(job, slots, totals, entered)
            if any(g.window is not None for g in entered):
                await asyncio.sleep(WINDOW_SETTLE_S)
        finally:
            rollout.leave(entered, job.failed_batches, job.device)

    def _hold(self, job: _Job, entered: Sequence[Gate], totals: Totals) -> None:
        """Entries of batches past their failure threshold stay pending, with the reason."""
        closed = {g.batch: g.reason() for g in entered if g.closed}
        if not closed:
            return
        now = self.clock()
        held = [e for e in job.todo if e.batch in closed]
        # Only a new reason is recorded: `cmdctl run` meets the same held entries every pass.
        self._recorder().record_many(ev.held(e.id, now, reason=closed[e.batch])
                                     for e in held if e.reason != closed[e.batch])
        job.todo[:] = [e for e in job.todo if e.batch not in closed]
        job.tally.add(tot.SKIPPED, len(held))
        totals.held += len(held)
        for entry in held:
            self.observer.finished(entry, tot.SKIPPED, closed[entry.batch])

    async def _slotted(
        self, job: _Job, slots: asyncio.Semaphore, totals: Totals, entered: Sequence[Gate] = ()
    ) -> None:
        async with slots:
            self._hold(job, entered, totals)  # decided when the job really starts
            if self._withdrawn:  # all of them cancelled meanwhile: do not even connect
                self._drop_withdrawn(job, job.todo)
            if not job.todo:
                self.observer.device_done(job.tally)
                return
            if self.stopping():
                self._leave(job, totals)
                return
            began = self.monotonic()
            try:
                await self._device_job(job)
            except asyncio.CancelledError:
                self._abandon(job, "stopped while in flight")
                self._leave(job, totals)
                raise
            finally:
                job.tally.seconds += self.monotonic() - began
                self.observer.device_done(job.tally)
            self._leave(job, totals)

    def _leave(self, job: _Job, totals: Totals) -> None:
        """Entries the job did not get to: back to pending (no attempt counted)."""
        if not job.todo:
            return
        now = self.clock()
        rec = self._recorder()
        for entry in job.todo:
            if entry.id in job.started:
                rec.record(ev.rescheduled(entry.id, now, not_before=entry.not_before,
                                          attempts=entry.attempts))
        totals.left += len(job.todo)
        job.tally.add(tot.SKIPPED, len(job.todo))
        job.todo.clear()

    def _abandon(self, job: _Job, reason: str) -> None:
        """Cancelled mid-flight: idempotent entries back to pending, others unknown."""
        now = self.clock()
        rec = self._recorder()
        keep = []
        for entry in job.todo:
            if entry.id not in job.started:
                keep.append(entry)
                continue
            if entry.idempotent:
                keep.append(entry)  # `_leave` puts it back to pending
            else:
                why = (f"{reason}; the command may or may not have reached {entry.device} and is "
                       f"not safe to repeat (`cmdctl queue retry {entry.id}` runs it again)")
                rec.record(ev.unknown(entry.id, now, reason=why))
                self._outcome(job, entry, tot.UNKNOWN, why)
        job.todo[:] = keep

    # -- one device ----------------------------------------------------------------------------

    async def _device_job(self, job: _Job) -> None:
        if job.address is None:
            if job.prestarted:
                self._give_up(job, DeviceRejected(job.device, "not in the inventory"))
                return
            # Not in this inventory: leave the work queued (another inventory may know it).
            job.tally.add(tot.UNREACHABLE, len(job.todo))
            job.tally.error = f"{job.device}: not in the inventory; its entries stay queued"
            job.failed_batches.update(e.batch for e in job.todo)
            for entry in job.todo:
                self.observer.finished(entry, tot.UNREACHABLE, job.tally.error)
            job.todo.clear()
            return
        session = DeviceSession(
            job.address,
            connect_timeout=self.options.connect_timeout,
            verify_timeout=self.options.verify_timeout,
            job_timeout=self.options.job_timeout,
        )

        def on_retry(err: DeviceError, delay: float) -> None:
            job.tally.retried += 1
            self.observer.step(job.device, f"retry in {delay:.1f}s: {err.reason}")

        controller = retry.retrying(
            self.options.policy,
            deadline=None if self.deadline is None else self.deadline - STOP_MARGIN_S,
            clock=self.monotonic,
            sleep=self._sleep,
            on_retry=on_retry,
        )
        try:
            async for attempt in controller:
                with attempt:
                    if self.stopping() and attempt.retry_state.attempt_number > 1:
                        return
                    await self._session(job, session)
        except DeviceRejected as err:  # the connection itself was refused for good
            self._give_up(job, err)
        except DeviceUnavailable as err:  # still failing at the end of the run
            self._give_up(job, err)
        finally:
            session.close()

    async def _sleep(self, seconds: float) -> None:
        """Backoff sleep that a stop request cuts short."""
        event = self.stop_event()
        if event.is_set():
            return
        if self.sleep is not asyncio.sleep:  # injected (tests): no real waiting
            await self.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(event.wait(), seconds)

    async def _session(self, job: _Job, session: DeviceSession) -> None:
        """Connect (or reuse the connection) and work through `job.todo` in order."""
        rec = self._recorder()
        self.observer.step(job.device, "connecting")
        await session.connect()
        pace = _pace(job.address)
        while job.todo:
            if self.stopping():
                return
            if pace is not None:
                # One command at a time, each ended by its own barrier, `pace` apart.
                chunk = job.todo[:1]
                if job.last_sent is not None:
                    wait = job.last_sent + pace - self.monotonic()
                    if wait > 0:
                        self.observer.step(job.device, f"pacing {wait:.2f}s")
                        await self._sleep(wait)
                        if self.stopping():
                            return
            else:
                chunk = self._next_chunk(job.todo)
            # An entry started by an earlier try of this run is on disk as RUNNING already.
            fresh = [e for e in chunk if e.id not in job.started]
            if fresh:
                now = self.clock()
                owner = recovery.me(self.run_id, self.kind, now + session.job_timeout)
                starts = [recovery.started(e, now, owner, attempt=e.attempts + 1) for e in fresh]
                job.started.update(e.id for e in fresh)
                # On disk before the command leaves, and decided against `queue cancel`
                # under the journal lock (cmdctl.journal.claims): a cancel from then on is refused.
                await rec.durable(*starts)
                if self._withdrawn and self._drop_withdrawn(job, chunk):
                    continue
            self.observer.step(job.device, f"sending {len(chunk)}")
            job.last_sent = self.monotonic()
            results = await session.execute_many(
                [e.command for e in chunk], verify=[e.verify for e in chunk]
            )
            transient = self._settle(job, chunk, results)
            del job.todo[: len(chunk)]
            if transient is not None:
                raise transient

    def _drop_withdrawn(self, job: _Job, chunk: Sequence[Entry]) -> bool:
        """Take entries cancelled while this run held them out of `job`; True if any were."""
        gone = [e for e in chunk if e.id in self._withdrawn]
        if not gone:
            return False
        ids = {e.id for e in gone}
        job.todo[:] = [e for e in job.todo if e.id not in ids]
        job.started.difference_update(ids)
        job.tally.add(tot.SKIPPED, len(gone))
        for entry in gone:
            self.observer.finished(entry, tot.SKIPPED, "cancelled while this run held it")
        return True

    def _next_chunk(self, todo: list[Entry]) -> list[Entry]:
        """A run of idempotent entries (up to the chunk size), or one non-idempotent entry."""
        if not todo[0].idempotent:
            return todo[:1]
        out = []
        for entry in todo[: self.options.chunk]:
            if not entry.idempotent:
                break
            out.append(entry)
        return out

    def _settle(
        self, job: _Job, chunk: list[Entry], results: Sequence[Outcome | DeviceError]
    ) -> DeviceUnavailable | None:
        """Record each result; entries worth another try go back to the head of `todo`."""
        now = self.clock()
        rec = self._recorder()
        again: list[Entry] = []
        transient: DeviceUnavailable | None = None
        for entry, result in zip(chunk, results, strict=True):
            if isinstance(result, Outcome):
                if result.status == "mismatch":
                    self._mismatch(job, entry, result, now)
                    continue
                ran_on = job.device if entry.coordination.pick is not None else None
                rec.record(ev.done(entry.id, now, outcome=result.status,
                                   duration=round(result.elapsed, 4), ran_on=ran_on))
                job.started.discard(entry.id)
                self._outcome(job, entry, result.status, result.detail)
            elif isinstance(result, DeviceRejected):
                rec.record(ev.failed(entry.id, now, error=result.one_line(), kind=result.kind))
                job.started.discard(entry.id)
                self._outcome(job, entry, tot.FAILED, result.one_line())
            elif isinstance(result, DeviceUnavailable):
                if _written(result) and not entry.idempotent:
                    why = (f"{result.reason}; it is not safe to repeat "
                           f"(`cmdctl queue retry {entry.id}` runs it again)")
                    rec.record(ev.unknown(entry.id, now, reason=why))
                    job.started.discard(entry.id)
                    self._outcome(job, entry, tot.UNKNOWN, f"{entry.device}: {why}")
                else:
                    again.append(entry)
                    transient = transient or result
            else:  # a DeviceError outside the tree's branches: treat as permanent
                rec.record(ev.failed(entry.id, now, error=result.one_line(), kind=result.kind))
                job.started.discard(entry.id)
                self._outcome(job, entry, tot.FAILED, result.one_line())
        if again:
            job.todo[len(chunk) : len(chunk)] = again
        return transient

    def _mismatch(self, job: _Job, entry: Entry, result: Outcome, now: float) -> None:
        rec = self._recorder()
        error = f"{entry.device}: {entry.command.selector}: state did not follow ({result.detail})"
        attempt = entry.attempts + 1
        if entry.idempotent and attempt < entry.max_attempts and job.requeue:
            delay = retry.reschedule_delay(attempt, self.options.policy)
            rec.record(
                ev.attempt_failed(entry.id, now, error=error, kind="mismatch",
                                  retry_at=now + delay),
                ev.rescheduled(entry.id, now, not_before=now + delay, attempts=attempt),
            )
        else:
            rec.record(
                ev.attempt_failed(entry.id, now, error=error, kind="mismatch", retry_at=None),
                ev.failed(entry.id, now, error=error, kind="mismatch"),
            )
        job.started.discard(entry.id)
        self._outcome(job, entry, tot.FAILED, error)

    def _give_up(self, job: _Job, err: DeviceError) -> None:
        """The device failed for this run: fail or reschedule everything it has left."""
        if not job.todo:
            return
        now = self.clock()
        rec = self._recorder()
        error = err.one_line()
        permanent = not err.retryable
        outcome = tot.FAILED if permanent else tot.UNREACHABLE
        for entry in job.todo:
            attempt = entry.attempts + 1
            if permanent:
                rec.record(ev.failed(entry.id, now, error=error, kind=err.kind))
            elif job.requeue and attempt < entry.max_attempts:
                delay = retry.reschedule_delay(attempt, self.options.policy)
                rec.record(
                    ev.attempt_failed(entry.id, now, error=error, kind=err.kind,
                                      retry_at=now + delay),
                    ev.rescheduled(entry.id, now, not_before=now + delay, attempts=attempt),
                )
            else:
                why = f"gave up after {attempt} attempts: {error}" if job.requeue else error
                rec.record(
                    ev.attempt_failed(entry.id, now, error=error, kind=err.kind, retry_at=None),
                    ev.failed(entry.id, now, error=why, kind=err.kind),
                )
            self.observer.finished(entry, outcome, error)
        job.tally.add(outcome, len(job.todo))
        job.tally.error = error
        job.failed_batches.update(e.batch for e in job.todo)
        job.started.clear()
        job.todo.clear()

    def _outcome(self, job: _Job, entry: Entry, outcome: str, detail: str) -> None:
        job.tally.add(outcome)
        if outcome in (tot.FAILED, tot.UNKNOWN):
            job.tally.error = detail
            job.failed_batches.add(entry.batch)
        self.observer.finished(entry, outcome, detail)

    def _recorder(self) -> Recorder:
        assert self._rec is not None, "the engine records only inside a pass"
        return self._rec


def _pace(address: DeviceAddress | None) -> float | None:
    """The device's minimum interval between commands in seconds (inventory `pace`), if any."""
    pace = getattr(address, "pace", None)
    if isinstance(pace, int | float) and not isinstance(pace, bool) and pace > 0:
        return float(pace)
    return None


def _written(err: DeviceError) -> bool:
    """True when the command was written before the connection failed."""
    return isinstance(err, DeliveryUnknown)


@dataclass(slots=True)
class Work:
    """What one pass found in the ledger."""

    due: list[Entry]  # in run order
    expired: list[Entry]
    next_due: float | None  # earliest not_before of a pending entry not yet due


def select(
    ledger: Ledger,
    now: float,
    *,
    only: Collection[str] | None = None,
    batch: str | None = None,
) -> Work:
    """Due entries in run order (as `Ledger.due` orders them), without the ledger's cache.

    A drain may face 100,000 pending entries: each is decoded once, its repeated strings are
    interned and nothing is cached in the ledger, so the entries cost a fraction of the memory
    and the ledger's raw lines can be freed while the work goes on.
    """
    ready: list[Entry] = []
    expired: list[Entry] = []
    next_due: float | None = None
    for entry_id in ledger.ids():
        if ledger.state(entry_id) is not State.PENDING:
            continue
        records = ledger.records(entry_id)
        head = records[0]
        if isinstance(head, bytes):
            if only is not None or batch is not None:
                peeked = ev.peek(head)
                if peeked is not None and peeked[2] is not None:
                    b, d = peeked[2]
                    if (only is not None and d not in only) or (
                        batch is not None and b != batch
                    ):
                        continue
            if len(records) == 1:
                # Not due yet (a batch scheduled for later): skip it without decoding.
                times = ev.peek_schedule(head)
                if times is not None and times[1] > now and (times[2] is None or times[2] > now):
                    if next_due is None or times[1] < next_due:
                        next_due = times[1]
                    continue
        entry = entry_of(records, intern=True)
        if (only is not None and entry.device not in only) or (
            batch is not None and entry.batch != batch
        ):
            continue
        if entry.expires is not None and entry.expires <= now:
            expired.append(entry)
        elif entry.not_before <= now:
            ready.append(entry)
        elif next_due is None or entry.not_before < next_due:
            next_due = entry.not_before
    ready.sort(key=lambda e: e.id)
    slots = sorted(ready, key=lambda e: (e.priority.rank, e.id))
    by_device: dict[str, list[Entry]] = {}
    for entry in ready:
        by_device.setdefault(entry.device, []).append(entry)
    taken: dict[str, int] = {}
    due = []
    for slot in slots:
        n = taken.get(slot.device, 0)
        due.append(by_device[slot.device][n])
        taken[slot.device] = n + 1
    return Work(due, expired, next_due)


def tagged(
    entry: Entry, tags: frozenset[str] | None, skip_tags: frozenset[str] | None
) -> bool:
    """True when `entry`'s tags pass --tags (one of them; untagged entries do not) and
    --skip-tags (none of them)."""
    mine = frozenset(entry.coordination.tags)
    if tags is not None and not (mine & tags):
        return False
    return not (skip_tags is not None and mine & skip_tags)


def lookup(devices: Mapping[str, DeviceAddress]) -> Callable[[str], DeviceAddress | None]:
    """A device lookup over a mapping of name → address."""
    return devices.get


async def drain(
    journal: Journal,
    devices: Callable[[str], DeviceAddress | None],
    options: DrainOptions | None = None,
    *,
    engine: Engine | None = None,
    observer: Observer | None = None,
) -> Totals:
    """One drain under the drain lock (BusyError at once if another drain holds it)."""
    engine = engine or Engine(journal, devices, options, observer=observer)
    totals = Totals()
    began = time.monotonic()
    with journal.try_drain_lock():
        claims = Claims(journal)
        async with Recorder(claims.append) as rec:
            for _ in range(MAX_PASSES):
                before = totals.entries - totals.held
                ledger = await asyncio.to_thread(_look, claims)
                await engine.drain_pass(rec, totals, ledger, claims.withdrawn)
                del ledger
                # Another pass only when entries wait on a barrier this pass may have opened.
                progressed = totals.entries - totals.held > before
                if not engine.waiting or not progressed or engine.stopping():
                    break
                await rec.flush()
    totals.interrupted = engine.interrupted
    totals.timed_out = engine.stop_reason == "--max-time reached"
    totals.seconds = time.monotonic() - began
    return totals


def _look(claims: Claims) -> Ledger:
    """Read the journal for a pass (the recorder is idle: nothing of ours is in flight)."""
    scan, ledger = claims.journal.load()
    claims.seen(scan)
    return ledger


def journal_stamp(journal: Journal) -> tuple[int, int]:
    """(size, mtime_ns) of the journal file: changes whenever anything is appended."""
    try:
        st = journal.path.stat()
    except FileNotFoundError:
        return (0, 0)
    return (st.st_size, st.st_mtime_ns)


#: `cmdctl run` checks the journal for new work this often when idle (one stat call).
POLL_S = 0.2


async def serve(
    journal: Journal,
    engine: Engine,
    *,
    poll: float = POLL_S,
) -> Totals:
    """`cmdctl run`: drain, then wait for new or newly due work, until a stop is requested."""
    totals = Totals()
    began = time.monotonic()
    stop = engine.stop_event()
    with journal.try_drain_lock():
        claims = Claims(journal)
        async with Recorder(claims.append) as rec:
            while engine.stop_reason is None:
                stamp = journal_stamp(journal)
                ledger = await asyncio.to_thread(_look, claims)
                wake_at = await engine.drain_pass(rec, totals, ledger, claims.withdrawn)
                del ledger
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


async def run_entries(
    engine: Engine,
    rec: Recorder,
    entries: Sequence[Entry],
    totals: Totals,
    *,
    requeue: bool,
) -> None:
    """Run entries already recorded as started by this process (send, immediate steps)."""
    engine._rec = rec
    engine._rollout = None  # windows and thresholds are for drains
    engine.stop_event()
    jobs = engine.plan_jobs(entries, totals, requeue=requeue, prestarted=True)
    engine.observer.planned(list(entries))
    await engine.run_jobs(jobs, totals)
