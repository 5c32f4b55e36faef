"""Compaction: which lines stay in the journal, and rewriting it so that nothing is lost.

Live entries and finished entries younger than the retention stay. Older finished entries (and
events for unknown ids) go to `archive.jsonl`, fsynced *before* the journal is replaced, so a
crash in between can duplicate archived lines but never lose any. Damaged lines go to
quarantine. The caller holds the journal lock.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cmdctl.core import durable
from cmdctl.journal import delta, quarantine, snapshot
from cmdctl.journal import events as ev
from cmdctl.journal.events import EventDecodeError
from cmdctl.journal.framing import Scan, reframe
from cmdctl.journal.layout import ARCHIVE_FILE, FILE_MODE, JOURNAL_FILE
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


@dataclass(frozen=True, slots=True)
class Plan:
    """The journal's lines split into those kept and those archived."""

    entries: int
    keep: frozenset[str]
    kept: tuple[bytes, ...]
    archived: tuple[bytes, ...]


def plan(scan: Scan, horizon: float) -> Plan:
    """Keep what is live or finished at or after `horizon`; archive the rest."""
    ledger = Ledger.from_lines(scan.lines)
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
    for line in scan.lines:
        head = ev.peek(line)
        if head is not None:
            entry_id = head[1]
        else:
            try:
                entry_id = ev.decode(line).id
            except EventDecodeError:
                entry_id = ""
        (kept if entry_id in keep else archived).append(reframe(line))
    return Plan(len(ledger), frozenset(keep), tuple(kept), tuple(archived))


def rewrite(directory: Path, scan: Scan, chosen: Plan) -> None:
    """Quarantine damage, archive, then replace the journal with the kept lines; OSError."""
    if scan.damaged:
        quarantine.keep_damaged(directory, scan.damaged)
    if chosen.archived:
        durable.append_file(directory / ARCHIVE_FILE, b"".join(chosen.archived), mode=FILE_MODE)
    durable.replace_file(directory / JOURNAL_FILE, b"".join(chosen.kept), mode=FILE_MODE)
    snapshot.remove(directory)  # describes the old file
    delta.remove(directory)  # so does this


def report(
    scan: Scan, chosen: Plan, size_after: int, repairs: tuple[Repair, ...]
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
    )
