"""The retry policy, recovery rules and the exit code table, without devices."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cmdctl.core.errors import DeviceAmbiguous, DeviceRejected, DeviceUnavailable, ExitCode
from cmdctl.drain import outcomes, recovery, retry
from cmdctl.drain.due import select
from cmdctl.drain.totals import Totals
from cmdctl.journal import events as ev
from cmdctl.journal.store import Journal

from .conftest import make_entry, queue


async def _attempts(
    exc: Exception, policy: retry.RetryPolicy, now: list[float] | None = None, **kw: object
) -> tuple[int, list[float]]:
    slept: list[float] = []
    calls = 0

    async def sleep(seconds: float) -> None:
        slept.append(seconds)
        if now is not None:
            now[0] += seconds

    with pytest.raises(type(exc)):
        async for attempt in retry.retrying(policy, sleep=sleep, **kw):  # type: ignore[arg-type]
            with attempt:
                calls += 1
                raise exc
    return calls, slept


async def test_transient_failures_are_retried_with_capped_backoff() -> None:
    policy = retry.RetryPolicy(tries=5, initial=0.5, maximum=2.0, jitter=0.0)
    calls, slept = await _attempts(DeviceUnavailable("d", "connection refused"), policy)
    assert calls == 5
    assert slept == [0.5, 1.0, 2.0, 2.0]


async def test_ambiguous_failures_are_retried_less() -> None:
    policy = retry.RetryPolicy(tries=5, ambiguous_tries=2, jitter=0.0)
    calls, _ = await _attempts(DeviceAmbiguous("d", "dropped after hello"), policy)
    assert calls == 2


async def test_permanent_failures_are_never_retried() -> None:
    calls, slept = await _attempts(DeviceRejected("d", "wrong key"), retry.RetryPolicy(tries=5))
    assert (calls, slept) == (1, [])


async def test_no_wait_starts_past_the_deadline() -> None:
    policy = retry.RetryPolicy(tries=10, initial=1.0, maximum=1.0, jitter=0.0)
    now = [100.0]
    calls, slept = await _attempts(
        DeviceUnavailable("d", "refused"), policy, now, deadline=101.5, clock=lambda: now[0]
    )
    assert calls == 2 and slept == [1.0]  # a second wait would end at 102 > 101.5


def test_reschedule_backoff_grows_and_is_capped() -> None:
    policy = retry.RetryPolicy(reschedule_initial=30, reschedule_maximum=600, reschedule_jitter=0)
    delays = [retry.reschedule_delay(n, policy, random.Random(1)) for n in range(1, 8)]
    assert delays == [30, 60, 120, 240, 480, 600, 600]


def _running(journal: Journal, owner: recovery.Owner, *, idempotent: bool) -> str:
    entry = make_entry("bar-tv-1", "switch", "tv_power", {"state": True}, idempotent=idempotent)
    queue(journal, [entry])
    journal.append([recovery.started(entry, time.time(), owner)])
    return entry.id


def test_a_dead_drain_run_is_recovered(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    dead = recovery.Owner("RUN1", recovery.DRAIN, os.getpid(), recovery.this_host(), 1e12)
    idem = _running(journal, dead, idempotent=True)
    press = _running(journal, dead, idempotent=False)
    found = recovery.recover(journal.ledger(), time.time(), run="RUN2", holding_drain_lock=True)
    assert {e.id for e, _ in found} == {idem, press}
    journal.append([event for _, verdict in found for event in verdict.events])
    ledger = journal.ledger()
    assert ledger.get(idem).state.value == "pending"
    assert ledger.get(idem).attempts == 0  # the interruption is not the device's fault
    unknown = ledger.get(press)
    assert unknown.state.value == "unknown"
    assert "drain run RUN1" in (unknown.reason or "")
    assert "not safe to repeat" in (unknown.reason or "")


def test_a_live_send_is_left_alone_and_a_dead_one_is_recovered(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    alive = recovery.me("SEND1", recovery.SEND, time.time() + 60)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    dead = recovery.Owner("SEND2", recovery.SEND, child.pid, recovery.this_host(), 1e12)
    mine = _running(journal, alive, idempotent=True)
    theirs = _running(journal, dead, idempotent=True)
    found = recovery.recover(journal.ledger(), time.time(), run="RUN", holding_drain_lock=True)
    assert {e.id for e, _ in found} == {theirs} and mine not in {e.id for e, _ in found}
    assert {e.id for _, v in found for e in v.events} == {theirs}


def test_a_send_on_another_host_is_recovered_once_its_lease_passed(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    now = time.time()
    other = recovery.Owner("SEND3", recovery.SEND, 1, "elsewhere", now + 30)
    entry_id = _running(journal, other, idempotent=True)
    ledger = journal.ledger()
    assert recovery.recover(ledger, now, run="R", holding_drain_lock=True) == []
    later = recovery.recover(ledger, now + 31, run="R", holding_drain_lock=True)
    assert {e.id for e, _ in later} == {entry_id}


def test_expiry(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    now = time.time()
    old = make_entry("d", "switch", "x", {"state": True}, expires=now - 1)
    fresh = make_entry("d", "switch", "x", {"state": True}, expires=now + 60)
    queue(journal, [old, fresh])
    work = select(journal.ledger(), now)
    assert [e.id for e in work.expired] == [old.id]  # not `fresh`, which expires later
    events = outcomes.expired(old, now).events
    assert [(e.type, e.id) for e in events] == [(ev.EXPIRED, old.id)]
    assert "not run before it expired at" in str(events[0].fields["reason"])


def test_exit_code_from_totals() -> None:
    totals = Totals()
    assert totals.exit_code() == ExitCode.OK and totals.idle
    totals.tally("a").add("confirmed")
    assert totals.exit_code() == ExitCode.OK
    totals.tally("b").add("unreachable")
    assert totals.exit_code() == ExitCode.UNREACHABLE  # never success
    totals.tally("c").add("unknown")
    assert totals.exit_code() == ExitCode.FAILED
    interrupted = Totals(interrupted=True)
    interrupted.tally("a").add("confirmed")
    assert interrupted.exit_code() == ExitCode.INTERRUPTED
