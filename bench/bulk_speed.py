"""`cmdctl bulk` of 100,000 commands, whole process: < 1.2 s and < 150 MB peak RSS (issue 17).

An inventory of 1,000 devices and a playbook of 100 steps (bench/cli_speed.py writes both);
no device runs: `bulk` only queues. Each run is a fresh process into a fresh journal; the
time is the median of the runs, the peak RSS (wait4 of each process) the largest.

    python bench/bulk_speed.py [--devices 1000] [--steps 100] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "drain"))

from cli_speed import write_fleet
from journal_verify import whole_process
from simproc import cmdctl_argv, installed_env


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    total = args.devices * args.steps
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        inventory, playbook = write_fleet(root, devices=args.devices, steps=args.steps)
        base = dict(os.environ, CMDCTL_INVENTORY=str(inventory), NO_COLOR="1")
        base = installed_env(base, root / "pycache")
        runs = []
        for n in range(args.runs):
            env = dict(base, CMDCTL_HOME=str(root / f"journal-{n}"))
            run = whole_process(cmdctl_argv("bulk", str(playbook)), env)
            if run.code != 0 or f"{total:,} commands" not in run.out:
                raise SystemExit(f"bulk exited {run.code}: {run.out[-2000:]}")
            runs.append(run)
    seconds = statistics.median(r.seconds for r in runs)
    rss = max(r.rss_mb for r in runs)
    ok = seconds < 1.2 and rss < 150.0
    print(
        f"`cmdctl bulk` of {total:,} commands ({args.devices} devices x {args.steps} steps), "
        f"whole process: median {seconds:.3f} s, peak RSS {rss:.0f} MB over {args.runs} runs "
        f"(target < 1.2 s and < 150 MB) {'OK' if ok else 'OVER TARGET'}"
    )
    print(f"  runs: {', '.join(f'{r.seconds:.3f} s / {r.rss_mb:.0f} MB' for r in runs)}")
    print(f"  load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
