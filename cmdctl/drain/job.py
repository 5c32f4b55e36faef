"""One device's work in one pass: connect once, send its entries in queue order, settle each
result through `cmdctl.drain.outcomes`, retry transient failures under the run's policy.

Within a device, idempotent entries are sent in chunks (back to back, one delivery barrier); an
`idempotent: false` entry travels in a chunk of its own, so a dropped connection puts at most that
one entry in doubt. A device's `pace` sends its commands one at a time, spaced. For an
`idempotent: false` entry the `started` event is on disk before its command is sent, so a crash
can never repeat it silently.

The device flow of a playbook (`cmdctl.drain.gates` lets these entries in): before an entry is
sent, its prerequisite on this device (when that ran in this job), its gap (the prerequisite's
`delay:`, counted from the prerequisite's `done` in the journal; the job waits through the
engine's pause, which a stop or --max-time cuts short, holding its slot) and its `when:` (read
on the open connection; not met: skipped with the reason). After an entry with `wait_until:` is
done on the device, the job waits on the same connection for the state, up to the timeout; the
entry stays RUNNING meanwhile, so a crash is recovered like any interrupted command, and it
ends done (the wait recorded as `waited`) or failed with the cause. An entry with any of these
starts its own chunk; an entry with `wait_until:` ends its chunk.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from cmdctl.core.errors import DeviceError, DeviceRejected, DeviceUnavailable
from cmdctl.core.model import Entry, State
from cmdctl.core.secretref import Scrubber
from cmdctl.core.timespec import format_duration
from cmdctl.device import condition
from cmdctl.device.address import DeviceAddress
from cmdctl.device.segment import Outcome
from cmdctl.device.states import STATE_TIMEOUT
from cmdctl.device.transport import DeviceSession
from cmdctl.drain import gates, outcomes, recovery, retry, secretargs
from cmdctl.drain import totals as tot
from cmdctl.drain.gates import FAILED, WAITS
from cmdctl.drain.jobs import Job, Pass
from cmdctl.drain.observer import Finished, new_finished
from cmdctl.drain.options import GAP_WAIT_S, STOP_MARGIN_S, WINDOW_SETTLE_S
from cmdctl.drain.outcomes import Verdict
from cmdctl.drain.rollout import Gate
from cmdctl.drain.totals import Totals
from cmdctl.journal import events as ev

if TYPE_CHECKING:
    from cmdctl.drain.engine import Engine


class DeviceJob:
    """Runs one `Job` for an engine within one pass."""

    def __init__(self, engine: Engine, ctx: Pass, job: Job) -> None:
        self.engine = engine
        self.ctx = ctx
        self.job = job
        self.isolate = False  # send one command at a time (an unexpected error was met)
        self._waiting: tuple[Entry, Outcome] | None = None  # done; its wait_until is next
        self._totals: Totals | None = None  # the run's, once the job has its slot

    # -- recording -------------------------------------------------------------------------------

    def settle(self, entry: Entry, verdict: Verdict) -> None:
        """Record `verdict` for `entry` and tell the observer; the entry leaves the job's care."""
        job = self.job
        if verdict.events:
            self.ctx.rec.record(*verdict.events)
        job.started.discard(entry.id)
        start = job.running.pop(entry.id, None)
        job.tally.add(verdict.outcome)
        if verdict.outcome in (tot.FAILED, tot.UNKNOWN):
            job.tally.error = verdict.detail
            job.failed_batches.add(entry.batch)
        state = verdict.state_after(entry)
        if state is State.DONE:
            job.finished[(entry.batch, entry.step)] = verdict.events[-1].ts
        else:
            job.finished[(entry.batch, entry.step)] = WAITS if state is State.PENDING else FAILED
        events = verdict.events if start is None else (start, *verdict.events)
        self.engine.observer.finished(new_finished(entry, verdict.outcome, verdict.detail,
                                                   verdict.duration, events))

    # -- the slot ------------------------------------------------------------------------------

    async def run(self, slots: asyncio.Semaphore, totals: Totals) -> None:
        """Wait for a rollout gate and a concurrency slot, then work through the job."""
        rollout = self.ctx.rollout
        if rollout is None:
            await self._slotted(slots, totals)
            return
        entered = await rollout.enter(rollout.of(e.batch for e in self.job.todo))
        try:
            await self._slotted(slots, totals, entered)
            if any(g.window is not None for g in entered):
                await asyncio.sleep(WINDOW_SETTLE_S)
        finally:
            rollout.leave(entered, self.job.failed_batches, self.job.device)

    def _hold(self, entered: Sequence[Gate], totals: Totals) -> None:
        """Entries of batches past their failure threshold stay pending, with the reason."""
        closed = {g.batch: g.reason() for g in entered if g.closed}
        if not closed:
            return
        job, now = self.job, self.engine.clock()
        held = [e for e in job.todo if e.batch in closed]
        # Only a new reason is recorded: `cmdctl run` meets the same held entries every pass.
        self.ctx.rec.record_many(ev.held(e.id, now, reason=closed[e.batch])
                                 for e in held if e.reason != closed[e.batch])
        job.todo[:] = [e for e in job.todo if e.batch not in closed]
        job.tally.add(tot.SKIPPED, len(held))
        totals.held += len(held)
        for entry in held:
            self._tell(entry, tot.SKIPPED, closed[entry.batch])

    def _tell(self, entry: Entry, outcome: str, detail: str) -> None:
        """An outcome with nothing to record (the entry stays as the journal has it)."""
        self.engine.observer.finished(Finished(entry, outcome, detail))

    async def _slotted(
        self, slots: asyncio.Semaphore, totals: Totals, entered: Sequence[Gate] = ()
    ) -> None:
        job, engine = self.job, self.engine
        self._totals = totals
        async with slots:
            self._hold(entered, totals)  # decided when the job really starts
            if self.ctx.withdrawn:  # all of them cancelled meanwhile: do not even connect
                self.drop_withdrawn(job.todo)
            if not job.todo:
                engine.observer.device_done(job.tally)
                return
            if engine.stopping():
                self.leave(totals)
                return
            began = engine.monotonic()
            try:
                await self._on_device()
            except asyncio.CancelledError:
                self.abandon("stopped while in flight")
                self.leave(totals)
                raise
            finally:
                job.tally.seconds += engine.monotonic() - began
                engine.observer.device_done(job.tally)
            self.leave(totals)

    def leave(self, totals: Totals) -> None:
        """Entries the job did not get to: back to pending (no attempt counted)."""
        job = self.job
        if not job.todo:
            return
        now = self.engine.clock()
        for entry in job.todo:
            verdict = outcomes.left(entry, now, started=entry.id in job.started)
            if verdict.events:
                self.ctx.rec.record(*verdict.events)
        totals.left += len(job.todo)
        job.tally.add(tot.SKIPPED, len(job.todo))
        job.todo.clear()

    def abandon(self, reason: str) -> None:
        """Cancelled mid-flight: idempotent entries back to pending (`leave`), others unknown."""
        job, now = self.job, self.engine.clock()
        keep = []
        for entry in job.todo:
            if entry.id not in job.started or entry.idempotent:
                keep.append(entry)
            else:
                self.settle(entry, outcomes.in_doubt(entry, now, reason))
        job.todo[:] = keep

    # -- on the device ---------------------------------------------------------------------------

    def session(self, address: DeviceAddress) -> DeviceSession:
        """A session with this run's timeouts."""
        options = self.engine.options
        return DeviceSession(
            address,
            connect_timeout=options.connect_timeout,
            verify_timeout=options.verify_timeout,
            job_timeout=options.job_timeout,
            shared=self.ctx.plans,
        )

    async def _on_device(self) -> None:
        job, engine = self.job, self.engine
        if job.address is None:
            if job.prestarted:
                self.give_up(DeviceRejected(job.device, "not in the inventory"))
                return
            # Not in this inventory: leave the work queued (another inventory may know it).
            job.tally.add(tot.UNREACHABLE, len(job.todo))
            job.tally.error = f"{job.device}: not in the inventory; its entries stay queued"
            job.failed_batches.update(e.batch for e in job.todo)
            for entry in job.todo:
                self._tell(entry, tot.UNREACHABLE, job.tally.error)
            job.todo.clear()
            return
        session = self.session(job.address)

        def on_retry(err: DeviceError, delay: float) -> None:
            job.tally.retried += 1
            engine.observer.step(job.device, f"retry in {delay:.1f}s: {err.reason}")

        controller = retry.retrying(
            engine.options.policy,
            deadline=None if engine.deadline is None else engine.deadline - STOP_MARGIN_S,
            clock=engine.monotonic,
            sleep=engine.pause,
            on_retry=on_retry,
        )
        try:
            async for attempt in controller:
                with attempt:
                    if engine.stopping() and attempt.retry_state.attempt_number > 1:
                        return
                    await self.work(session)
        except DeviceRejected as err:  # the connection itself was refused for good
            self.give_up(err)
        except DeviceUnavailable as err:  # still failing at the end of the run
            self.give_up(err)
        finally:
            session.close()

    async def work(self, session: DeviceSession) -> None:
        """Connect (or reuse the connection) and work through `todo` in order."""
        job, engine = self.job, self.engine
        engine.observer.step(job.device, "connecting")
        await session.connect()
        pace = job.address.pace if job.address is not None else None
        while job.todo:
            if engine.stopping():
                return
            if _flows(job.todo[0]) and not await self._prepare(session, job.todo[0]):
                continue
            if pace:
                # One command at a time, each ended by its own barrier, `pace` apart.
                chunk = job.todo[:1]
                if job.last_sent is not None:
                    wait = job.last_sent + pace - engine.monotonic()
                    if wait > 0:
                        engine.observer.step(job.device, f"pacing {wait:.2f}s")
                        await engine.pause(wait)
                        if engine.stopping():
                            return
            else:
                chunk = job.todo[:1] if self.isolate else self._next_chunk()
            sending = secretargs.prepare(chunk, engine.secrets)
            if sending.missing:  # those fail alone, never sent; the rest is chunked again
                self._unresolved(sending.missing)
                continue
            # An entry started by an earlier try of this run is on disk as RUNNING already.
            fresh = [e for e in chunk if e.id not in job.started]
            if fresh:
                now = engine.clock()
                waits = max((_wait(e) for e in fresh), default=0.0)
                owner = recovery.me(engine.run_id, engine.kind, now + session.job_timeout + waits)
                starts = recovery.starts(fresh, now, owner)
                job.started.update(e.id for e in fresh)
                job.running.update(zip((e.id for e in fresh), starts, strict=True))
                # On disk before the command leaves, and decided against `queue cancel`
                # under the journal lock (cmdctl.journal.claims): a cancel from then on is refused.
                await self.ctx.rec.durable(*starts)
                if self.ctx.withdrawn and self.drop_withdrawn(chunk):
                    continue
            engine.observer.step(job.device, f"sending {len(chunk)}")
            job.last_sent = engine.monotonic()
            try:
                results = await session.execute_many(
                    sending.commands, verify=[e.verify for e in chunk]
                )
            except asyncio.CancelledError:
                raise
            except DeviceError as err:
                sending.scrub.error(err)  # a secret's value never travels on in a message
                raise
            except Exception as err:  # a bug or a value the client cannot carry, not the device
                self._unexpected(chunk, err, sending.scrub)
                continue
            transient = self._results(chunk, sending.results(results))
            waited, self._waiting = self._waiting, None
            if waited is not None:
                # The waiting entry ends its chunk: it stays at the head of `todo` (running,
                # for `abandon`) until its wait has an outcome.
                del job.todo[: len(chunk) - 1]
                self.settle(waited[0], await self._wait_until(session, *waited))
                del job.todo[:1]
            else:
                del job.todo[: len(chunk)]
            if transient is not None:
                raise transient

    def _unresolved(self, missing: Mapping[str, DeviceRejected]) -> None:
        """Entries whose `!secret` no longer resolves: failed for good, with the cause."""
        job, now = self.job, self.engine.clock()
        for entry in [e for e in job.todo if e.id in missing]:
            self.settle(entry, outcomes.rejected(entry, now, missing[entry.id]))
        job.todo[:] = [e for e in job.todo if e.id not in missing]

    async def _prepare(self, session: DeviceSession, entry: Entry) -> bool:
        """The device flow before sending `entry` (the head of `todo`): its prerequisite on
        this device, its gap, its `when:`. False when it is not sent now: settled, left
        pending, or a stop came during the gap (it stays in `todo`, for `leave`)."""
        job, engine, c = self.job, self.engine, entry.coordination
        if c.after is not None:
            until = self.ctx.hold.get(entry.id)
            mark = job.finished.get((entry.batch, c.after))
            if mark == WAITS:  # its prerequisite is pending again (a retry later): so is it
                self._left_queued(entry, f"waits for {c.after!r} on {job.device}")
                return False
            if mark == FAILED:
                why = f"prerequisite {c.after!r} failed on {job.device}"
                self.settle(entry, outcomes.skipped(entry, engine.clock(), why))
                del job.todo[:1]
                return False
            if isinstance(mark, float):
                until = mark + c.gap if c.gap else None
            if until is not None and (wait := until - engine.clock()) > 0:
                reason = gates.delay_note(entry, until)
                if entry.reason != reason:  # on disk with the prerequisite's outcome
                    await self.ctx.rec.durable(ev.held(entry.id, engine.clock(), reason=reason))
                if wait > GAP_WAIT_S:  # queued, due then (see GAP_WAIT_S)
                    self.ctx.rec.record(gates.due_then(entry, engine.clock(), until))
                    self._left_queued(entry, reason)
                    return False
                engine.observer.step(job.device, f"delay {wait:.1f}s after {c.after!r}")
                await engine.pause(wait)
                if engine.stopping():
                    return False
        try:
            if c.wait_until is not None:  # known before anything is sent
                session.entity(c.wait_until.domain, c.wait_until.target)
            if c.when is not None:
                return await self._when(session, entry)
        except DeviceRejected as err:
            self.settle(entry, outcomes.rejected(entry, engine.clock(), err))
            del job.todo[:1]
            return False
        return True

    def _left_queued(self, entry: Entry, why: str) -> None:
        """The head of `todo` stays pending for a later pass or drain (not started)."""
        del self.job.todo[:1]
        self.job.tally.add(tot.SKIPPED)
        if self._totals is not None:
            self._totals.left += 1
        self._tell(entry, tot.SKIPPED, why)

    async def _when(self, session: DeviceSession, entry: Entry) -> bool:
        """`when:` read on the open connection; not met: skipped with what the entity shows."""
        cond = entry.coordination.when
        assert cond is not None
        entity = session.entity(cond.domain, cond.target)
        state = (await session.read_states({entity}, STATE_TIMEOUT)).get(entity)
        if condition.expectation(cond).reached(state):
            return True
        why = (f"condition not met: {cond.selector} is {condition.shown(cond, state)} "
               f"(wanted {cond.wanted})")
        self.settle(entry, outcomes.skipped(entry, self.engine.clock(), why))
        del self.job.todo[:1]
        return False

    async def _wait_until(self, session: DeviceSession, entry: Entry, sent: Outcome) -> Verdict:
        """After `entry` was done on the device: wait for its `wait_until:` state."""
        engine = self.engine
        cond = entry.coordination.wait_until
        assert cond is not None
        limit = format_duration(cond.timeout)
        engine.observer.step(self.job.device,
                             f"waiting up to {limit} for {cond.selector} to be {cond.wanted}")
        began = engine.monotonic()
        try:
            entity = session.entity(cond.domain, cond.target)
            reached, state = await session.wait_state(
                entity, condition.expectation(cond), cond.timeout
            )
        except DeviceError as err:
            why = f"lost while waiting for {cond.selector} to be {cond.wanted}: {err.one_line()}"
            return outcomes.wait_failed(entry, engine.clock(), why)
        waited = engine.monotonic() - began
        if not reached:
            why = (f"timed out after {limit} waiting for {cond.selector} to be {cond.wanted} "
                   f"(it is {condition.shown(cond, state)})")
            return outcomes.wait_failed(entry, engine.clock(), why)
        ran_on = self.job.device if entry.coordination.pick is not None else None
        return outcomes.done(entry, engine.clock(), status=sent.status, elapsed=sent.elapsed,
                             detail=sent.detail, ran_on=ran_on, waited=waited)

    def _unexpected(self, chunk: list[Entry], err: Exception, scrub: Scrubber) -> None:
        """An exception outside the device error tree while sending `chunk`: find the entry
        that causes it (the rest of a chunk is sent one by one from now on) and fail that one,
        with the cause, so one poison command never stops a drain nor blocks its device."""
        if len(chunk) > 1:
            self.isolate = True
            return  # the same entries again, one at a time: the culprit fails alone
        entry, now = chunk[0], self.engine.clock()
        why = scrub(f"{entry.command.selector}: could not be sent: {type(err).__name__}: {err}")
        if entry.idempotent:
            verdict = outcomes.rejected(entry, now, DeviceRejected(entry.device, why))
        else:
            verdict = outcomes.in_doubt(entry, now, why)
        self.settle(entry, verdict)
        del self.job.todo[:1]

    def drop_withdrawn(self, chunk: Sequence[Entry]) -> bool:
        """Take entries cancelled while this run held them out of the job; True if any were."""
        job = self.job
        gone = [e for e in chunk if e.id in self.ctx.withdrawn]
        if not gone:
            return False
        ids = {e.id for e in gone}
        job.todo[:] = [e for e in job.todo if e.id not in ids]
        job.started.difference_update(ids)
        job.tally.add(tot.SKIPPED, len(gone))
        for entry in gone:
            self._tell(entry, tot.SKIPPED, "cancelled while this run held it")
        return True

    def _next_chunk(self) -> list[Entry]:
        """A run of idempotent entries (up to the chunk size), or one non-idempotent entry."""
        todo = self.job.todo
        if not todo[0].idempotent:
            return todo[:1]
        out: list[Entry] = []
        for entry in todo[: self.engine.options.chunk]:
            if not entry.idempotent or (out and _flows(entry)):
                break
            out.append(entry)
            if entry.coordination.wait_until is not None:
                break
        return out

    def _results(
        self, chunk: list[Entry], results: Sequence[Outcome | DeviceError]
    ) -> DeviceUnavailable | None:
        """Settle each result; entries worth another try go back to the head of `todo`."""
        swept = self._sweep(chunk, results)
        if swept == len(chunk):
            return None
        job, now = self.job, self.engine.clock()
        policy = self.engine.options.policy
        again: list[Entry] = []
        transient: DeviceUnavailable | None = None
        for entry, result in zip(chunk[swept:], results[swept:], strict=True):
            if isinstance(result, Outcome):
                if result.ok and entry.coordination.wait_until is not None:
                    self._waiting = (entry, result)  # the last of its chunk: settled after
                    continue
                if result.status == "mismatch":
                    verdict = outcomes.mismatch(entry, now, result.detail, requeue=job.requeue,
                                                policy=policy)
                else:
                    ran_on = job.device if entry.coordination.pick is not None else None
                    verdict = outcomes.done(entry, now, status=result.status,
                                            elapsed=result.elapsed, detail=result.detail,
                                            ran_on=ran_on)
            elif isinstance(result, DeviceUnavailable):
                doubt = outcomes.transient(entry, now, result)
                if doubt is None:
                    again.append(entry)
                    transient = transient or result
                    continue
                verdict = doubt
            else:  # rejected, or a DeviceError outside the tree's branches: permanent
                verdict = outcomes.rejected(entry, now, result)
            self.settle(entry, verdict)
        if again:
            job.todo[len(chunk) : len(chunk)] = again
        return transient

    def _sweep(self, chunk: list[Entry], results: Sequence[Outcome | DeviceError]) -> int:
        """Settle the head of the chunk whose results are one `Outcome` in one sweep; how many.

        One barrier proves a run of commands delivered and they share its outcome; only the
        last command to each entity is verified, and ends with an outcome of its own.
        """
        first = results[0] if results else None
        if type(first) is not Outcome or first.status == "mismatch":
            return 0
        end, n = 1, len(results)
        while end < n and results[end] is first:
            end += 1
        return end if self._settle_alike(chunk[:end], first) else 0

    def _settle_alike(self, chunk: list[Entry], result: Outcome) -> bool:
        """What `_results` does for entries whose commands share one outcome, in one sweep:
        False, settling nothing, when an entry needs more (a `wait_until:` to wait for, a
        `pick:` to name the device, or a finished state).

        The same verdicts and events as one `settle` each (`tests/drain/test_settle_alike.py`).
        """
        for entry in chunk:
            coordination = entry.coordination
            if (
                coordination.wait_until is not None
                or coordination.pick is not None
                or entry.state.finished
            ):
                return False
        job, engine = self.job, self.engine
        now = engine.clock()
        status = result.status
        events, verdict = outcomes.done_alike(chunk, now, status=status, elapsed=result.elapsed,
                                              detail=result.detail)
        self.ctx.rec.record_many(events)
        job.started.difference_update([e.id for e in chunk])
        job.tally.add(status, len(chunk))
        finished, pop, tell = job.finished, job.running.pop, engine.observer.finished
        detail, duration = verdict.detail, verdict.duration
        for entry, event in zip(chunk, events, strict=True):
            finished[(entry.batch, entry.step)] = now  # done: the event's time
            start = pop(entry.id, None)
            tell(new_finished(entry, status, detail, duration,
                              (event,) if start is None else (start, event)))
        return True

    def give_up(self, err: DeviceError) -> None:
        """The device failed for this run: fail or reschedule everything it has left."""
        job = self.job
        if not job.todo:
            return
        now = self.engine.clock()
        policy = self.engine.options.policy
        for entry in list(job.todo):
            self.settle(entry, outcomes.unreachable(entry, now, err, requeue=job.requeue,
                                                    policy=policy))
        job.tally.error = err.one_line()
        job.failed_batches.update(e.batch for e in job.todo)
        job.started.clear()
        job.todo.clear()


def _flows(entry: Entry) -> bool:
    """True when `entry` has device flow to decide right before it is sent."""
    c = entry.coordination
    return (c.after is not None and (c.scope == "device" or c.gap > 0)) or (
        c.when is not None or c.wait_until is not None
    )


def _wait(entry: Entry) -> float:
    """Seconds `entry` may wait after it is sent (its `wait_until:` timeout)."""
    cond = entry.coordination.wait_until
    return cond.timeout if cond is not None else 0.0
