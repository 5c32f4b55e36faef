"""Journal append throughput, in-process and batched, against persist-queue and SQLite WAL.

    python bench/journal_append.py [--records 10000] [--rounds 5]

Target: >= 150,000 records/s for `Journal.append` of a 10,000-event batch (one write, one
fsync). The same records then go through persist-queue's SQLiteQueue (auto_commit: one
transaction and fsync per item, as it does by default) and plain sqlite3 in WAL mode with
synchronous=FULL, 1,000 rows per transaction.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from cmdctl.core.ids import new_id
from cmdctl.core.model import Command, Entry, Priority
from cmdctl.journal import events
from cmdctl.journal.store import Journal

TARGET_PER_S = 150_000


def make_entries(n: int, now: float) -> list[Entry]:
    """A bulk-like batch: one batch id, 4 steps over n/4 devices."""
    batch = new_id()
    steps = [
        ("power on", Command("switch", "tv_power", {"state": True})),
        ("input", Command("select", "input", {"option": "HDMI 1"})),
        ("volume", Command("number", "volume", {"value": 30.0})),
        ("channel", Command("action", "send_tv_command", {"data": {"box": 1, "channel": "206"}})),
    ]
    out = []
    for i in range(n):
        step, cmd = steps[i % len(steps)]
        out.append(
            Entry(
                id=new_id(),
                batch=batch,
                device=f"bar-tv-{i // len(steps):05d}",
                command=cmd,
                priority=Priority.NORMAL,
                created=now,
                not_before=now + 600.0,
                expires=now + 7800.0,
                idempotent=True,
                verify=True,
                max_attempts=5,
                who="alice@bar-host",
                origin="bulk",
                step=step,
                playbook="Game night",
            )
        )
    return out


def bench_journal(directory: Path, entries: list[Entry], rounds: int) -> tuple[float, float]:
    """(best, median) seconds of append(queued events), events built beforehand."""
    journal = Journal(directory)
    journal.append([events.queued(entries[0])])  # the file exists: no creation cost measured
    times = []
    for _ in range(rounds):
        batch = [events.queued(e) for e in entries]
        start = time.perf_counter()
        journal.append(batch)
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def bench_journal_with_build(directory: Path, entries: list[Entry]) -> float:
    """Seconds for building the events from entries *and* appending them."""
    journal = Journal(directory)
    start = time.perf_counter()
    journal.append([events.queued(e) for e in entries])
    return time.perf_counter() - start


def bench_persistqueue(directory: Path, lines: list[str]) -> float:
    """Seconds to put every line into persist-queue's SQLiteQueue (a commit per item)."""
    import persistqueue  # the `bench` extra

    queue = persistqueue.SQLiteQueue(str(directory), auto_commit=True, multithreading=False)
    start = time.perf_counter()
    for line in lines:
        queue.put(line)
    return time.perf_counter() - start


def bench_sqlite(path: Path, lines: list[str], per_tx: int = 1000) -> float:
    """Seconds to insert every line into SQLite WAL, synchronous=FULL, `per_tx` rows a commit."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, line TEXT NOT NULL)")
    start = time.perf_counter()
    for i in range(0, len(lines), per_tx):
        db.execute("BEGIN")
        db.executemany(
            "INSERT INTO events (line) VALUES (?)", [(x,) for x in lines[i : i + per_tx]]
        )
        db.execute("COMMIT")
    elapsed = time.perf_counter() - start
    db.close()
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    n = args.records
    entries = make_entries(n, time.time())
    lines = events.encode_many([events.queued(e) for e in entries])
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        best, median = bench_journal(root / "journal", entries, args.rounds)
        built = bench_journal_with_build(root / "journal2", entries)
        pq = bench_persistqueue(root / "pq", lines)
        lite = bench_sqlite(root / "lite.db", lines)
    rate = n / best
    print(f"records per run: {n:,} (one append, one fsync)")
    print(
        f"journal append         best {best * 1000:7.1f} ms  {rate:10,.0f}/s"
        f"  (median {n / median:,.0f}/s)"
    )
    print(f"journal build+append        {built * 1000:7.1f} ms  {n / built:10,.0f}/s")
    print(f"persist-queue SQLiteQueue   {pq * 1000:7.1f} ms  {n / pq:10,.0f}/s")
    print(f"sqlite3 WAL FULL 1000/tx    {lite * 1000:7.1f} ms  {n / lite:10,.0f}/s")
    print(f"ratio journal / persist-queue: {pq / best:6.1f}x")
    print(f"ratio journal / sqlite3 WAL:   {lite / best:6.2f}x")
    verdict = "OK" if rate >= TARGET_PER_S else "BELOW TARGET"
    print(f"target >= {TARGET_PER_S:,}/s: {verdict}")
    return 0 if rate >= TARGET_PER_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
