"""`cmdctl drain` and `cmdctl run` as real processes against simulated devices."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path

import pytest

from cmdctl.core.errors import ExitCode
from cmdctl.journal.store import Journal
from cmdctl.simulator import Fleet, write_inventory

from .conftest import (
    acmdctl,
    cli_env,
    cmdctl_argv,
    make_entry,
    queue,
    received,
    start_cmdctl,
    tvs,
)


def setup(tmp_path: Path, fleet: Fleet) -> tuple[Journal, dict[str, str]]:
    inventory = tmp_path / "devices.yml"
    write_inventory(fleet.devices, inventory)
    journal = Journal(tmp_path / "journal")
    return journal, cli_env(journal.directory, inventory)


def powers(fleet: Fleet, **kw: object) -> list:
    return [make_entry(d.name, "switch", "tv_power", {"state": True}, **kw) for d in fleet.devices]


async def until_work_started(
    journal: Journal, entries: list | None = None, timeout: float = 20.0
) -> None:
    """Wait until some entry has left `pending` (the process is up and has its handlers)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ledger = journal.ledger()
        ids = [e.id for e in entries] if entries is not None else list(ledger.ids())
        if any(ledger.state(i).value != "pending" for i in ids):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the drain never started any work")


async def test_drain_runs_everything_and_prints_one_summary_line(tmp_path: Path) -> None:
    async with Fleet(tvs(3)) as fleet:
        journal, env = setup(tmp_path, fleet)
        queue(journal, powers(fleet))
        code, out, err = await acmdctl("drain", env=env)
        assert [received(d) for d in fleet.devices] == [[("switch.tv_power", {"state": True})]] * 3
    assert code == ExitCode.OK, err
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("cmdctl drain: 3 commands on 3 devices in ")
    assert lines[0].endswith(": 3 confirmed")
    assert "\x1b" not in err  # not a terminal: no control codes


async def test_drain_with_nothing_to_do_prints_nothing_even_without_an_inventory(
    tmp_path: Path,
) -> None:
    env = cli_env(tmp_path / "journal", tmp_path / "missing.yml")
    code, out, err = await acmdctl("drain", env=env)
    assert (code, out, err) == (ExitCode.OK, "", "")


async def test_unreachable_device_is_named_with_its_cause_and_exit_4(tmp_path: Path) -> None:
    async with Fleet(tvs(2)) as fleet:
        journal, env = setup(tmp_path, fleet)
        await fleet.devices[1].set_offline(True)
        entries = queue(journal, powers(fleet))
        code, out, err = await acmdctl("drain", "--json", env=env, timeout=60)
    assert code == ExitCode.UNREACHABLE, err
    result = json.loads(out)
    assert result["exit_code"] == 4
    assert result["totals"]["confirmed"] == 1 and result["totals"]["unreachable"] == 1
    by_device = {d["device"]: d for d in result["devices"]}
    assert by_device["bar-tv-2"]["retried"] >= 1
    failing = [line for line in err.splitlines() if line.startswith("bar-tv-2:")]
    assert len(failing) == 1 and "connection refused" in failing[0]
    ledger = journal.ledger()
    assert ledger.get(entries[1].id).state.value == "pending"
    assert ledger.get(entries[0].id).state.value == "done"


async def test_work_that_expired_unrun_exits_1_and_quiet_cron_still_hears_of_it(
    tmp_path: Path,
) -> None:
    async with Fleet(tvs(1)) as fleet:
        journal, env = setup(tmp_path, fleet)
        queue(journal, powers(fleet, expires=time.time() - 1))
        code, out, err = await acmdctl("drain", "--quiet", env=env)
        assert received(fleet.devices[0]) == []
    assert code == ExitCode.FAILED, err
    assert out == ""
    assert err == "bar-tv-1: switch.tv_power: expired before it could run [1 expired]\n"


