"""The library's own contract: lazy import, the CLI's lookup, errors as exceptions, results as
values. The examples in docs/library.md (test_library_doc.py) cover sending and draining."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import cmdctl
from cmdctl.api.fleet import Fleet
from cmdctl.core.errors import InputError
from tests.cli.helpers import volume_playbook, write_inventory


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("CMDCTL_HOME", "CMDCTL_INVENTORY", "XDG_STATE_HOME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("CMDCTL_HOME", str(tmp_path / "state"))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_import_cmdctl_loads_nothing_heavy() -> None:
    code = (
        "import sys, cmdctl\n"
        "heavy = [m for m in ('cmdctl.api', 'aioesphomeapi', 'yaml', 'typer', 'rich')"
        " if m in sys.modules]\n"
        "assert heavy == [], heavy\n"
        "fleet = cmdctl.Fleet\n"
        "assert 'aioesphomeapi' not in sys.modules\n"
        "assert cmdctl.InputError.__module__ == 'cmdctl.core.errors'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_unknown_attribute_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Flet'"):
        cmdctl.Flet  # type: ignore[attr-defined]  # noqa: B018


def test_open_finds_inventory_and_journal_as_the_cli_does(home: Path) -> None:
    config = home / "config" / "cmdctl"
    config.mkdir(parents=True)
    write_inventory(config, 2)
    fleet = Fleet.open()
    assert fleet.journal.directory == home / "state"
    assert sorted(fleet.inventory.by_name) == ["tv-1", "tv-2"]


def test_status_needs_no_inventory(home: Path) -> None:
    fleet = Fleet.open()
    assert fleet.status().total == 0
    with pytest.raises(InputError, match="no inventory"):
        _ = fleet.inventory


async def test_queue_bulk_text_then_manage(home: Path) -> None:
    write_inventory(home, 3)
    fleet = Fleet.open(inventory=home / "devices.yml", who="tester@here")
    batch = await fleet.bulk(volume_playbook(2), at="+1h")
    assert batch.exit_code == cmdctl.ExitCode.OK and batch.totals is None
    assert len(batch.queued) == 6
    page = fleet.entries(batch=batch.id[:12], last=4)
    assert (len(page), page.total) == (4, 6)
    assert fleet.status().batches[0].total == 6
    change = fleet.cancel(device="tv-1", dry_run=True)
    assert len(change.changed) == 2 and fleet.entries(device="tv-1").total == 2
    change = fleet.cancel(device="tv-1")
    assert {e.device for e in change.changed} == {"tv-1"}
    assert fleet.entries(state="cancelled").total == 2
    assert fleet.entries(state=cmdctl.State.CANCELLED).total == 2
    assert fleet.entry(change.changed[0].id).who == "tester@here"
    assert fleet.retry(failed=False, device="tv-1").changed
    assert fleet.history() == []


async def test_bad_input_raises_with_a_place_and_writes_nothing(home: Path) -> None:
    write_inventory(home, 1)
    fleet = Fleet.open(inventory=home / "devices.yml")
    with pytest.raises(InputError) as err:
        await fleet.bulk("targets: tvs\nsteps:\n  - number.volume: loud\n")
    assert (err.value.file, err.value.line) == ("<playbook>", 3)
    with pytest.raises(InputError, match="unknown send mode"):
        await fleet.send("tv-1", "switch.tv_power", "on", mode="later")
    with pytest.raises(InputError, match="unknown state"):
        fleet.entries(state="lost")
    with pytest.raises(InputError, match="say which entries"):
        fleet.cancel()
    with pytest.raises(InputError):
        fleet.priority("NOSUCHID", "high")
    assert fleet.status().total == 0


async def test_send_queue_mode_only_journals(home: Path) -> None:
    write_inventory(home, 1)
    fleet = Fleet.open(inventory=home / "devices.yml")
    result = await fleet.send("tv-1", "number.volume", 20, mode="queue")
    assert result.status == "queued" and result.exit_code == cmdctl.ExitCode.OK
    (entry,) = fleet.entries()
    assert entry.command.selector == "number.volume" and entry.id == result.entry.id
    events = [item.event.type async for item in fleet.events(device="tv-1")]
    assert events == ["queued"]


async def test_run_until_stopped_with_a_notify_hook(home: Path) -> None:
    import asyncio
    import json

    from cmdctl.simulator import Fleet as SimFleet
    from cmdctl.simulator import venue
    from cmdctl.simulator import write_inventory as write_sim_inventory

    out = home / "hook.jsonl"
    async with SimFleet(venue(2)) as sim:
        write_sim_inventory(sim.devices, home / "devices.yml")
        fleet = Fleet.open(inventory=home / "devices.yml")
        stop = asyncio.Event()
        runner = asyncio.create_task(
            fleet.run(stop=stop, notify=f"cat >> {out}; echo >> {out}", notify_timeout=5.0)
        )
        await asyncio.sleep(0.2)
        with pytest.raises(cmdctl.BusyError):  # run holds the drain lock
            await fleet.drain()
        batch = await fleet.bulk("targets: tvs\nsteps:\n  - number.volume: 25\n")
        for _ in range(200):
            if fleet.status(batch.id).batches[0].finished == 2:
                break
            await asyncio.sleep(0.05)
        stop.set()
        totals = await asyncio.wait_for(runner, timeout=10)
    assert totals.count("confirmed") == 2 and not totals.interrupted
    assert all(d.state_of("number.volume") == 25 for d in sim.devices)
    events = [json.loads(line) for line in out.read_text().splitlines() if line.strip()]
    assert [e["event"] for e in events] == ["batch"]
    assert events[0]["batch"] == batch.id
