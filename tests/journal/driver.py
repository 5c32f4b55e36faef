"""Subprocess driver for the journal crash and concurrency tests.

driver.py append-loop DIR SIZE          append batches of SIZE forever; print each batch id
                                        once its append returned (= accepted)
driver.py append-n DIR N BATCHES GO     wait for file GO, append N events in BATCHES appends
driver.py read-loop DIR STOP SIZE       read + fold until file STOP exists; fail on any
                                        damage or any batch not of exactly SIZE entries
driver.py kill-each TEMPLATE ROOT NOW KEEP AKEEP
                                        for N = 1, 2, ...: copy TEMPLATE to ROOT/N, fork a child
                                        that compacts it and SIGKILLs itself at its Nth write,
                                        fsync, rename, unlink, truncate, mkdir or file creation
                                        (a write is cut in half first); print "N killed", until
                                        a child finishes: print "N finished"
"""

from __future__ import annotations

import os
import shutil
import signal
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


def _kill_at(n: int) -> None:
    """SIGKILL this process at its `n`th call that changes the disk (see the module doc)."""
    count = [0]

    def hit() -> bool:
        count[0] += 1
        return count[0] == n

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    def wrap(name: str) -> None:
        real = getattr(os, name)

        def call(*args: object, **kwargs: object) -> object:
            if name == "open" and not (int(args[1]) & os.O_CREAT):  # type: ignore[call-overload]
                return real(*args, **kwargs)
            if hit():
                if name == "write" and len(args[1]) > 1:  # type: ignore[arg-type]
                    data = args[1]
                    real(args[0], data[: len(data) // 2])  # type: ignore[index]
                die()
            return real(*args, **kwargs)

        setattr(os, name, call)

    for name in ("write", "fsync", "replace", "rename", "unlink", "ftruncate", "mkdir", "open"):
        wrap(name)


def kill_each(template: Path, root: Path, now: float, keep: float, archive_keep: float) -> None:
    n = 0
    while True:
        n += 1
        target = root / str(n)
        shutil.copytree(template, target)
        sys.stdout.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                _kill_at(n)
                Journal(target).compact(keep, now, archive_keep)
                code = 0
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        if os.WIFSIGNALED(status):
            print(f"{n} killed", flush=True)
            continue
        print(f"{n} {'finished' if os.WEXITSTATUS(status) == 0 else 'failed'}", flush=True)
        return


def main(argv: list[str]) -> int:
    mode, directory = argv[0], Path(argv[1])
    if mode == "append-loop":
        append_loop(directory, int(argv[2]))
    elif mode == "fork-server":
        fork_server(directory, int(argv[2]))
    elif mode == "append-n":
        append_n(directory, int(argv[2]), int(argv[3]), Path(argv[4]))
    elif mode == "kill-each":
        kill_each(directory, Path(argv[2]), *map(float, argv[3:6]))
    elif mode == "read-loop":
        if len(argv) > 4:
            snapshot.SNAPSHOT_AFTER_BYTES = int(argv[4])
        return read_loop(directory, Path(argv[2]), int(argv[3]))
    else:
        raise SystemExit(f"unknown mode {mode}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