async def test_queue_retry_runs_entries_in_backoff_now_once_the_device_is_back(
    tmp_path: Path,
) -> None:
    async with Fleet(tvs(1)) as fleet:
        journal, env = setup(tmp_path, fleet)
        device = fleet.devices[0]
        await device.set_offline(True)
        [entry] = queue(journal, powers(fleet))
        code, _, err = await acmdctl("drain", env=env, timeout=60)
        assert code == ExitCode.UNREACHABLE, err
        backed_off = journal.ledger().get(entry.id)
        assert backed_off.state.value == "pending" and backed_off.not_before > time.time()
        await device.set_offline(False)
        # Back, but its entry waits out the backoff: a drain has nothing due.
        assert await acmdctl("drain", env=env) == (ExitCode.OK, "", "")
        code, out, err = await acmdctl("queue", "retry", "--device", "bar-tv-1", env=env)
        assert code == ExitCode.OK, err
        assert out.splitlines()[0] == "requeued 1 entry:"
        assert out.splitlines()[1].startswith(f"  {entry.id}  bar-tv-1  switch.tv_power: ")
        again = await acmdctl("queue", "retry", entry.id, env=env)  # due now: nothing to do
        assert again[0] == ExitCode.FAILED
        assert "is pending and due now; the next drain runs it" in again[2]
        code, _, err = await acmdctl("drain", env=env)
        assert code == ExitCode.OK, err
        assert received(device) == [("switch.tv_power", {"state": True})]
    after = journal.ledger().get(entry.id)
    assert after.state.value == "done" and after.attempts == backed_off.attempts + 1


async def test_bad_arguments_are_input_errors(tmp_path: Path) -> None:
    env = cli_env(tmp_path / "journal", tmp_path / "missing.yml")
    code, _, err = await acmdctl("drain", "--max-time", "soon", env=env)
    assert code == ExitCode.INPUT
    assert "--max-time" in err and "soon" in err


async def test_unknown_limit_pattern_is_an_input_error(tmp_path: Path) -> None:
    async with Fleet(tvs(1)) as fleet:
        _, env = setup(tmp_path, fleet)
        code, _, err = await acmdctl("drain", "--limit", "patio", env=env)
    assert code == ExitCode.INPUT
    assert "patio" in err


async def test_limit_and_batch_restrict_the_drain(tmp_path: Path) -> None:
    async with Fleet(tvs(2)) as fleet:
        journal, env = setup(tmp_path, fleet)
        first = queue(journal, powers(fleet, batch="B1"))
        second = queue(journal, powers(fleet, batch="B2"))
        code, _, err = await acmdctl("drain", "--limit", "bar-tv-1", "--batch", "B2", env=env)
        assert code == ExitCode.OK, err
        assert received(fleet.devices[1]) == []
    ledger = journal.ledger()
    assert ledger.get(second[0].id).state.value == "done"
    assert {ledger.get(e.id).state.value for e in (*first, second[1])} == {"pending"}


async def test_two_drains_started_together_never_run_the_same_entry(tmp_path: Path) -> None:
    async with Fleet(tvs(4, latency=0.6)) as fleet:
        journal, env = setup(tmp_path, fleet)
        entries = queue(
            journal,
            [make_entry(d.name, "number", "volume", {"value": float(v)})
             for v in range(20) for d in fleet.devices],
        )
        together = await asyncio.gather(
            acmdctl("drain", env=env, timeout=60), acmdctl("drain", env=env, timeout=60)
        )
        # Whichever got the lock ran everything; the other was busy (or came after it).
        assert sorted(code for code, _, _ in together) in (
            [ExitCode.OK, ExitCode.BUSY], [ExitCode.OK, ExitCode.OK]
        ), together
        assert [len(received(d)) for d in fleet.devices] == [20] * 4  # each command once
        assert {journal.ledger().state(e.id).value for e in entries} == {"done"}
        # And deterministically: while a drain holds the lock, another exits busy, quietly.
        more = queue(journal, powers(fleet))
        with journal.try_drain_lock():
            code, out, err = await acmdctl("drain", env=env)
        assert (code, out, err) == (ExitCode.BUSY, "", "")
        code, out, err = await acmdctl("drain", "--json", env=env)
        assert code == ExitCode.OK
        assert [len(received(d)) for d in fleet.devices] == [21] * 4
        assert {journal.ledger().state(e.id).value for e in more} == {"done"}


