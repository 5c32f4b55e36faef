"""`cmdctl journal verify` of 1,000,000 events: whole process < 15 s and < 300 MB (issue 17).

The journal is ten `bulk`-sized appends of 100,000 `queued` events: a million pending
entries, the most entries a million events can hold. A child process writes it (Linux carries
a parent's RSS high-water mark into a child's `ru_maxrss`, so this script stays small); the
figure is the `cmdctl journal verify` process, its wall time and its peak RSS from wait4().
`Journal.verify()` timed inside a fresh interpreter is shown beside it.

    python bench/journal_verify.py [--events 1000000] [--batch 100000] [--keep DIR]

`build_pending` and `whole_process` are shared with bench/queue_ls.py.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "drain"))

from simproc import cmdctl_argv, installed_env

IN_PROCESS = """
import resource, sys, time
from pathlib import Path
from cmdctl.journal.store import Journal
began = time.perf_counter()
report = Journal(Path(sys.argv[1])).verify()
elapsed = time.perf_counter() - began
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(f"{elapsed:.3f} {peak:.1f} {report.ok} {report.events}")
"""


@dataclass(frozen=True)
class Measured:
    """One whole process: wall time, peak RSS, exit code and what it printed."""

    seconds: float
    rss_mb: float
    code: int
    out: str


def build_pending(directory: Path, events: int, batch: int) -> None:
    """Append `events` `queued` events in appends of `batch` (a child process, to stay small)."""
    subprocess.run(
        [
            sys.executable,
            __file__,
            "--write",
            str(directory),
            "--events",
            str(events),
            "--batch",
            str(batch),
        ],
        check=True,
    )


def _write(directory: Path, events: int, batch: int) -> None:
    from cmdctl.core.ids import IdFactory
    from cmdctl.core.model import Command, Entry, Priority
    from cmdctl.journal import events as ev
    from cmdctl.journal.store import Journal

    ids = IdFactory()
    journal = Journal(directory)
    now = time.time()
    commands = [Command("number", "volume", {"value": float(v)}) for v in range(0, 100, 10)]
    written = 0
    while written < events:
        batch_id = ids.new()
        size = min(batch, events - written)
        journal.append(
            [
                ev.queued(
                    Entry(
                        id=ids.new(),
                        batch=batch_id,
                        device=f"tv-{i % 1000:04d}",
                        command=commands[(i // 1000) % len(commands)],
                        priority=Priority.NORMAL,
                        created=now,
                        not_before=now,
                        expires=None,
                        idempotent=True,
                        verify=True,
                        max_attempts=5,
                        who="bench@host",
                        origin="bulk",
                        step=f"volume {(i // 1000) % len(commands)}",
                        playbook="bench",
                    )
                )
                for i in range(size)
            ]
        )
        written += size


def whole_process(argv: list[str], env: dict[str, str]) -> Measured:
    """Run `argv` to its end: wall seconds, its own peak RSS (wait4), exit code, stdout."""
    with tempfile.TemporaryFile() as out:
        began = time.perf_counter()
        proc = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.perf_counter() - began
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        text = out.read().decode(errors="replace")
    return Measured(elapsed, usage.ru_maxrss / 1024, proc.returncode, text)  # Linux: KiB


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=100_000)
    parser.add_argument("--keep", type=Path, help="build the journal here (reused if there)")
    parser.add_argument("--write", type=Path, help=argparse.SUPPRESS)  # child: build, exit
    args = parser.parse_args()
    if args.write:
        _write(args.write, args.events, args.batch)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        directory = args.keep or Path(tmp) / "journal"
        if not (directory / "journal.jsonl").exists():
            began = time.perf_counter()
            build_pending(directory, args.events, args.batch)
            print(f"(built {args.events:,} queued events in {time.perf_counter() - began:.1f} s)")
        size = (directory / "journal.jsonl").stat().st_size
        env = installed_env(
            dict(os.environ, CMDCTL_HOME=str(directory), NO_COLOR="1"), Path(tmp) / "pycache"
        )
        run = whole_process(cmdctl_argv("journal", "verify"), env)
        if run.code != 0 or not run.out.startswith("ok: "):
            raise SystemExit(f"journal verify exited {run.code}: {run.out[-2000:]}")
        inside = subprocess.run(
            [sys.executable, "-c", IN_PROCESS, str(directory)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
    ok = run.seconds < 15.0 and run.rss_mb < 300.0
    print(
        f"`cmdctl journal verify` of {args.events:,} events ({size / 1e6:.0f} MB), whole "
        f"process: {run.seconds:.2f} s, peak RSS {run.rss_mb:.0f} MB "
        f"(target < 15 s and < 300 MB) {'OK' if ok else 'OVER TARGET'}"
    )
    print(f"  Journal.verify() in process: {float(inside[0]):.2f} s, peak RSS {inside[1]} MB")
    print(f"  {run.out.strip()}")
    print(f"  load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
