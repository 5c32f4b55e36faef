"""Read + fold + status figures of a large journal, timed as a fresh process.

    python bench/journal_status.py [--events 1000000] [--small 10000] [--keep DIR]

Builds a realistic journal in a temp dir through `Journal.append` (40 % queued in bulk batches
of 10,000 across many devices; then drain-like appends of started + done pairs, some failures,
a few retries and cancellations; the rest stays pending), then runs a fresh `python -c` that
reads it, folds it and computes what `cmdctl status` shows. Targets: < 3 s for 1,000,000
events, < 0.3 s for 10,000 (whole process wall time). The first (cold) run has no snapshot, reads
everything and writes one; the figure checked against the target is the best warm run, which
is what every later `status` pays (readers keep the snapshot within a few MB of the end).
"""

from __future__ import annotations

import argparse
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from cmdctl.core.ids import IdFactory
from cmdctl.core.model import Command, Entry, Priority
from cmdctl.journal import events
from cmdctl.journal.store import Journal

# What `cmdctl status` computes (`summary.status`, as `cmdctl.api` calls it), without the CLI's
# imports and table: stuck entries are counted from their last `started` line, not decoded.
STATUS_SCRIPT = """
import sys, time
from pathlib import Path
from cmdctl.journal.store import Journal
from cmdctl.journal.summary import status
scan, ledger = Journal(Path(sys.argv[1])).load()
st = status(ledger, now=time.time(), damaged_lines=len(scan.damaged))
print(scan.committed, len(ledger), sorted((s.value, n) for s, n in st.counts.items()),
      len(st.batches), len(st.stuck), st.running, st.oldest_pending, st.next_due,
      len(scan.damaged))
"""

COMMANDS = [
    ("power on", Command("switch", "tv_power", {"state": True})),
    ("input", Command("select", "input", {"option": "HDMI 1"})),
    ("volume", Command("number", "volume", {"value": 30.0})),
    ("channel", Command("action", "send_tv_command", {"data": {"box": 1, "channel": "206"}})),
]


def build(directory: Path, total: int, seed: int = 7) -> int:
    """Append about `total` events to a journal in `directory`; returns the count written."""
    rng = random.Random(seed)
    ids = IdFactory(randbits=rng.getrandbits)
    journal = Journal(directory)
    queued_n = int(total * 0.4)
    bulk = min(10_000, max(1, queued_n // 4))
    now = time.time() - 86_400.0
    written = 0
    entries: list[Entry] = []
    while len(entries) < queued_n:
        batch = ids.new()
        size = min(bulk, queued_n - len(entries))
        new = []
        for i in range(size):
            step, cmd = COMMANDS[i % len(COMMANDS)]
            new.append(
                Entry(
                    id=ids.new(),
                    batch=batch,
                    device=f"tv-{rng.randrange(2000):04d}",
                    command=cmd,
                    priority=rng.choice(list(Priority)),
                    created=now,
                    not_before=now + rng.choice((0.0, 600.0, 90_000.0)),
                    expires=None,
                    idempotent=True,
                    verify=True,
                    max_attempts=5,
                    who="alice@bar",
                    origin="bulk",
                    step=step,
                    playbook="Game night",
                )
            )
        journal.append([events.queued(e) for e in new])
        written += len(new)
        entries.extend(new)
        now += 60.0
    # Drains: started + outcome pairs, appended 500 events at a time.
    rest = total - written
    finishing = entries[: rest // 2]
    chunk: list[events.Event] = []
    for k, entry in enumerate(finishing):
        ts = now + k * 0.01
        chunk.append(events.started(entry.id, ts, attempt=1, run="run-1"))
        roll = rng.random()
        if roll < 0.9:
            chunk.append(events.done(entry.id, ts + 0.2, outcome="confirmed", duration=0.2))
        elif roll < 0.97:
            chunk.append(events.failed(entry.id, ts + 5, error="refused", kind="unreachable"))
        elif roll < 0.99:
            chunk.append(events.cancelled(entry.id, ts + 1, who="bob@bar", reason="changed plan"))
        # else: left running (stuck)
        if len(chunk) >= 500:
            journal.append(chunk)
            written += len(chunk)
            chunk = []
    if chunk:
        journal.append(chunk)
        written += len(chunk)
    return written


def time_status(directory: Path, runs: int = 3) -> tuple[float, float, str]:
    """Wall time of a fresh process reading the journal: cold (no snapshot), best warm."""
    times = []
    out = ""
    (directory / "journal.snapshot").unlink(missing_ok=True)
    for _ in range(runs + 1):
        start = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", STATUS_SCRIPT, str(directory)],
            capture_output=True,
            text=True,
            check=True,
        )
        times.append(time.perf_counter() - start)
        out = done.stdout.strip()
    return times[0], min(times[1:]), out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--keep", type=Path, help="build the journals here and keep them")
    args = parser.parse_args()
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        base = [sys.executable, "-c", "import cmdctl.journal.store"]
        start = time.perf_counter()
        subprocess.run(base, check=True)
        print(f"baseline: import store {time.perf_counter() - start:.3f} s")
        for total, limit in ((args.small, 0.3), (args.events, 3.0)):
            directory = root / f"journal-{total}"
            start = time.perf_counter()
            written = build(directory, total)
            size = (directory / "journal.jsonl").stat().st_size
            print(
                f"built {written:,} events ({size / 1e6:.1f} MB) "
                f"in {time.perf_counter() - start:.1f} s"
            )
            cold, warm, out = time_status(directory)
            verdict = "OK" if warm < limit else "OVER TARGET"
            ok = ok and warm < limit
            print(
                f"status of {written:,} events: {warm:.3f} s with the snapshot "
                f"(target < {limit} s) {verdict}; cold (no snapshot, writes it) {cold:.3f} s"
            )
            print(f"  {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
