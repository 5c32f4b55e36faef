"""Drain latency: 50 simulated devices × 1 command, 200 ms simulated latency per message.

The simulator runs in its own process; this times the whole `cmdctl drain` process (start-up,
journal, 50 connections in parallel, command, barrier, verification, exit). Target: < 1.5 s.
(The queue design cmdctl replaces quoted 30–60 s for 50 devices with 3 workers.)

    python bench/drain_latency.py [--devices 50] [--latency 0.2] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "drain"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from drain_throughput import entries, fresh_journal, inventory_hosts
from simproc import cmdctl_argv, installed_env, running


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    times = []
    cpu = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with running(root, count=args.devices, latency=args.latency) as inventory:
            names = sorted(inventory_hosts(inventory))
            base = installed_env(dict(os.environ, CMDCTL_INVENTORY=str(inventory)),
                                 root / "pycache")
            for run in range(args.runs):
                journal = fresh_journal(root, f"j{run}", entries(names, 1))
                env = dict(base, CMDCTL_HOME=str(journal.directory))
                before = children_cpu()
                began = time.perf_counter()
                proc = subprocess.run(cmdctl_argv("drain"), env=env,
                                      capture_output=True, text=True, check=False)
                times.append(time.perf_counter() - began)
                cpu.append(children_cpu() - before)
                if proc.returncode != 0:
                    raise SystemExit(f"drain exited {proc.returncode}: {proc.stderr[-2000:]}")
                counts = {k.value: v for k, v in journal.ledger().counts().items()}
                assert counts == {"done": args.devices}, counts
    print(f"{args.devices} devices × 1 command, {args.latency * 1000:.0f} ms per message: "
          f"`cmdctl drain` whole process median {statistics.median(times):.2f} s, "
          f"min {min(times):.2f} s, max {max(times):.2f} s (target < 1.5 s); "
          f"CPU (user+sys) median {statistics.median(cpu):.2f} s; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


if __name__ == "__main__":
    main()
