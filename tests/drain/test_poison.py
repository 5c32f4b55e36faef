"""A poison command (issue 13, item 2): one command the client cannot encode, or whose drain
keeps dying, must fail alone, with its cause, and never crash or wedge the drains after it."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from cmdctl.core.errors import ExitCode
from cmdctl.core.model import Command
from cmdctl.drain import direct, loops, recovery
from cmdctl.drain.direct import Mode
from cmdctl.drain.options import DrainOptions
from cmdctl.journal import events as ev
from cmdctl.journal.store import Journal
from cmdctl.simulator import Fleet, write_inventory

from .conftest import acmdctl, address, addresses, cli_env, make_entry, queue, received, tvs

#: A light transition of 99999999 days: more milliseconds than the API's uint32 carries. Load
#: refuses it now; an entry queued before that check (or written by hand) still holds it.
POISON = {"state": True, "transition": 99999999 * 86400.0}


async def test_a_command_the_client_cannot_encode_fails_alone_and_the_drain_goes_on(
    journal: Journal,
) -> None:
    async with Fleet(tvs(1)) as fleet:
        tv = fleet.devices[0]
        before = make_entry(tv.name, "switch", "tv_power", {"state": True})
        poison = make_entry(tv.name, "light", "backlight", POISON)
        after = make_entry(tv.name, "number", "volume", {"value": 12.0})
        queue(journal, [before, poison, after])
        totals = await loops.drain(journal, loops.lookup(addresses(fleet)), DrainOptions())
        assert totals.exit_code() == ExitCode.FAILED  # one command failed; no crash (70)
        got = received(tv)
    assert ("switch.tv_power", {"state": True}) in got
    assert ("number.volume", {"value": 12.0}) in got
    assert not any(s == "light.backlight" for s, _ in got)
    ledger = journal.ledger()
    failed = ledger.get(poison.id)
    assert failed.state.value == "failed" and failed.attempts == 1
    assert "light.backlight: cannot be sent: ValueError: Value out of range" in (
        failed.last_error or "")
    assert {ledger.state(e.id).value for e in (before, after)} == {"done"}


@pytest.mark.timeout(90)
async def test_a_real_drain_process_exits_1_and_the_next_has_nothing_left(tmp_path: Path) -> None:
    async with Fleet(tvs(1)) as fleet:
        inventory = tmp_path / "devices.yml"
        write_inventory(fleet.devices, inventory)
        journal = Journal(tmp_path / "journal")
        queue(journal, [make_entry(fleet.devices[0].name, "light", "backlight", POISON)])
        env = cli_env(journal.directory, inventory)
        code, _, err = await acmdctl("drain", env=env, timeout=60)
        assert code == ExitCode.FAILED, err
        assert "Traceback" not in err and "cannot be sent" in err
        code, out, err = await acmdctl("drain", "--json", env=env, timeout=60)
        assert code == ExitCode.OK, err
        assert json.loads(out)["devices"] == []  # failed for good: not picked up again


async def test_send_now_with_a_poison_value_fails_and_never_queues(journal: Journal) -> None:
    async with Fleet(tvs(1)) as fleet:
        entry = direct.send_entry(fleet.devices[0].name, Command("light", "backlight", POISON),
                                  who="t@h", idempotent=True)
        result = await direct.send(journal, address(fleet.devices[0]), entry, mode=Mode.NOW)
    assert result.status == "failed" and result.exit_code == ExitCode.FAILED
    assert journal.ledger().get(entry.id).state.value == "failed"


def _died_running(journal: Journal, entry_id: str, run: str) -> None:
    """A drain started the entry and died (its pid is ours, but the drain lock is free)."""
    owner = recovery.Owner(run, recovery.DRAIN, os.getpid(), recovery.this_host(), 1e12)
    entry = journal.ledger().get(entry_id)
    journal.append([recovery.started(entry, time.time(), owner)])


def test_an_entry_whose_drain_keeps_dying_is_failed_after_a_bounded_number_of_times(
    journal: Journal,
) -> None:
    entry = queue(journal, [make_entry("tv", "switch", "tv_power", {"state": True})])[0]
    states = []
    for n in range(recovery.MAX_INTERRUPTIONS):
        _died_running(journal, entry.id, f"RUN{n}")
        found = recovery.recover(journal.ledger(), time.time(), run="NEXT",
                                 holding_drain_lock=True)
        journal.append([e for _, v in found for e in v.events])
        states.append(journal.ledger().get(entry.id).state.value)
    assert states == ["pending"] * (recovery.MAX_INTERRUPTIONS - 1) + ["failed"]
    got = journal.ledger().get(entry.id)
    assert f"{recovery.MAX_INTERRUPTIONS} times in a row" in (got.last_error or "")


@pytest.mark.timeout(60)
async def test_an_entry_whose_drain_died_can_be_cancelled_but_not_one_a_live_drain_runs(
    journal: Journal,
) -> None:
    entry = queue(journal, [make_entry("tv", "switch", "tv_power", {"state": True})])[0]
    _died_running(journal, entry.id, "DEAD")
    env = cli_env(journal.directory)
    with journal.try_drain_lock():  # a drain is alive: the entry may really be in flight
        code, out, err = await acmdctl("queue", "cancel", entry.id, env=env)
    assert code != ExitCode.OK and "running now" in (out + err)
    assert journal.ledger().get(entry.id).state.value == "running"
    code, out, err = await acmdctl("queue", "cancel", entry.id, env=env)  # no drain: it died
    assert code == ExitCode.OK, err
    assert journal.ledger().get(entry.id).state.value == "cancelled"
    assert ev.CANCELLED in {e.type for e in journal.read().events()}
