"""Commands run at once rather than queued: `cmdctl send` and a playbook's immediate steps.

Both are journaled, so nothing accepted is lost and `history` shows them: before connecting, the
entry's `queued` and `started` events (the latter naming this process and a lease) go to disk in
ONE append. A concurrent drain therefore never sees the entry as pending while this process works
on it, and if this process dies, the next drain's recovery finds it (idempotent: run again;
`idempotent: false`: marked unknown).

`send` by default falls back to the queue on a transient failure: the entry is put back to
pending, high priority, due now, and the next drain retries it. `--now` records the failure
instead; `--queue` only queues. Permanent failures (unknown entity, invalid value, wrong key)
fail at once and are never queued.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from cmdctl.core.errors import (
    CmdctlError,
    DeviceError,
    DeviceRejected,
    DeviceUnavailable,
    ExitCode,
)
from cmdctl.core.ids import new_id
from cmdctl.core.model import Command, Entry, Priority
from cmdctl.core.secretref import Lookup
from cmdctl.device.timeouts import CONNECT_TIMEOUT, DEFAULT_JOB_TIMEOUT, VERIFY_TIMEOUT
from cmdctl.drain import outcomes, recovery, retry, secretargs
from cmdctl.drain.outcomes import Verdict
from cmdctl.drain.retry import RetryPolicy
from cmdctl.drain.totals import Totals
from cmdctl.journal import events as ev
from cmdctl.journal.events import Event
from cmdctl.journal.recorder import Recorder
from cmdctl.journal.store import Journal

if TYPE_CHECKING:
    from cmdctl.device.address import DeviceAddress
    from cmdctl.drain.observer import Observer

#: `send` gives the device this long (connect, command, barrier, verification) before it falls
#: back to the queue: long enough for a healthy device on Wi-Fi, short enough to feel direct.
SEND_TIMEOUT_S = 5.0
#: Added to the lease of a `started` event: recovery leaves the entry alone until then.
LEASE_MARGIN_S = 30.0
#: A sent command that must still be retried by drains gets this many attempts in all.
SEND_MAX_ATTEMPTS = 5
#: Immediate steps retry a transient failure once, briefly: a person is waiting.
IMMEDIATE_POLICY = RetryPolicy(tries=2, ambiguous_tries=2, initial=0.3, maximum=1.0, jitter=0.2)


class Mode(StrEnum):
    """How `send` routes a command."""

    AUTO = "auto"  # direct; queued when the device is away
    NOW = "now"  # direct only; a failure is recorded, never queued
    QUEUE = "queue"  # queued only


@dataclass(frozen=True, slots=True)
class SendResult:
    """How one `send` ended."""

    entry: Entry
    status: str  # confirmed | delivered | queued | failed | unknown | unreachable | mismatch
    seconds: float
    detail: str = ""
    error: DeviceError | None = None

    @property
    def exit_code(self) -> ExitCode:
        """The documented code for this outcome."""
        if self.status in ("confirmed", "delivered"):
            return ExitCode.OK
        if self.status == "queued":
            return ExitCode.QUEUED if self.error is not None else ExitCode.OK
        if self.status == "unreachable":
            return ExitCode.UNREACHABLE
        return ExitCode.FAILED

    def as_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "id": self.entry.id,
            "device": self.entry.device,
            "command": self.entry.command.selector,
            "args": dict(self.entry.command.args),
            "status": self.status,
            "not_before": self.entry.not_before,
            "expires": self.entry.expires,
            "max_attempts": self.entry.max_attempts,
            "seconds": round(self.seconds, 3),
            "detail": self.detail,
            "error": None if self.error is None else self.error.one_line(),
            "exit_code": int(self.exit_code),
        }


def send_entry(
    device: str,
    command: Command,
    *,
    who: str,
    idempotent: bool,
    verify: bool = True,
    now: float | None = None,
    max_attempts: int = SEND_MAX_ATTEMPTS,
    not_before: float | None = None,
    expires: float | None = None,
) -> Entry:
    """The journal entry for one `cmdctl send`: its own batch, high priority, due now (or at
    `not_before`)."""
    now = time.time() if now is None else now
    ident = new_id()
    return Entry(
        id=ident,
        batch=ident,
        device=device,
        command=command,
        priority=Priority.HIGH,
        created=now,
        not_before=now if not_before is None else not_before,
        expires=expires,
        idempotent=idempotent,
        verify=verify,
        max_attempts=max_attempts,
        who=who,
        origin="send",
        step="",
    )


def queue_only(journal: Journal, entry: Entry) -> SendResult:
    """`send --queue`: one durable `queued` event; the next drain runs it."""
    journal.append([ev.queued(entry)])
    return SendResult(entry, "queued", 0.0)


def queued_and_started(entries: Sequence[Entry], owner: recovery.Owner, now: float) -> list[Event]:
    """`queued` + `started` events for entries run at once, appended together."""
    out = [ev.queued(e) for e in entries]
    out += [recovery.started(e, now, owner, attempt=1) for e in entries]
    return out


async def send(
    journal: Journal,
    device: DeviceAddress,
    entry: Entry,
    *,
    mode: Mode = Mode.AUTO,
    timeout: float = SEND_TIMEOUT_S,
    clock: Callable[[], float] = time.time,
    secrets: Lookup | None = None,
) -> SendResult:
    """Run one command on its device now, journaled; see the module docstring for routing.

    `secrets` looks up the command's `!secret` arguments just before it is sent; one that is
    gone fails the command (never queued), naming the secret."""
    if mode is Mode.QUEUE:
        return queue_only(journal, entry)
    # The device side (and the client, ~0.15 s to import) only when something is sent now.
    from cmdctl.device.classify import classify
    from cmdctl.device.transport import DeviceSession

    now = clock()
    owner = recovery.me(new_id(), recovery.SEND, now + timeout + LEASE_MARGIN_S)
    await asyncio.to_thread(journal.append, queued_and_started([entry], owner, now))
    began = time.monotonic()
    session = DeviceSession(
        device,
        connect_timeout=min(CONNECT_TIMEOUT, timeout),
        verify_timeout=min(VERIFY_TIMEOUT, timeout),
        job_timeout=timeout,
    )
    sending = secretargs.Sending()
    try:
        try:
            sending = secretargs.prepare([entry], secrets)
            if sending.missing:
                raise sending.missing[entry.id]
            # A backstop over the session's own bounds, which each phase already respects.
            async with asyncio.timeout(timeout + 1.0):
                outcome = await session.execute(sending.commands[0], verify=entry.verify)
            outcome = sending.outcome(outcome)
        except TimeoutError as err:
            raise classify(err, device.name, phase="sending", timeout=timeout) from err
        finally:
            session.close()
    except Exception as err:  # whatever went wrong, it is this command's outcome
        if not isinstance(err, DeviceError):
            err = unexpected(device.name, entry, err)
        sending.scrub.error(err)  # a secret's value never travels on in a message
        status, verdict = _failure(entry, err, mode, clock())
        await asyncio.to_thread(journal.append, list(verdict.events))
        detail = verdict.detail.removeprefix(f"{entry.device}: ")  # the CLI names the device
        return SendResult(entry, status, time.monotonic() - began, detail, err)
    except BaseException:
        # Interrupted (Ctrl-C) before an outcome: leave nothing RUNNING behind.
        _interrupted(journal, entry, clock(), queue=mode is not Mode.NOW)
        raise
    seconds = time.monotonic() - began
    if outcome.status == "mismatch":
        verdict = outcomes.mismatch(entry, clock(), outcome.detail, requeue=False,
                                    policy=retry.DEFAULT)
        await asyncio.to_thread(journal.append, list(verdict.events))
        return SendResult(entry, "mismatch", seconds, outcome.detail)
    verdict = outcomes.done(entry, clock(), status=outcome.status, elapsed=outcome.elapsed,
                            detail=outcome.detail)
    await asyncio.to_thread(journal.append, list(verdict.events))
    return SendResult(entry, outcome.status, seconds, outcome.detail)


def _failure(entry: Entry, err: DeviceError, mode: Mode, now: float) -> tuple[str, Verdict]:
    """How a failed `send` ends (its `SendResult.status`) and what the journal records."""
    if isinstance(err, DeviceUnavailable):
        doubt = outcomes.transient(entry, now, err)
        if doubt is not None:
            return "unknown", doubt
        # AUTO falls back to the queue: pending again, due at once, for the next drain, while
        # attempts remain (`send --attempts 1`: this was the only one).
        auto = mode is Mode.AUTO and entry.attempts + 1 < entry.max_attempts
        verdict = outcomes.unreachable(entry, now, err, requeue=auto, policy=retry.DEFAULT,
                                       due_now=auto)
        return ("queued" if auto else "unreachable"), verdict
    return "failed", outcomes.rejected(entry, now, err)


def unexpected(device: str, entry: Entry, err: Exception) -> DeviceError:
    """An exception outside the device error tree while sending one command (a bug, or a value
    the client cannot encode): that command fails for good, with the cause."""
    return DeviceRejected(
        device, f"{entry.command.selector}: could not be sent: {type(err).__name__}: {err}"
    )


def _interrupted(journal: Journal, entry: Entry, now: float, *, queue: bool) -> None:
    """Stopped before an outcome: an idempotent command goes back to the queue (unless
    `send --now`, which never queues: failed), any other is in doubt."""
    if not entry.idempotent:
        verdict = outcomes.in_doubt(entry, now, "interrupted after it was started")
    elif queue:
        verdict = outcomes.left(entry, now, started=True)
    else:
        why = "interrupted before an outcome (send --now does not queue)"
        verdict = outcomes.Verdict("failed", why, (
            ev.failed(entry.id, now, error=why, kind="interrupted"),))
    # If this fails too, the next drain's recovery covers it: the owner pid will be gone.
    with contextlib.suppress(CmdctlError):
        journal.append(list(verdict.events))


async def run_immediate(
    journal: Journal,
    devices: Callable[[str], DeviceAddress | None],
    entries: Sequence[Entry],
    *,
    concurrency: int | None = None,
    observer: Observer | None = None,
    clock: Callable[[], float] = time.time,
    queued: Sequence[Entry] = (),
    secrets: Lookup | None = None,
) -> Totals:
    """Run a playbook's immediate entries inline, concurrently across devices; never queued.

    Transient failures are retried once, then recorded as failed (kind `unreachable`), not left
    pending: an immediate step is worth doing now or not at all. `queued`: the rest of the
    batch, journaled in the same durable append as the immediate entries and before any of
    them is sent, so the batch is wholly in the journal or wholly absent (and if it is absent,
    nothing was sent).
    """
    from cmdctl.drain import engine as eng
    from cmdctl.drain.options import DEFAULT_CONCURRENCY, DrainOptions

    totals = Totals()
    if not entries:
        return totals
    options = DrainOptions(
        concurrency=concurrency or DEFAULT_CONCURRENCY, policy=IMMEDIATE_POLICY
    )
    engine = eng.Engine(journal, devices, options, observer=observer, clock=clock,
                        kind=recovery.SEND, secrets=secrets)
    now = clock()
    # Devices wait for a slot in rounds; each round may use its job timeout on both tries.
    rounds = math.ceil(len({e.device for e in entries}) / options.concurrency)
    lease = now + rounds * IMMEDIATE_POLICY.tries * DEFAULT_JOB_TIMEOUT + LEASE_MARGIN_S
    owner = recovery.me(engine.run_id, recovery.SEND, lease)
    began = time.monotonic()
    starts = [recovery.started(e, now, owner, attempt=1) for e in entries]
    batch = [*(ev.queued(e) for e in entries), *starts, *(ev.queued(e) for e in queued)]
    await asyncio.to_thread(journal.append, batch)
    async with Recorder(journal.append) as rec:
        await engine.run_now(rec, entries, starts, totals, requeue=False)
    totals.seconds = time.monotonic() - began
    return totals

