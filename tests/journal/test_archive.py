"""The archive (`journal.archive`): day files, retention, the old layout, reading, crashes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest

from cmdctl.core.model import Entry
from cmdctl.journal import archive
from cmdctl.journal import events as ev
from cmdctl.journal.archive import View
from cmdctl.journal.events import Event
from cmdctl.journal.framing import frame_lines, reframe
from cmdctl.journal.store import Journal

from .builders import entry

DAY = 86400.0
T0 = datetime(2026, 12, 5, 12, 0, tzinfo=UTC).timestamp()  # noon UTC
DRIVER = Path(__file__).with_name("driver.py")


def finished(at: float, device: str = "tv-1") -> list[Event]:
    """An entry that finished (done) at `at`: its queued and done events."""
    e = entry(device=device, created=at - 60)
    return [ev.queued(e), ev.done(e.id, at, outcome="confirmed", duration=0.1)]


def keys(lines: list[bytes]) -> Counter[tuple[str, str, float]]:
    return Counter((e.type, e.id, e.ts) for e in map(ev.decode, lines))


def on_disk(directory: Path) -> dict[str, int]:
    """Each archive day file and its size."""
    return {p.name: p.stat().st_size for p in sorted((directory / "archive").glob("*.jsonl"))}


def history(journal: Journal, *, since: float | None = None, last: int = 1000) -> list[Entry]:
    """`history --archive` as the library reads it."""
    from cmdctl.journal import summary

    scan, ledger = journal.load()
    rows = summary.history(ledger.entries(), since=since)
    with View.open(journal.directory, scan.file) as view:
        return archive.history(view, ledger, rows, wanted=lambda e: True, since=since, last=last)


def old_layout(directory: Path, evs: list[Event]) -> None:
    """An `archive.jsonl` as cmdctl wrote it before day files: reframed lines, appended."""
    lines = [reframe(line) for line in frame_lines(ev.encode_many(evs))]
    with (directory / "archive.jsonl").open("ab") as f:
        f.write(b"".join(lines))
    os.chmod(directory / "archive.jsonl", 0o600)


def test_entries_go_to_the_file_of_the_utc_day_they_finished(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 23:30 UTC on Dec 4 is already Dec 5 in Kiritimati (UTC+14): the file says Dec 4 anyway.
    monkeypatch.setenv("TZ", "Pacific/Kiritimati")
    time.tzset()
    late = T0 - 12.5 * 3600
    early = T0 - 11.5 * 3600
    try:
        journal.append([*finished(late), *finished(early), *finished(T0 - 2 * DAY)])
        old_umask = os.umask(0)
        try:
            journal.compact(keep_seconds=0.0, now=T0)
        finally:
            os.umask(old_umask)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    folder = journal.directory / "archive"
    assert list(on_disk(journal.directory)) == [
        "2026-12-03.jsonl",
        "2026-12-04.jsonl",
        "2026-12-05.jsonl",
    ]
    assert folder.stat().st_mode & 0o777 == 0o700
    assert {p.stat().st_mode & 0o777 for p in folder.iterdir()} == {0o600}
    # All of an entry's lines are in one file: each folds on its own.
    dec4 = keys((folder / "2026-12-04.jsonl").read_bytes().splitlines(keepends=True))
    assert [t for t, _, ts in dec4] == ["queued", "done"] and max(ts for *_, ts in dec4) == late


def test_retention_removes_only_whole_day_files_older_than_it(journal: Journal) -> None:
    journal.append([*finished(T0 - 10 * DAY), *finished(T0 - 5 * DAY), *finished(T0 - 2 * DAY)])
    journal.compact(keep_seconds=DAY, now=T0)  # no retention given: every day file stays
    assert len(on_disk(journal.directory)) == 3
    # 5 days: Nov 25 ended 9.5 days ago (gone); Nov 30 ended 4.5 days ago (stays, whole).
    report = journal.compact(keep_seconds=DAY, now=T0, archive_keep=5 * DAY)
    assert list(on_disk(journal.directory)) == ["2026-11-30.jsonl", "2026-12-03.jsonl"]
    assert (report.archive_deleted, report.archive_files) == (1, 2)
    assert report.archive_size == sum(on_disk(journal.directory).values())
    # A day file is removed only once its whole day is older than the window.
    journal.compact(keep_seconds=DAY, now=T0 + 0.5 * DAY - 1, archive_keep=5 * DAY)
    assert "2026-11-30.jsonl" in on_disk(journal.directory)
    journal.compact(keep_seconds=DAY, now=T0 + 0.5 * DAY, archive_keep=5 * DAY)
    assert list(on_disk(journal.directory)) == ["2026-12-03.jsonl"]


def test_a_thousand_daily_compactions_stay_bounded_on_disk(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "fsync", lambda fd: None)  # sizes, not durability: 10x faster
    sizes = []
    for day in range(1000):
        now = T0 + day * DAY
        journal.append([*finished(now - 3600), *finished(now - 7200, "tv-2")])
        journal.compact(keep_seconds=DAY, now=now, archive_keep=7 * DAY)
        assert len(on_disk(journal.directory)) <= 8
        sizes.append(sum(p.stat().st_size for p in journal.directory.rglob("*") if p.is_file()))
    assert max(sizes[100:]) < 2 * sizes[99]
    assert len(on_disk(journal.directory)) == 7


def test_the_old_archive_file_is_read_then_rotated_into_day_files(journal: Journal) -> None:
    a = finished(T0 - 10 * DAY)
    b = finished(T0 - 9 * DAY)
    straggler = ev.done(a[0].id, T0 - 10 * DAY + 5, outcome="confirmed", duration=0.1)
    in_journal = finished(T0 - 8 * DAY)  # an old crash left it in both places
    journal.append([*in_journal, *finished(T0 - 3600)])
    old_layout(journal.directory, [*a, *b, a[1], straggler, in_journal[0], in_journal[1]])
    before = [(e.id, e.state) for e in history(journal)]
    assert len(before) == len({i for i, _ in before}) == 4  # each entry once, journal's copy

    report = journal.compact(keep_seconds=DAY, now=T0)

    assert not (journal.directory / "archive.jsonl").exists()
    assert report.rotated_lines == 5  # a (queued, done, straggler), b; a's repeated done once
    assert list(on_disk(journal.directory)) == [
        "2026-11-25.jsonl",
        "2026-11-26.jsonl",
        "2026-11-27.jsonl",
    ]
    archived, current = archive.read_all(journal.directory)
    want = Counter((e.type, e.id, e.ts) for e in (*a, straggler, *b, *in_journal))
    assert keys(archived) == want  # each line exactly once
    assert len(current) == 2
    assert [(e.id, e.state) for e in history(journal)] == before
    assert journal.verify_archive().ok


def test_history_reads_day_files_newest_first_and_only_within_since(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k in range(1, 11):
        journal.append(finished(T0 - k * DAY))
    journal.append(finished(T0 - 3600))
    journal.compact(keep_seconds=DAY / 2, now=T0)  # only the last hour stays in the journal
    opened: list[str] = []
    real = View.day

    def spy(self: View, day: archive.Day) -> object:
        opened.append(day.name)
        return real(self, day)

    monkeypatch.setattr(View, "day", spy)
    rows = history(journal, since=T0 - 3.5 * DAY)
    assert [e.finished_at for e in rows] == [T0 - 3600, T0 - DAY, T0 - 2 * DAY, T0 - 3 * DAY]
    assert opened == ["2026-12-04", "2026-12-03", "2026-12-02"]
    opened.clear()
    rows = history(journal, last=3)  # the journal's row, then two days: no older one can show
    assert [e.finished_at for e in rows] == [T0 - 3600, T0 - DAY, T0 - 2 * DAY]
    assert opened == ["2026-12-04", "2026-12-03"]
    assert len(history(journal)) == 11


def test_verify_reads_every_archive_file_and_names_a_damaged_line(journal: Journal) -> None:
    journal.append([*finished(T0 - 3 * DAY), *finished(T0 - 2 * DAY)])
    journal.compact(keep_seconds=DAY, now=T0)
    target = journal.directory / "archive" / "2026-12-03.jsonl"
    data = target.read_bytes()
    target.write_bytes(data.replace(b'"done"', b'"dune"', 1))
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    cmd = [sys.executable, "-m", "cmdctl", "journal", "verify", "--journal", str(journal.directory)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, check=False)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert f"{target}:2: damaged line skipped" in proc.stderr
    assert "CORRUPT: archive" in proc.stdout and "2 files, 3 events, 1 damaged" in proc.stdout
    assert "Traceback" not in proc.stderr
    proc = subprocess.run([*cmd, "--json"], capture_output=True, text=True, env=env, timeout=60)
    report = json.loads(proc.stdout)
    assert report["ok"] is True and report["archive"]["ok"] is False
    assert report["archive"]["damaged"][0]["file"] == str(target)


def _template(directory: Path) -> tuple[Counter[tuple[str, str, float]], set[str], set[str]]:
    """A journal with day files, an old archive.jsonl and work to archive and expire.

    Returns every event's key, the finished entries, and those of the day file that the
    compaction under test expires (at T0 with 15 days of retention: Nov 15).
    """
    journal = Journal(directory)
    a1, a2 = finished(T0 - 20 * DAY), finished(T0 - 10 * DAY)
    journal.append([*a1, *a2])
    journal.compact(keep_seconds=DAY, now=T0 - 9 * DAY)  # day files of Nov 15 and Nov 25
    l1, l2 = finished(T0 - 10 * DAY), finished(T0 - 5 * DAY)
    orphan = ev.done("NOSUCHID", T0 - 5 * DAY, outcome="confirmed", duration=0.1)
    old_layout(directory, [*l1, *l2, orphan])
    b1, b2, b3 = finished(T0 - 10 * DAY), finished(T0 - 3 * DAY), finished(T0 - 3600)
    live = ev.queued(entry(created=T0))
    straggler = ev.done(a1[0].id, T0 - 2 * DAY, outcome="confirmed", duration=0.1)
    journal.append([*b1, *b2, live, *b3, straggler])
    everything = [*a1, *a2, *l1, *l2, orphan, *b1, *b2, *b3, live, straggler]
    want = Counter((e.type, e.id, e.ts) for e in everything)
    done = {e.id for e in (a1[0], a2[0], l1[0], l2[0], b1[0], b2[0], b3[0])}
    return want, done, {a1[0].id}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_kill_at_every_step_of_a_compaction_loses_nothing_and_shows_nothing_twice(
    tmp_path: Path,
) -> None:
    template = tmp_path / "template"
    want, done, expiring = _template(template)
    gone = Counter({k: n for k, n in want.items() if k[1] in expiring and k[0] != "done"})
    gone[next(k for k in want if k[1] in expiring and k[0] == "done" and k[2] < T0 - 19 * DAY)] = 1
    root = tmp_path / "runs"
    root.mkdir()
    args = [sys.executable, str(DRIVER), "kill-each", template, root, T0, DAY, 15 * DAY]
    out = subprocess.run(
        list(map(str, args)), capture_output=True, text=True, timeout=240, check=True
    )
    lines = out.stdout.split("\n")
    assert lines[-2].endswith(" finished"), out.stdout + out.stderr
    kills = int(lines[-2].split()[0]) - 1
    assert kills >= 30, out.stdout  # every write, fsync, rename, unlink of the compaction
    intents = 0
    for n in range(1, kills + 1):
        directory = root / str(n)
        intents += (directory / "archive" / "intent.json").exists()
        # As any reader sees it, before anyone repairs anything:
        archived, current = archive.read_all(directory)
        seen = keys(archived) + keys(current)
        assert seen in (want, want - gone), f"kill {n}: {(seen - want, want - seen)}"
        rows = history(Journal(directory))
        assert len(rows) == len({e.id for e in rows}), f"kill {n}: an entry shown twice"
        assert {e.id for e in rows} in (done, done - expiring), f"kill {n}"
        # The next compaction settles what the kill left; then each line is on disk once.
        Journal(directory).compact(keep_seconds=DAY, now=T0, archive_keep=15 * DAY)
        assert not (directory / "archive" / "intent.json").exists()
        assert not (directory / "archive.jsonl").exists()
        raw = [
            line
            for path in [*(directory / "archive").glob("*.jsonl"), directory / "journal.jsonl"]
            for line in path.read_bytes().splitlines(keepends=True)
        ]
        assert keys(raw) == want - gone, f"kill {n}"
        assert Journal(directory).verify().ok
        check = Journal(directory).verify_archive()
        assert check.ok and not check.warnings, (n, check)
    assert intents >= 5  # kills inside the intent's window were among them
    print(f"{kills} kill points, {intents} left an intent to settle")
