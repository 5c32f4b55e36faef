"""Real processes: SIGKILL during appends, and eight writers racing a reader."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from cmdctl.journal.store import Journal

DRIVER = Path(__file__).with_name("driver.py")


def _driver(*args: object) -> list[str]:
    return [sys.executable, str(DRIVER), *map(str, args)]


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_sigkill_at_random_moments_leaves_every_batch_whole_or_absent(tmp_path: Path) -> None:
    rng = random.Random(20261123)
    directory = tmp_path / "j"
    size = 250
    accepted: set[str] = set()
    # A fork server imports cmdctl once; each child appends batches until it is SIGKILLed.
    server = subprocess.Popen(
        _driver("fork-server", directory, size),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert server.stdin is not None and server.stdout is not None

    def until(prefix: str) -> str:
        assert server.stdout is not None
        for line in server.stdout:
            if line.startswith(prefix):
                return line
            accepted.add(line.strip())  # a batch id a child acknowledged
        raise AssertionError("fork server died")

    try:
        # 30 kills at random moments; on a machine so busy that no child got a batch through
        # by then, more with longer lives (up to 30), so that the checks below are never empty.
        for n in range(60):
            if n >= 30 and accepted:
                break
            server.stdin.write("spawn\n")
            server.stdin.flush()
            pid = int(until("pid ").split()[1])
            time.sleep(rng.uniform(0.0, 0.1) if n < 30 else rng.uniform(0.1, 0.5))
            os.kill(pid, signal.SIGKILL)
            server.stdin.write(f"reap {pid}\n")
            server.stdin.flush()
            until("reaped")
    finally:
        out, _ = server.communicate(timeout=30)
    accepted.update(out.split())
    assert accepted

    # Before any repair the reader sees only committed appends.
    scan, ledger = Journal(directory).load()
    assert not scan.damaged
    progress = ledger.batches()
    assert all(p.total == size for p in progress.values())
    assert accepted <= set(progress)  # acknowledged means durable

    # The next writer quarantines whatever torn tail the last kill left, then lands intact.
    subprocess.run(_driver("append-n", directory, size, 1, directory), check=True, timeout=30)
    report = Journal(directory).verify()
    assert report.ok, report
    assert report.torn == 0 and report.uncommitted == 0
    scan, ledger = Journal(directory).load()
    counts = Counter(e.batch for e in ledger.entries())
    assert set(counts.values()) == {size}
    assert len(counts) == len(progress) + 1
    print(f"{len(accepted)} acknowledged batches, {len(report.quarantined)} torn tails quarantined")


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_eight_writers_and_a_reader(tmp_path: Path) -> None:
    directory = tmp_path / "j"
    go, stop = tmp_path / "go", tmp_path / "stop"
    Journal(directory).repair()  # creates the directory; nothing to repair
    # The reader also refreshes the snapshot every 64 KiB, racing the writers with it.
    reader = subprocess.Popen(
        _driver("read-loop", directory, stop, 250, 65536), stdout=subprocess.PIPE, text=True
    )
    writers = [subprocess.Popen(_driver("append-n", directory, 1000, 4, go)) for _ in range(8)]
    time.sleep(0.5)  # let every process get past its imports
    go.touch()
    for w in writers:
        assert w.wait(timeout=60) == 0
    stop.touch()
    out, _ = reader.communicate(timeout=60)
    assert reader.returncode == 0, out
    assert "reads=" in out and "snapshot=True" in out

    scan = Journal(directory).read()
    assert not scan.damaged and scan.torn == 0 and scan.uncommitted == 0
    ids = Counter(e.id for e in scan.events())
    assert len(ids) == 8000
    assert set(ids.values()) == {1}
    assert Journal(directory).verify().ok
    _, ledger = Journal(directory).load()  # from the reader's last snapshot plus the tail
    assert sorted(ledger.ids()) == sorted(ids)
