"""Compaction: which lines stay in the journal, and rewriting it so that nothing is lost.

Live entries and finished entries younger than the retention stay. Older finished entries (and
events for unknown ids) go to the archive's day files (`journal.archive`), fsynced *before* the
journal is replaced, under an intent that lets the next compaction and every reader tell whether
the replace happened: a crash anywhere loses no line and shows none twice. Damaged lines go to
quarantine. The caller holds the journal lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cmdctl.core import durable
from cmdctl.journal import archive, delta, quarantine, snapshot
from cmdctl.journal.archive import Rotation
from cmdctl.journal.framing import Scan, reframe
from cmdctl.journal.layout import FILE_MODE, JOURNAL_FILE
from cmdctl.journal.ledger import Ledger
from cmdctl.journal.quarantine import Repair


@dataclass(frozen=True, slots=True)
class CompactReport:
    """What `compact` kept and moved."""

    kept_entries: int
    archived_entries: int
    kept_lines: int
    archived_lines: int
    quarantined_lines: int
    size_before: int
    size_after: int
    repairs: tuple[Repair, ...] = ()
    archive_files: int = 0  # day files in the archive after
    archive_size: int = 0  # their bytes
    archive_deleted: int = 0  # day files removed as older than the archive's retention
    rotated_lines: int = 0  # lines moved from the old `archive.jsonl` into day files


@dataclass(frozen=True, slots=True)
class Plan:
    """The journal's lines split into those kept and those archived."""

    entries: int
    keep: frozenset[str]
    kept: tuple[bytes, ...]
    archived: tuple[bytes, ...]
    days: tuple[str, ...] = ()  # the archive day file of each archived line
    ids: frozenset[str] = frozenset()  # every entry the journal holds


def plan(scan: Scan, horizon: float, now: float | None = None) -> Plan:
    """Keep what is live or finished at or after `horizon`; archive the rest, each line dated
    (see `journal.archive`: lines about no entry get the day of `now`, default `horizon`)."""
    ledger = Ledger.from_lines(scan.lines)
    today = archive.day_of(horizon if now is None else now, "1970-01-01")
    keep: set[str] = set()
    for entry_id in ledger.ids():
        if not ledger.state(entry_id).finished:
            keep.add(entry_id)
            continue
        entry = ledger.get(entry_id)
        finished = entry.finished_at if entry.finished_at is not None else entry.updated
        if finished >= horizon:
            keep.add(entry_id)
    kept: list[bytes] = []
    archived: list[bytes] = []
    dated: list[str] = []
    day_of_entry: dict[str, str] = {}
    for line in scan.lines:
        entry_id = archive.entry_id_of(line)
        if entry_id in keep:
            kept.append(reframe(line))
            continue
        archived.append(reframe(line))
        day = day_of_entry.get(entry_id)
        if day is None:
            known = entry_id in ledger
            day = archive.finished_day(ledger, entry_id, today) if known else today
            day_of_entry[entry_id] = day
        dated.append(day)
    return Plan(
        len(ledger),
        frozenset(keep),
        tuple(kept),
        tuple(archived),
        tuple(dated),
        frozenset(ledger.ids()),
    )


def rewrite(
    directory: Path, scan: Scan, chosen: Plan, *, now: float, archive_keep: float | None = None
) -> Rotation:
    """Quarantine damage, archive, replace the journal with the kept lines, expire day files
    older than `archive_keep` (None: keep all); OSError."""
    if scan.damaged:
        quarantine.keep_damaged(directory, scan.damaged)
    by_day: dict[str, list[bytes]] = {}
    for day, line in zip(chosen.days, chosen.archived, strict=True):
        by_day.setdefault(day, []).append(line)

    def replace() -> None:
        durable.replace_file(directory / JOURNAL_FILE, b"".join(chosen.kept), mode=FILE_MODE)
        snapshot.remove(directory)  # describes the old file
        delta.remove(directory)  # so does this

    return archive.rotate(
        directory,
        by_day,
        replace,
        journal_ids=chosen.ids,
        today=archive.day_of(now, "1970-01-01"),
        keep=archive_keep,
        now=now,
    )


def report(
    scan: Scan,
    chosen: Plan,
    size_after: int,
    repairs: tuple[Repair, ...],
    rotation: Rotation | None = None,
) -> CompactReport:
    """The report of a compaction that carried out `chosen`."""
    return CompactReport(
        kept_entries=len(chosen.keep),
        archived_entries=chosen.entries - len(chosen.keep),
        kept_lines=len(chosen.kept),
        archived_lines=len(chosen.archived),
        quarantined_lines=len(scan.damaged),
        size_before=scan.size,
        size_after=size_after,
        repairs=repairs,
        archive_files=rotation.files if rotation else 0,
        archive_size=rotation.size if rotation else 0,
        archive_deleted=len(rotation.deleted) if rotation else 0,
        rotated_lines=rotation.rotated_lines if rotation else 0,
    )
