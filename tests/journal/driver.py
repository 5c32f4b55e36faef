"""Subprocess driver for the journal crash and concurrency tests.

driver.py append-loop DIR SIZE          append batches of SIZE forever; print each batch id
                                        once its append returned (= accepted)
driver.py append-n DIR N BATCHES GO     wait for file GO, append N events in BATCHES appends
driver.py read-loop DIR STOP SIZE       read + fold until file STOP exists; fail on any
                                        damage or any batch not of exactly SIZE entries
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from cmdctl.core.ids import new_id
from cmdctl.core.model import Command, Entry, Priority
from cmdctl.journal import events, snapshot
from cmdctl.journal.store import Journal


def batch_events(size: int, tag: str) -> tuple[str, list[events.Event]]:
    """One batch of `size` queued events."""
    batch = new_id()
    now = time.time()
    cmd = Command("switch", "tv_power", {"state": True})
    out = [
        events.queued(
            Entry(
                id=new_id(),
                batch=batch,
                device=f"{tag}-{i % 37}",
                command=cmd,
                priority=Priority.NORMAL,
                created=now,
                not_before=now,
                expires=None,
                idempotent=True,
                verify=False,
                max_attempts=3,
                who="test@host",
                origin="bulk",
                step=f"step {i}",
                playbook="crash test",
            )
        )
        for i in range(size)
    ]
    return batch, out


def append_loop(directory: Path, size: int) -> None:
    journal = Journal(directory)
    while True:
        batch, evs = batch_events(size, "loop")
        journal.append(evs)
        sys.stdout.write(batch + "\n")
        sys.stdout.flush()


def fork_server(directory: Path, size: int) -> None:
    for command in sys.stdin:
        word, _, arg = command.strip().partition(" ")
        if word == "spawn":
            sys.stdout.flush()
            pid = os.fork()
            if pid == 0:
                try:
                    append_loop(directory, size)
                finally:
                    os._exit(1)
            sys.stdout.write(f"pid {pid}\n")
        elif word == "reap":
            os.waitpid(int(arg), 0)
            sys.stdout.write("reaped\n")
        sys.stdout.flush()


def append_n(directory: Path, n: int, batches: int, go: Path) -> None:
    journal = Journal(directory)
    while not go.exists():
        time.sleep(0.001)
    per = n // batches
    for _ in range(batches):
        journal.append(batch_events(per, f"p{os.getpid()}")[1])


def read_loop(directory: Path, stop: Path, size: int) -> int:
    journal = Journal(directory)
    reads = 0
    while True:
        finished = stop.exists()
        scan, ledger = journal.load()
        if scan.damaged:
            print(f"damage seen: {scan.damaged[:3]}")
            return 1
        for progress in ledger.batches().values():
            if progress.total != size:
                print(f"partial batch seen: {progress.batch} has {progress.total} of {size}")
                return 1
        reads += 1
        if finished:
            break
    snapshots = (directory / "journal.snapshot").exists()
    print(f"reads={reads} entries={len(ledger)} snapshot={snapshots}")
    return 0


def main(argv: list[str]) -> int:
    mode, directory = argv[0], Path(argv[1])
    if mode == "append-loop":
        append_loop(directory, int(argv[2]))
    elif mode == "fork-server":
        fork_server(directory, int(argv[2]))
    elif mode == "append-n":
        append_n(directory, int(argv[2]), int(argv[3]), Path(argv[4]))
    elif mode == "read-loop":
        if len(argv) > 4:
            snapshot.SNAPSHOT_AFTER_BYTES = int(argv[4])
        return read_loop(directory, Path(argv[2]), int(argv[3]))
    else:
        raise SystemExit(f"unknown mode {mode}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
