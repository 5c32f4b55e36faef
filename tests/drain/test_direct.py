"""`send` and immediate steps, in process, against simulated devices."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from cmdctl.core.errors import ExitCode
from cmdctl.core.model import Command, Priority
from cmdctl.drain import direct, loops
from cmdctl.drain.direct import Mode
from cmdctl.drain.due import select
from cmdctl.journal.store import Journal
from cmdctl.simulator import Fleet, write_inventory

from .conftest import address, addresses, make_entry, received, tvs


def power(device: str = "bar-tv-1", *, idempotent: bool = True) -> direct.Entry:
    return direct.send_entry(
        device, Command("switch", "tv_power", {"state": True}), who="t@h", idempotent=idempotent
    )


async def test_send_confirms_and_history_has_it(journal: Journal) -> None:
    async with Fleet(tvs(1)) as fleet:
        entry = power()
        result = await direct.send(journal, address(fleet.devices[0]), entry)
        assert received(fleet.devices[0]) == [("switch.tv_power", {"state": True})]
    assert result.status == "confirmed"
    assert result.exit_code == ExitCode.OK
    got = journal.ledger().get(entry.id)
    assert (got.state.value, got.outcome, got.origin, got.priority) == (
        "done", "confirmed", "send", Priority.HIGH,
    )


async def test_send_to_an_offline_device_queues_it_high_and_due_now(journal: Journal) -> None:
    async with Fleet(tvs(1, offline=True)) as fleet:
        entry = power()
        before = time.time()
        result = await direct.send(journal, address(fleet.devices[0]), entry, timeout=1.0)
    assert result.status == "queued"
    assert result.exit_code == ExitCode.QUEUED
    assert result.error is not None and "connection refused" in result.error.one_line()
    got = journal.ledger().get(entry.id)
    assert got.state.value == "pending"
    assert got.priority is Priority.HIGH
    assert got.not_before <= time.time() and got.not_before >= before
    assert [e.id for e in select(journal.ledger(), time.time()).due] == [entry.id]


async def test_send_now_never_queues(journal: Journal) -> None:
    async with Fleet(tvs(1, offline=True)) as fleet:
        entry = power()
        result = await direct.send(journal, address(fleet.devices[0]), entry, mode=Mode.NOW)
    assert result.exit_code == ExitCode.UNREACHABLE
    assert journal.ledger().get(entry.id).state.value == "failed"
    assert select(journal.ledger(), time.time()).due == []


async def test_send_queue_only_queues(journal: Journal) -> None:
    async with Fleet(tvs(1)) as fleet:
        entry = power()
        result = await direct.send(journal, address(fleet.devices[0]), entry, mode=Mode.QUEUE)
        assert received(fleet.devices[0]) == []
    assert (result.status, result.exit_code) == ("queued", ExitCode.OK)
    assert journal.ledger().get(entry.id).state.value == "pending"


async def test_send_invalid_value_fails_at_once_and_is_not_queued(journal: Journal) -> None:
    async with Fleet(tvs(1)) as fleet:
        entry = direct.send_entry(
            "bar-tv-1", Command("number", "volume", {"value": 250.0}), who="t@h", idempotent=True
        )
        result = await direct.send(journal, address(fleet.devices[0]), entry)
        assert received(fleet.devices[0]) == []
    assert result.exit_code == ExitCode.FAILED
    assert result.error is not None
    assert "bar-tv-1: number.volume" in result.error.one_line()
    assert "100" in result.error.one_line()
    assert journal.ledger().get(entry.id).state.value == "failed"


async def test_send_with_the_wrong_key_fails_and_is_not_queued(journal: Journal) -> None:
    async with Fleet(tvs(1, encrypted=True, wrong_key=True)) as fleet:
        result = await direct.send(journal, address(fleet.devices[0]), power())
    assert result.exit_code == ExitCode.FAILED
    assert result.error is not None and "wrong encryption key" in result.error.one_line()


async def test_a_running_send_is_never_taken_by_a_drain(journal: Journal) -> None:
    # A silent device keeps the send busy; a drain meanwhile must not touch its entry.
    async with Fleet(tvs(1, silent=True)) as fleet:
        entry = power()
        import asyncio

        sending = asyncio.ensure_future(
            direct.send(journal, address(fleet.devices[0]), entry, timeout=1.5)
        )
        await asyncio.sleep(0.3)
        assert journal.ledger().state(entry.id).value == "running"
        totals = await loops.drain(journal, loops.lookup(addresses(fleet)))
        assert totals.idle
        assert journal.ledger().state(entry.id).value == "running"
        result = await sending
    assert result.exit_code == ExitCode.QUEUED
    assert journal.ledger().state(entry.id).value == "pending"


async def test_immediate_steps_run_inline_and_are_never_left_queued(journal: Journal) -> None:
    specs = tvs(2)
    async with Fleet(specs) as fleet:
        await fleet.devices[1].set_offline(True)
        entries = [
            make_entry(d, "button", "identify", {}, idempotent=False, step="blink")
            for d in ("bar-tv-1", "bar-tv-2")
        ]
        totals = await direct.run_immediate(journal, loops.lookup(addresses(fleet)), entries)
        assert received(fleet.devices[0]) == [("button.identify", {})]
    assert totals.devices["bar-tv-1"].get("delivered") == 1
    assert totals.devices["bar-tv-2"].get("unreachable") == 1
    assert "connection refused" in (totals.devices["bar-tv-2"].error or "")
    assert totals.exit_code() == ExitCode.UNREACHABLE
    ledger = journal.ledger()
    assert ledger.get(entries[0].id).state.value == "done"
    assert ledger.get(entries[1].id).state.value == "failed"
    assert select(ledger, time.time() + 10**6).due == []


@pytest.mark.timeout(90)
async def test_a_bulk_whose_batch_cannot_be_written_sends_nothing(tmp_path: Path) -> None:
    """Issue 13, item 3: with the disk full, `bulk` said "nothing accepted" after its
    `mode: immediate` presses had already run. The whole batch is one durable append, made
    before anything is sent: if it fails, no device got anything and the journal holds none of
    it. (RLIMIT_FSIZE makes writes past a size fail with EFBIG, as a full disk would.)"""
    import asyncio
    import resource

    from .conftest import cli_env
    from .simproc import cmdctl_argv

    async with Fleet(tvs(2)) as fleet:
        inventory = tmp_path / "devices.yml"
        write_inventory(fleet.devices, inventory)
        playbook = tmp_path / "night.yml"
        playbook.write_text(
            "name: night\ntargets: all\nsteps:\n"
            "  - name: blink\n    button.identify: press\n    mode: immediate\n"
            + "".join(f"  - name: v{n}\n    number.volume: {n}\n" for n in range(60))
        )
        journal = Journal(tmp_path / "journal")
        # PYTHONDONTWRITEBYTECODE: under the limit, a module it compiled would be cached as a
        # cut-off .pyc (written in one unchecked write) and break every later import of it.
        env = cli_env(journal.directory, inventory, PYTHONDONTWRITEBYTECODE="1")
        limit = 16 * 1024  # the immediate part fits; the whole batch does not

        def small_disk() -> None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

        proc = await asyncio.create_subprocess_exec(
            *cmdctl_argv("bulk", str(playbook)), env=env, preexec_fn=small_disk,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), 60)
        text = (out + err).decode()
        assert proc.returncode == ExitCode.JOURNAL, text
        assert "nothing accepted" in text and "Traceback" not in text
        assert [received(dev) for dev in fleet.devices] == [[], []]  # no press was sent
    assert journal.ledger().entries() == []  # and none of the batch is in the journal