async def test_max_time_is_honoured(tmp_path: Path) -> None:
    # 12 devices, 2 at a time, ~0.6 s each: far more than the 1.5 s allowed.
    async with Fleet(tvs(12, latency=0.15)) as fleet:
        journal, env = setup(tmp_path, fleet)
        entries = queue(journal, powers(fleet))
        began = time.monotonic()
        code, out, err = await acmdctl(
            "drain", "--max-time", "1.5s", "--concurrency", "2", "--json", env=env, timeout=60
        )
        elapsed = time.monotonic() - began
    assert code == ExitCode.OK, err
    result = json.loads(out)
    # Work stopped near the limit; only the two devices in flight were let finish (~0.6 s).
    assert result["seconds"] < 1.5 + 1.5
    assert elapsed < 20  # the whole process, start-up included, even on a loaded machine
    assert result["timed_out"] is True
    assert result["left"] > 0
    states = [journal.ledger().state(e.id).value for e in entries]
    assert "running" not in states
    assert states.count("done") == result["totals"]["confirmed"]
    assert states.count("pending") == result["left"] == result["totals"]["skipped"]
    assert "out of time" in err


async def test_sigterm_stops_taking_work_records_everything_and_releases_the_lock(
    tmp_path: Path,
) -> None:
    async with Fleet(tvs(12, latency=0.15)) as fleet:
        journal, env = setup(tmp_path, fleet)
        entries = queue(journal, powers(fleet))
        proc = await start_cmdctl("drain", "--concurrency", "2", env=env)
        await until_work_started(journal)
        await asyncio.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 10)
        assert proc.returncode == ExitCode.INTERRUPTED, err
        states = [journal.ledger().state(e.id).value for e in entries]
        assert "running" not in states
        assert 0 < states.count("pending") < len(entries)
        assert "interrupted" in err.decode()
        # The lock is free: the next drain finishes the rest.
        code, _, err2 = await acmdctl("drain", env=env, timeout=60)
        assert code == ExitCode.OK, err2
        assert {journal.ledger().state(e.id).value for e in entries} == {"done"}
        assert all(len(received(d)) == 1 for d in fleet.devices)


async def test_run_picks_up_entries_as_they_are_queued_until_sigterm(tmp_path: Path) -> None:
    async with Fleet(tvs(2)) as fleet:
        journal, env = setup(tmp_path, fleet)
        proc = await start_cmdctl("run", env=env)
        await asyncio.sleep(1.0)
        # While `run` holds the drain lock, a cron drain exits busy.
        code, _, _ = await acmdctl("drain", env=env)
        assert code == ExitCode.BUSY
        entries = queue(journal, powers(fleet))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if {journal.ledger().state(e.id).value for e in entries} == {"done"}:
                break
            await asyncio.sleep(0.1)
        later = queue(journal, [make_entry("bar-tv-1", "switch", "tv_power", {"state": False})])
        while time.monotonic() < deadline:
            if journal.ledger().state(later[0].id).value == "done":
                break
            await asyncio.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        _, err = await asyncio.wait_for(proc.communicate(), 10)
        assert received(fleet.devices[0])[-1] == ("switch.tv_power", {"state": False})
    assert proc.returncode == ExitCode.OK, err
    assert {journal.ledger().state(e.id).value for e in (*entries, *later)} == {"done"}
    assert "cmdctl run: 3 commands" in err.decode()


