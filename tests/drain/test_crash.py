"""`kill -9` of a real `cmdctl drain` at random moments: nothing lost, stuck or repeated unsafely.

The simulator runs in its own process and records every command it receives to a JSONL file,
so the record survives the drains we kill. Every entry sets `text.channel` to a value of its own,
which lets the record say exactly which entry ran how many times.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from cmdctl.journal.store import Journal
from cmdctl.simulator import read_record

from .conftest import cli_env, cmdctl_argv, make_entry, queue, run_cmdctl
from .simproc import running

SEED = 20261123
KILLS = 6
DEVICES = 20
PER_DEVICE = 100  # 2,000 commands
FINAL = {"done", "unknown", "failed", "cancelled", "expired", "superseded", "skipped"}


def executed(record: Path) -> Counter[str]:
    """How many times each text.channel value reached a device."""
    return Counter(
        r["args"]["value"]
        for r in read_record(record)
        if r["t"] == "command" and r["object_id"] == "channel" and r["accepted"]
    )


def wait_for_work(journal: Journal, proc: subprocess.Popen[bytes], before: int) -> bool:
    """True once the drain appended something (it is past start-up); False if it exited."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        if journal.path.stat().st_size > before:
            return True
        time.sleep(0.01)
    raise AssertionError("the drain never started working")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_kill_9_during_a_2000_command_drain_loses_nothing(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    record = tmp_path / "record.jsonl"
    with running(tmp_path, count=DEVICES, latency=0.01, record=record) as inventory:
        journal = Journal(tmp_path / "journal")
        entries = [
            make_entry(
                f"bar-tv-{d + 1}", "text", "channel", {"value": f"c{n}-{d}"},
                idempotent=n % 10 != 3, max_attempts=5,
            )
            for n in range(PER_DEVICE)
            for d in range(DEVICES)
        ]
        queue(journal, entries)
        env = cli_env(journal.directory, inventory)
        may_repeat: set[str] = set()  # ids in flight at some kill (run, not durably finished)
        kills = 0
        for _ in range(KILLS):
            before = journal.path.stat().st_size
            proc = subprocess.Popen(
                cmdctl_argv("drain", "--concurrency", "4"), env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            if not wait_for_work(journal, proc, before):
                break  # it finished everything before we could kill it
            time.sleep(rng.uniform(0.0, 0.6))
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            if proc.returncode != -signal.SIGKILL:
                break
            kills += 1
            time.sleep(0.2)  # let the devices handle what was already on the wire
            ran = executed(record)
            ledger = journal.ledger()
            for e in entries:
                if ran[e.command.args["value"]] and ledger.state(e.id).value not in FINAL:
                    may_repeat.add(e.id)
        assert kills >= KILLS // 2, "the drains finished too fast to be killed mid-way"

        result = run_cmdctl("drain", env=env, timeout=120)
        assert result.returncode in (0, 1), result.stderr  # 1: some presses are now unknown
        again = run_cmdctl("drain", env=env, timeout=60)
        assert (again.returncode, again.stdout, again.stderr) == (0, "", "")  # nothing left
        ran = executed(record)

    ledger = journal.ledger()
    states = Counter(ledger.state(e.id).value for e in entries)
    assert set(states) <= {"done", "unknown"}, states  # nothing lost, nothing stuck
    for e in entries:
        value = e.command.args["value"]
        state = ledger.state(e.id).value
        if e.idempotent:
            assert state == "done", (e.id, state)
            assert ran[value] >= 1, f"{value} never ran"
            if ran[value] > 1:
                assert e.id in may_repeat, f"{value} ran {ran[value]}x but was not in flight"
        else:
            assert ran[value] <= 1, f"idempotent:false {value} ran {ran[value]} times"
            if state == "done":
                assert ran[value] == 1
            else:
                assert "not safe to repeat" in (ledger.get(e.id).reason or "")
    print(f"{kills} kills; states {dict(states)}; "
          f"{sum(1 for v in ran.values() if v > 1)} idempotent entries ran more than once")
