"""Peak RSS of `cmdctl drain` over 100,000 queued commands (target < 120 MB, issue 17).

The simulator runs in its own process; the drain's own peak RSS comes from wait4(). The journal
is written by a child process too: Linux carries a parent's RSS high-water mark into a forked
child's `ru_maxrss`, so this script must stay small itself.

    python bench/drain_memory.py [--devices 100] [--per-device 1000]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "drain"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from drain_throughput import entries, fresh_journal, inventory_hosts
from simproc import cmdctl_argv, installed_env, running

from cmdctl.journal.store import Journal


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--per-device", type=int, default=1000)
    parser.add_argument("--write", help=argparse.SUPPRESS)  # child: write the journal and exit
    parser.add_argument("names", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write:
        fresh_journal(Path(args.write).parent, Path(args.write).name,
                      entries(args.names, args.per_device))
        return
    total = args.devices * args.per_device
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with running(root, count=args.devices) as inventory:
            names = sorted(inventory_hosts(inventory))
            subprocess.run(
                [sys.executable, __file__, "--write", str(root / "journal"),
                 "--per-device", str(args.per_device), *names],
                check=True,
            )
            journal = Journal(root / "journal")
            size = journal.path.stat().st_size
            env = dict(os.environ, CMDCTL_HOME=str(journal.directory),
                       CMDCTL_INVENTORY=str(inventory))
            env = installed_env(env, root / "pycache")
            began = time.perf_counter()
            proc = subprocess.Popen(cmdctl_argv("drain"), env=env,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            _, status, usage = os.wait4(proc.pid, 0)
            elapsed = time.perf_counter() - began
            code = os.waitstatus_to_exitcode(status)
            stderr = proc.stderr.read().decode() if proc.stderr else ""
            if code != 0:
                raise SystemExit(f"drain exited {code}: {stderr[-2000:]}")
            counts = {k.value: v for k, v in journal.ledger().counts().items()}
    peak_mb = usage.ru_maxrss / 1024  # Linux reports KiB
    print(f"`cmdctl drain` of {total} queued commands ({size / 1e6:.0f} MB journal): "
          f"peak RSS {peak_mb:.0f} MB (target < 120 MB), {elapsed:.1f} s, "
          f"{total / elapsed:.0f} commands/s; journal after: {counts}")


if __name__ == "__main__":
    main()
