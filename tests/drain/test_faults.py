"""Each fault gets the right classification, bounded retries, journal state, exit code, message."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import pytest

from cmdctl.core.errors import ExitCode
from cmdctl.core.model import Entry
from cmdctl.drain import engine as eng
from cmdctl.drain import loops
from cmdctl.drain.observer import Finished
from cmdctl.drain.options import DrainOptions
from cmdctl.drain.retry import RetryPolicy
from cmdctl.drain.totals import Tally, Totals
from cmdctl.journal.store import Journal
from cmdctl.simulator import FaultSpec, Fleet, venue

from .conftest import addresses, make_entry, queue, received, tvs

FAST = RetryPolicy(tries=3, ambiguous_tries=2, initial=0.05, maximum=0.1, jitter=0.0)


class Watch:
    """Observer that remembers steps and can act on the first retry."""

    def __init__(self, on_retry: Callable[[], None] | None = None) -> None:
        self.steps: list[tuple[str, str]] = []
        self.outcomes: list[tuple[str, str, str]] = []
        self.on_retry = on_retry

    def planned(self, entries: Sequence[Entry]) -> None:
        pass

    def step(self, device: str, text: str) -> None:
        self.steps.append((device, text))
        if text.startswith("retry") and self.on_retry is not None:
            self.on_retry()
            self.on_retry = None

    def finished(self, done: Finished) -> None:
        self.outcomes.append((done.entry.id, done.outcome, done.detail))

    def device_done(self, tally: Tally) -> None:
        pass


async def run(
    journal: Journal,
    fleet: Fleet,
    *,
    policy: RetryPolicy = FAST,
    watch: Watch | None = None,
    **changes: Any,
) -> Totals:
    options = DrainOptions(policy=policy, connect_timeout=0.5, verify_timeout=0.5)
    return await loops.drain(
        journal, loops.lookup(addresses(fleet, **changes)), options, observer=watch or Watch()
    )


def volumes(device: str, n: int, **kw: Any) -> list[Entry]:
    return [make_entry(device, "number", "volume", {"value": float(v)}, **kw) for v in range(n)]


async def test_offline_is_retried_a_bounded_number_of_times_then_rescheduled(
    journal: Journal,
) -> None:
    async with Fleet(tvs(1, offline=True)) as fleet:
        entries = queue(journal, volumes("bar-tv-1", 3))
        before = time.time()
        totals = await run(journal, fleet)
    tally = totals.devices["bar-tv-1"]
    assert tally.retried == FAST.tries - 1
    assert tally.get("unreachable") == 3
    assert "bar-tv-1: connection refused" in (tally.error or "")
    assert totals.exit_code() == ExitCode.UNREACHABLE
    ledger = journal.ledger()
    for e in entries:
        got = ledger.get(e.id)
        assert got.state.value == "pending"
        assert got.attempts == 1
        assert got.not_before >= before + FAST.reschedule_initial
        assert "connection refused" in (got.last_error or "")


async def test_offline_at_the_last_attempt_fails_with_the_last_error(journal: Journal) -> None:
    async with Fleet(tvs(1, offline=True)) as fleet:
        (entry,) = queue(journal, volumes("bar-tv-1", 1, max_attempts=1))
        totals = await run(journal, fleet)
    got = journal.ledger().get(entry.id)
    assert got.state.value == "failed"
    assert got.last_error is not None
    assert "gave up after 1 attempt: " in got.last_error
    assert "connection refused" in got.last_error
    assert totals.exit_code() == ExitCode.UNREACHABLE


async def test_silent_device_times_out_and_stays_queued(journal: Journal) -> None:
    async with Fleet(tvs(1, silent=True)) as fleet:
        entries = queue(journal, volumes("bar-tv-1", 2))
        totals = await run(journal, fleet, policy=replace(FAST, tries=2))
    tally = totals.devices["bar-tv-1"]
    assert "timed out after 0.5s connecting" in (tally.error or "")
    assert tally.retried == 1
    assert totals.exit_code() == ExitCode.UNREACHABLE
    assert {journal.ledger().state(e.id).value for e in entries} == {"pending"}


async def test_wrong_key_fails_everything_at_once_without_retry(journal: Journal) -> None:
    async with Fleet(tvs(1, encrypted=True, wrong_key=True)) as fleet:
        entries = queue(journal, volumes("bar-tv-1", 3))
        totals = await run(journal, fleet)
        assert fleet.devices[0].received == []
    tally = totals.devices["bar-tv-1"]
    assert tally.retried == 0
    assert tally.get("failed") == 3
    assert "bar-tv-1: wrong encryption key" in (tally.error or "")
    assert totals.exit_code() == ExitCode.FAILED
    ledger = journal.ledger()
    for e in entries:
        got = ledger.get(e.id)
        assert got.state.value == "failed"
        assert got.outcome == "rejected"
        assert "wrong encryption key" in (got.last_error or "")


async def test_invalid_value_and_unknown_entity_fail_alone_and_the_device_goes_on(
    journal: Journal,
) -> None:
    async with Fleet(tvs(1)) as fleet:
        bad_option = make_entry("bar-tv-1", "select", "input", {"option": "HDMI 5"})
        unknown = make_entry("bar-tv-1", "switch", "nope", {"state": True})
        good = make_entry("bar-tv-1", "select", "input", {"option": "HDMI 2"})
        queue(journal, [bad_option, unknown, good])
        totals = await run(journal, fleet)
        assert received(fleet.devices[0]) == [("select.input", {"option": "HDMI 2"})]
    ledger = journal.ledger()
    assert ledger.get(good.id).state.value == "done"
    bad = ledger.get(bad_option.id)
    assert bad.state.value == "failed"
    assert "select.input has no option 'HDMI 5'" in (bad.last_error or "")
    assert "HDMI 1" in (bad.last_error or "")
    missing = ledger.get(unknown.id)
    assert missing.state.value == "failed"
    assert "bar-tv-1" in (missing.last_error or "")
    assert "nope" in (missing.last_error or "")
    tally = totals.devices["bar-tv-1"]
    assert (tally.get("failed"), tally.get("confirmed"), tally.retried) == (2, 1, 0)
    assert totals.exit_code() == ExitCode.FAILED


async def test_drop_mid_session_retries_idempotent_entries(journal: Journal) -> None:
    # Hello, login, device info, entity list: the 3 volume commands after those are handled,
    # then the device hangs up before its barrier (states are subscribed to only right before
    # the chunk's last command, the one verified: it never gets that far).
    async with Fleet(tvs(1, drop_after=7)) as fleet:
        dev = fleet.devices[0]
        entries = queue(journal, volumes("bar-tv-1", 10))

        def heal() -> None:
            dev.faults.drop_after = None

        totals = await run(journal, fleet, watch=Watch(heal))
        got = received(dev)
    assert totals.exit_code() == ExitCode.OK
    assert totals.devices["bar-tv-1"].retried == 1
    assert {journal.ledger().state(e.id).value for e in entries} == {"done"}
    want = [("number.volume", {"value": float(v)}) for v in range(10)]
    assert got[:3] == want[:3]  # the in-flight part of the chunk, before the drop
    assert got[3:] == want  # then every entry once more, in order


async def test_drop_after_a_non_idempotent_command_marks_it_unknown_never_repeated(
    journal: Journal,
) -> None:
    # Hello, login, device info, entity list, the press: dropped at the barrier.
    async with Fleet(tvs(1, drop_after=5)) as fleet:
        dev = fleet.devices[0]
        press = make_entry("bar-tv-1", "button", "identify", {}, idempotent=False)
        after = make_entry("bar-tv-1", "switch", "tv_power", {"state": True})
        queue(journal, [press, after])

        def heal() -> None:
            dev.faults.drop_after = None

        totals = await run(journal, fleet, watch=Watch(heal))
        got = received(dev)
    assert got.count(("button.identify", {})) == 1
    assert got[-1] == ("switch.tv_power", {"state": True})
    ledger = journal.ledger()
    unknown = ledger.get(press.id)
    assert unknown.state.value == "unknown"
    assert "not safe to repeat" in (unknown.reason or "")
    assert ledger.get(after.id).state.value == "done"
    assert totals.exit_code() == ExitCode.FAILED
    assert totals.devices["bar-tv-1"].get("unknown") == 1


async def test_max_connections_reached_is_transient(journal: Journal) -> None:
    async with Fleet(tvs(1)) as fleet:
        dev = fleet.devices[0]
        dev.set_max_connections(0)
        entries = queue(journal, volumes("bar-tv-1", 2))
        totals = await run(journal, fleet)
        tally = totals.devices["bar-tv-1"]
        assert tally.retried == FAST.tries - 1
        assert totals.exit_code() == ExitCode.UNREACHABLE
        assert "bar-tv-1" in (tally.error or "")
        assert {journal.ledger().state(e.id).value for e in entries} == {"pending"}
        # The same entries go through once a slot is free again.
        dev.set_max_connections(4)
        ledger = journal.ledger()
        for e in entries:  # make them due now
            assert ledger.get(e.id).not_before > time.time()
        totals = await loops.drain_with(_engine_at(journal, fleet, 3600))
        assert totals.exit_code() == ExitCode.OK
        assert {journal.ledger().state(e.id).value for e in entries} == {"done"}


def _engine_at(journal: Journal, fleet: Fleet, ahead: float) -> eng.Engine:
    """An engine whose clock runs `ahead` seconds in the future (rescheduled entries are due)."""
    return eng.Engine(
        journal,
        loops.lookup(addresses(fleet)),
        DrainOptions(policy=FAST),
        clock=lambda: time.time() + ahead,
    )


async def test_reboot_is_ridden_out_with_backoff(journal: Journal) -> None:
    async with Fleet(tvs(1)) as fleet:
        dev = fleet.devices[0]
        entries = queue(journal, volumes("bar-tv-1", 3))
        reboot = asyncio.ensure_future(dev.reboot(0.4))
        await asyncio.sleep(0.05)
        policy = replace(FAST, tries=8, initial=0.1, maximum=0.2)
        totals = await run(journal, fleet, policy=policy)
        await reboot
    assert totals.exit_code() == ExitCode.OK
    assert totals.devices["bar-tv-1"].retried >= 1
    assert {journal.ledger().state(e.id).value for e in entries} == {"done"}


async def test_flapping_device_gets_everything_eventually(journal: Journal) -> None:
    flapping = FaultSpec(flap_up=0.6, flap_down=0.3)
    specs = [replace(s, faults=flapping) for s in venue(1, encrypted=False)]
    async with Fleet(specs) as fleet:
        entries = queue(journal, volumes("bar-tv-1", 20))
        policy = replace(FAST, tries=10, initial=0.1, maximum=0.2)
        for _ in range(5):  # a run may end in a down phase; the next run picks up the rest
            totals = await loops.drain_with(
                eng.Engine(journal, loops.lookup(addresses(fleet)),
                           DrainOptions(policy=policy, connect_timeout=0.5),
                           clock=lambda: time.time() + 3600),
            )
            if totals.exit_code() == ExitCode.OK:
                break
        got = received(fleet.devices[0])
    assert {journal.ledger().state(e.id).value for e in entries} == {"done"}
    # at least once, in order: the last value written is the last one queued
    assert got[-1] == ("number.volume", {"value": 19.0})
    assert {a["value"] for _, a in got} == {float(v) for v in range(20)}


@pytest.mark.parametrize("encrypted", [False, True])
async def test_encrypted_and_plaintext_both_drain(journal: Journal, encrypted: bool) -> None:
    async with Fleet(tvs(2, encrypted=encrypted)) as fleet:
        entries = queue(journal, [e for d in ("bar-tv-1", "bar-tv-2") for e in volumes(d, 2)])
        totals = await run(journal, fleet)
    assert totals.exit_code() == ExitCode.OK
    assert {journal.ledger().state(e.id).value for e in entries} == {"done"}
