"""`cmdctl send` as a real process against simulated devices: routing, messages, exit codes."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import time
from pathlib import Path

import pytest

from cmdctl.core.errors import ExitCode
from cmdctl.core.model import Priority
from cmdctl.drain.due import select
from cmdctl.journal.store import Journal
from cmdctl.simulator import Fleet, write_inventory

from .conftest import acmdctl, cli_env, received, start_cmdctl, tvs


def setup(tmp_path: Path, fleet: Fleet) -> tuple[Journal, dict[str, str]]:
    inventory = tmp_path / "devices.yml"
    write_inventory(fleet.devices, inventory)
    journal = Journal(tmp_path / "journal")
    return journal, cli_env(journal.directory, inventory)


async def test_send_prints_the_outcome_and_the_time_taken(tmp_path: Path) -> None:
    async with Fleet(tvs(1, encrypted=True)) as fleet:
        journal, env = setup(tmp_path, fleet)
        code, out, err = await acmdctl("send", "bar-tv-1", "select.input", "HDMI 2", env=env)
        assert received(fleet.devices[0]) == [("select.input", {"option": "HDMI 2"})]
    assert code == ExitCode.OK, err
    assert re.fullmatch(r"bar-tv-1: select\.input confirmed in \d+\.\d\ds\n", out), out
    (entry,) = journal.ledger().entries()
    assert (entry.state.value, entry.origin, entry.priority) == ("done", "send", Priority.HIGH)


async def test_send_to_an_unreachable_device_queues_it_and_says_so(tmp_path: Path) -> None:
    async with Fleet(tvs(1)) as fleet:
        journal, env = setup(tmp_path, fleet)
        await fleet.devices[0].set_offline(True)
        code, out, err = await acmdctl("send", "bar-tv-1", "switch.tv_power", "on", env=env)
        (entry,) = journal.ledger().entries()
        assert code == ExitCode.QUEUED
        assert out == ""
        assert err == (
            f"cmdctl: bar-tv-1 unreachable (connection refused) — queued as {entry.id}; "
            "the next drain will retry it\n"
        )
        assert (entry.state.value, entry.priority) == ("pending", Priority.HIGH)
        # The next drain retries it once the device is back.
        await fleet.devices[0].set_offline(False)
        code, _, err = await acmdctl("drain", env=env)
        assert code == ExitCode.OK, err
        assert received(fleet.devices[0]) == [("switch.tv_power", {"state": True})]
    assert journal.ledger().get(entry.id).state.value == "done"


async def test_send_now_never_queues_and_exits_with_the_failure(tmp_path: Path) -> None:
    async with Fleet(tvs(1)) as fleet:
        journal, env = setup(tmp_path, fleet)
        await fleet.devices[0].set_offline(True)
        code, _, err = await acmdctl("send", "--now", "bar-tv-1", "switch.tv_power", "on",
                                     env=env)
    assert code == ExitCode.UNREACHABLE
    assert err == (
        "cmdctl: bar-tv-1: connection refused "
        "(hint: is the device powered and on the network?)\n"
    )
    (entry,) = journal.ledger().entries()
    assert entry.state.value == "failed"


async def test_send_queue_only_queues(tmp_path: Path) -> None:
    async with Fleet(tvs(1)) as fleet:
        journal, env = setup(tmp_path, fleet)
        code, out, err = await acmdctl("send", "--queue", "bar-tv-1", "button.identify", env=env)
        assert received(fleet.devices[0]) == []
    (entry,) = journal.ledger().entries()
    assert code == ExitCode.OK, err
    assert out == f"queued as {entry.id}\n"
    assert entry.state.value == "pending" and entry.idempotent is False


async def test_send_json(tmp_path: Path) -> None:
    async with Fleet(tvs(1)) as fleet:
        _, env = setup(tmp_path, fleet)
        code, out, _ = await acmdctl("send", "--json", "bar-tv-1", "number.volume", "30", env=env)
    result = json.loads(out)
    assert code == ExitCode.OK
    assert result["status"] == "confirmed"
    assert (result["args"], result["exit_code"]) == ({"value": 30.0}, 0)


async def test_invalid_value_fails_at_once_precisely_and_is_not_queued(tmp_path: Path) -> None:
    async with Fleet(tvs(1)) as fleet:
        journal, env = setup(tmp_path, fleet)
        code, _, err = await acmdctl("send", "bar-tv-1", "select.input", "HDMI 5", env=env)
        assert received(fleet.devices[0]) == []
    assert code == ExitCode.FAILED
    assert err.startswith("cmdctl: bar-tv-1: select.input has no option 'HDMI 5' (options: HDMI 1")
    (entry,) = journal.ledger().entries()
    assert entry.state.value == "failed"


async def test_unknown_entity_fails_at_once(tmp_path: Path) -> None:
    async with Fleet(tvs(1)) as fleet:
        journal, env = setup(tmp_path, fleet)
        code, _, err = await acmdctl("send", "bar-tv-1", "switch.tv_powr", "on", env=env)
    assert code == ExitCode.FAILED
    assert err.startswith("cmdctl: bar-tv-1: ") and "tv_powr" in err
    assert select(journal.ledger(), 1e12).due == []


async def test_wrong_key_fails_at_once(tmp_path: Path) -> None:
    async with Fleet(tvs(1, encrypted=True, wrong_key=True)) as fleet:
        journal, env = setup(tmp_path, fleet)
        code, _, err = await acmdctl("send", "bar-tv-1", "switch.tv_power", "on", env=env)
    assert code == ExitCode.FAILED
    assert err.startswith("cmdctl: bar-tv-1: wrong encryption key")
    assert select(journal.ledger(), 1e12).due == []


async def test_unknown_device_and_contradictory_flags_are_input_errors(tmp_path: Path) -> None:
    async with Fleet(tvs(1)) as fleet:
        journal, env = setup(tmp_path, fleet)
        code, _, err = await acmdctl("send", "bar-tv-9", "switch.tv_power", "on", env=env)
        assert code == ExitCode.INPUT
        assert "bar-tv-9" in err and "bar-tv-1" in err  # did you mean
        code, _, err = await acmdctl("send", "--now", "--queue", "bar-tv-1", "button.identify",
                                     env=env)
        assert code == ExitCode.INPUT
        assert "--now and --queue" in err
        code, _, err = await acmdctl("send", "bar-tv-1", "number.volume", "loud", env=env)
        assert code == ExitCode.INPUT
    assert len(journal.ledger()) == 0


@pytest.mark.parametrize(("entity", "state"), [("switch.tv_power", "pending"),
                                               ("button.identify", "unknown")])
async def test_ctrl_c_during_a_send_records_where_it_stopped(
    tmp_path: Path, entity: str, state: str
) -> None:
    async with Fleet(tvs(1, silent=True)) as fleet:
        journal, env = setup(tmp_path, fleet)
        args = ["send", "--timeout", "20s", "bar-tv-1", entity]
        if entity.startswith("switch"):
            args.append("on")
        proc = await start_cmdctl(*args, env=env)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not len(journal.ledger()):
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(proc.communicate(), 10)
    assert proc.returncode == ExitCode.INTERRUPTED
    (entry,) = journal.ledger().entries()
    assert entry.state.value == state
    assert f"cmdctl: interrupted; {entry.id}" in err.decode()