async def test_run_under_systemd_says_each_batch_and_failure_as_it_happens(
    tmp_path: Path,
) -> None:
    """`run` with stderr on a pipe (journald): plain lines while it runs, not only at the end."""
    async with Fleet(tvs(3)) as fleet:
        journal, env = setup(tmp_path, fleet)
        await fleet.devices[2].set_offline(True)
        proc = await start_cmdctl("run", env=env)

        async def line() -> str:
            return (await asyncio.wait_for(proc.stderr.readline(), 30)).decode()

        try:
            await asyncio.sleep(1.0)  # up, holding the drain lock
            good = queue(journal, powers(fleet)[:2])
            said = [await line()]
            assert said == ["batch B (bulk): 2 commands: 2 confirmed\n"]
            bad = queue(journal, [
                make_entry("bar-tv-1", "switch", "no_such_switch", {"state": True}, batch="C"),
                make_entry("bar-tv-3", "switch", "tv_power", {"state": True}, batch="D"),
            ])
            said = sorted([await line(), await line(), await line(), await line()])
        finally:
            proc.send_signal(signal.SIGTERM)
            _, rest = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == ExitCode.FAILED, rest
    failed, away, batch_c, batch_d = said
    assert failed.startswith("bar-tv-1: switch.no_such_switch: ")
    assert ": failed: no switch 'no_such_switch'" in failed
    assert failed.endswith(f" [{bad[0].id}]\n")
    assert away.startswith("bar-tv-3: unreachable: connection refused")
    assert away.endswith(": 1 command (1 stays queued for retry)\n")
    assert (batch_c, batch_d) == (
        "batch C (bulk): 1 command: 1 failed\n", "batch D (bulk): 1 command: 1 unreachable\n"
    )
    assert {journal.ledger().state(e.id).value for e in good} == {"done"}
    assert "\x1b" not in "".join(said) + rest.decode() and "\r" not in "".join(said)


@pytest.mark.parametrize("what", ["drain", "run"])
async def test_a_corrupt_inventory_is_an_input_error(tmp_path: Path, what: str) -> None:
    inventory = tmp_path / "devices.yml"
    inventory.write_text("devices:\n  bar-tv-1: {port: 6053}\n")  # no host
    journal = Journal(tmp_path / "journal")
    queue(journal, [make_entry("bar-tv-1", "switch", "tv_power", {"state": True})])
    env = cli_env(journal.directory, inventory)
    code, _, err = await acmdctl(what, env=env)
    assert code == ExitCode.INPUT
    assert "devices.yml" in err


async def test_run_refuses_to_start_while_a_drain_holds_the_lock(tmp_path: Path) -> None:
    async with Fleet(tvs(1)) as fleet:
        journal, env = setup(tmp_path, fleet)
        with journal.try_drain_lock():
            code, out, err = await acmdctl("run", env=env)
    assert code == ExitCode.BUSY
    assert out == ""
    assert err.startswith("cmdctl: another drain is already running")


async def test_on_a_terminal_drain_shows_progress_and_the_recap_table(tmp_path: Path) -> None:
    import os
    import pty

    async with Fleet(tvs(3)) as fleet:
        journal, env = setup(tmp_path, fleet)
        await fleet.devices[2].set_offline(True)
        queue(journal, powers(fleet))
        controller, terminal = pty.openpty()
        proc = await asyncio.create_subprocess_exec(
            *cmdctl_argv("drain"), env=dict(env, COLUMNS="150", TERM="xterm"),
            stdin=asyncio.subprocess.DEVNULL, stdout=terminal, stderr=terminal,
        )
        os.close(terminal)
        chunks: list[bytes] = []

        def read() -> None:
            while True:
                try:
                    data = os.read(controller, 65536)
                except OSError:  # the child closed the terminal
                    return
                if not data:
                    return
                chunks.append(data)

        await asyncio.wait_for(asyncio.gather(proc.wait(), asyncio.to_thread(read)), 60)
        os.close(controller)
    screen = b"".join(chunks).decode(errors="replace")
    assert proc.returncode == ExitCode.UNREACHABLE
    assert "━" in screen  # progress bars
    for column in ("device", "confirmed", "unreachable", "retried", "last error"):
        assert column in screen
    assert "bar-tv-3: connection refused" in screen
    assert "cmdctl drain: 3 commands on 3 devices" in screen
