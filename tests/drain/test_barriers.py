"""Barriers (`after:`) and failover / any-of targets, against simulated devices."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import pytest

from cmdctl.core.model import Coordination, Entry
from cmdctl.drain import engine as eng
from cmdctl.drain import loops
from cmdctl.drain.options import DrainOptions
from cmdctl.drain.retry import RetryPolicy
from cmdctl.journal.store import Journal
from cmdctl.simulator import Fleet

from .conftest import addresses, make_entry, queue, received

ONE_TRY = RetryPolicy(tries=1, ambiguous_tries=1, initial=0.01, maximum=0.01, jitter=0.0)


def options(**changes: Any) -> DrainOptions:
    return DrainOptions(**{"policy": ONE_TRY, "connect_timeout": 0.5, "verify_timeout": 0.5,
                           **changes})


#: For tests that need a connection and a confirmation to come through: an offline device
#: refuses at once, so these only bound a healthy one, which a loaded CI machine may slow.
PATIENT = {"connect_timeout": 5.0, "verify_timeout": 5.0}


def two_steps(
    fleet: Fleet, *, bad: str | None = None, on_failure: str | None = None, attempts: int = 3
) -> tuple[list[Entry], list[Entry]]:
    """Step "input" on every TV (invalid on `bad`), then step "volume" `after: input`."""
    inputs, volumes = [], []
    keys = Coordination(after="input", on_failure=on_failure or "skip")
    for dev in fleet.devices:
        option = "HDMI 9" if dev.name == bad else "HDMI 2"
        inputs.append(make_entry(dev.name, "select", "input", {"option": option}, step="input",
                                 max_attempts=attempts))
    for dev in fleet.devices:
        volumes.append(replace(make_entry(dev.name, "number", "volume", {"value": 25.0},
                                          step="volume"), coordination=keys))
    return inputs, volumes


async def test_a_dependent_step_runs_after_its_prerequisite_finished_everywhere(
    journal: Journal, fleet3: Fleet
) -> None:
    inputs, volumes = two_steps(fleet3)
    # Queue order puts each TV's volume right after its input: only the barrier holds it back.
    queue(journal, [e for pair in zip(inputs, volumes, strict=True) for e in pair])
    totals = await loops.drain(journal, loops.lookup(addresses(fleet3)), options())
    assert totals.exit_code() == 0, totals.as_dict()
    ledger = journal.ledger()
    assert {ledger.state(e.id).value for e in inputs + volumes} == {"done"}
    input_times = [r.ts for d in fleet3.devices for r in d.received if r.kind == "select"]
    volume_times = [r.ts for d in fleet3.devices for r in d.received if r.kind == "number"]
    assert len(input_times) == len(volume_times) == 3
    assert max(input_times) < min(volume_times)


@pytest.mark.parametrize("on_failure", [None, "skip", "continue"])
async def test_a_prerequisite_failing_on_one_device_skips_per_on_failure(
    journal: Journal, fleet3: Fleet, on_failure: str | None
) -> None:
    inputs, volumes = two_steps(fleet3, bad="bar-tv-3", on_failure=on_failure)
    queue(journal, inputs + volumes)
    totals = await loops.drain(journal, loops.lookup(addresses(fleet3)), options())
    ledger = journal.ledger()
    assert [ledger.state(e.id).value for e in inputs] == ["done", "done", "failed"]
    got = [ledger.get(e.id) for e in volumes]
    reason = "prerequisite 'input' failed on bar-tv-3"
    if on_failure == "continue":
        assert [e.state.value for e in got] == ["done", "done", "skipped"]
        assert got[2].reason == reason
        assert [bool(received(d)[1:]) for d in fleet3.devices] == [True, True, False]
    else:
        assert [e.state.value for e in got] == ["skipped"] * 3
        assert {e.reason for e in got} == {reason}
        assert all(s != "number.volume" for d in fleet3.devices for s, _ in received(d))
    assert totals.count("skipped") == (1 if on_failure == "continue" else 3)


async def test_a_prerequisite_on_an_offline_device_holds_then_skips(
    journal: Journal, fleet3: Fleet
) -> None:
    await fleet3.devices[2].set_offline(True)
    inputs, volumes = two_steps(fleet3, attempts=2)
    queue(journal, inputs + volumes)
    await loops.drain(journal, loops.lookup(addresses(fleet3)), options())
    ledger = journal.ledger()
    # bar-tv-3's input is rescheduled: not finished everywhere yet, so every volume waits.
    assert [ledger.state(e.id).value for e in inputs] == ["done", "done", "pending"]
    assert {ledger.state(e.id).value for e in volumes} == {"pending"}
    later = eng.Engine(journal, loops.lookup(addresses(fleet3)), options(),
                       clock=lambda: time.time() + 7200)
    await loops.drain_with(later)
    ledger = journal.ledger()
    assert ledger.state(inputs[2].id).value == "failed"  # out of attempts
    assert {ledger.get(e.id).reason for e in volumes} == {
        "prerequisite 'input' failed on bar-tv-3"}
    assert all(s != "number.volume" for d in fleet3.devices for s, _ in received(d))


# -- failover / any ----------------------------------------------------------------------------


def picked(pick: str, candidates: list[str], **args: Any) -> Entry:
    """One entry for a `targets: {pick: candidates}` step, as the playbook expands it."""
    entry = make_entry(candidates[0], "switch", "tv_power", {"state": True}, **args)
    return replace(entry, coordination=Coordination(pick=pick, candidates=tuple(candidates)))


async def test_failover_runs_on_the_second_candidate_when_the_first_is_offline(
    journal: Journal, fleet3: Fleet
) -> None:
    first, second, third = fleet3.devices
    await first.set_offline(True)
    (entry,) = queue(journal, [picked("failover", [first.name, second.name, third.name])])
    totals = await loops.drain(journal, loops.lookup(addresses(fleet3)), options(**PATIENT))
    assert totals.count("confirmed") == 1, totals.as_dict()
    assert received(second) == [("switch.tv_power", {"state": True})]
    assert received(third) == [] and received(first) == []
    got = journal.ledger().get(entry.id)
    assert (got.state.value, got.ran_on, got.device) == ("done", second.name, first.name)


async def test_failover_with_no_reachable_candidate_stays_queued_with_the_error(
    journal: Journal, fleet3: Fleet
) -> None:
    first, second, _ = fleet3.devices
    await first.set_offline(True)
    await second.set_offline(True)
    (entry,) = queue(journal, [picked("failover", [first.name, second.name])])
    totals = await loops.drain(journal, loops.lookup(addresses(fleet3)), options())
    got = journal.ledger().get(entry.id)
    assert (got.state.value, got.ran_on) == ("pending", None)
    assert second.name in (got.last_error or "")  # the last candidate tried
    assert totals.count("unreachable") == 1


async def test_any_picks_the_least_busy_reachable_candidate(
    journal: Journal, fleet3: Fleet
) -> None:
    first, second, third = fleet3.devices
    await first.set_offline(True)
    busy = [make_entry(third.name, "number", "volume", {"value": float(n)}) for n in range(3)]
    *_, entry = queue(journal, [*busy, picked("any", [first.name, third.name, second.name])])
    await loops.drain(journal, loops.lookup(addresses(fleet3)), options(**PATIENT))
    got = journal.ledger().get(entry.id)
    assert (got.state.value, got.ran_on) == ("done", second.name)
    assert received(second) == [("switch.tv_power", {"state": True})]


async def test_an_entry_behind_a_barrier_does_not_supersede_an_older_one(
    journal: Journal, fleet3: Fleet
) -> None:
    tv = fleet3.devices[0]
    older = make_entry(tv.name, "number", "volume", {"value": 11.0}, batch="SEND")
    power = make_entry(tv.name, "switch", "tv_power", {"state": True}, batch="PB", step="power")
    behind = replace(make_entry(tv.name, "number", "volume", {"value": 22.0}, batch="PB",
                                step="volume"), coordination=Coordination(after="power"))
    queue(journal, [older, power, behind])
    totals = await loops.drain(journal, loops.lookup(addresses(fleet3)), options())
    assert totals.superseded == 0
    # The newer volume waited for its barrier, ran in a later pass of the same drain.
    assert [a for s, a in received(tv) if s == "number.volume"] == [
        {"value": 11.0}, {"value": 22.0}]
    assert {journal.ledger().state(e.id).value for e in (older, power, behind)} == {"done"}
