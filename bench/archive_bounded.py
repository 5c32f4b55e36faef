"""The journal directory stays bounded on disk however many times it is compacted.

    python bench/archive_bounded.py [--compactions 1000] [--reference 100] [--per-day 50]
                                    [--archive-keep 7d]

A synthetic clock moves one day per compaction; each day appends `--per-day` entries that
finish that day, then `Journal.compact(keep=1d, archive_keep=...)` runs, every write fsynced
as in production. Prints the size of the whole journal directory (journal, archive day files,
everything) after `--reference` compactions and after the last, and how many day files there are.
Target: the size after 1,000 compactions is under 2x the size after 100 (bounded, not growing).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cmdctl.core.ids import new_id
from cmdctl.core.model import Command, Entry, Priority
from cmdctl.core.timespec import parse_duration
from cmdctl.journal import events as ev
from cmdctl.journal.store import Journal

DAY = 86400.0
T0 = 1_796_472_000.0  # 2026-12-05 12:00 UTC
COMMAND = Command("switch", "tv_power", {"state": True})


def day_of_work(at: float, n: int) -> list[ev.Event]:
    """`n` entries queued and done within the day before `at`."""
    out: list[ev.Event] = []
    batch = new_id()
    for i in range(n):
        done_at = at - DAY * (i + 1) / (n + 1)
        entry = Entry(
            id=new_id(),
            batch=batch,
            device=f"bar-tv-{i % 20}",
            command=COMMAND,
            priority=Priority.NORMAL,
            created=done_at - 5,
            not_before=done_at - 5,
            expires=None,
            idempotent=True,
            verify=True,
            max_attempts=3,
            who="bench@host",
            origin="bulk",
            step="power on",
            playbook="game night",
        )
        out += [
            ev.queued(entry),
            ev.started(entry.id, done_at - 1, attempt=1, run="r"),
            ev.done(entry.id, done_at, outcome="confirmed", duration=0.3),
        ]
    return out


def usage(directory: Path) -> tuple[int, int]:
    """Bytes of every file under `directory`, and the archive's day files."""
    files = [p for p in directory.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), len(list((directory / "archive").glob("*")))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--compactions", type=int, default=1000)
    parser.add_argument("--reference", type=int, default=100)
    parser.add_argument("--per-day", type=int, default=50)
    parser.add_argument("--archive-keep", default="7d")
    args = parser.parse_args()
    keep = parse_duration(args.archive_keep)
    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal(Path(tmp) / "j")
        began = time.perf_counter()
        at_ref = None
        for day in range(1, args.compactions + 1):
            now = T0 + day * DAY
            journal.append(day_of_work(now, args.per_day))
            journal.compact(DAY, now, keep)
            if day == min(args.reference, args.compactions):
                at_ref = usage(journal.directory)
        seconds = time.perf_counter() - began
        size, files = usage(journal.directory)
    assert at_ref is not None
    n, ref = args.compactions, min(args.reference, args.compactions)
    print(f"{n:,} daily compactions, {args.per_day} entries a day, kept {args.archive_keep}")
    print(f"on disk after {ref:,} compactions: {at_ref[0]:,} bytes, {at_ref[1]} archive files")
    print(f"on disk after {n:,} compactions: {size:,} bytes, {files} archive files")
    print(f"growth after {n:,} vs {ref:,} compactions: {size / at_ref[0]:.2f}x")
    print(f"time: {seconds:.1f} s ({seconds / n * 1000:.1f} ms per append + compaction)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
