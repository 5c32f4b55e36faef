"""The archive: what `journal compact` moved out of the journal, one file per day, kept a while.

In the journal directory (the folder 0700, every file 0600, nothing opened through a link):

    archive/2026-12-05.jsonl   the lines of the entries that finished that day (UTC)
    archive/intent.json        only during a compaction's writes here (or after a crash in them)
    archive.jsonl              the old layout, one file: still read; the next compaction rotates it

Days are UTC days: a file's name does not depend on the zone of whoever compacts (cron and a
person's shell often differ), and no day is 23 or 25 hours long. All lines of an entry go to the
file of the day it finished (`finished_at`, else its last event), in journal order, so a day file
folds on its own. Lines about no entry the journal holds (late events a stale writer appended for
an entry archived before, lines that do not decode) go to the file of the compaction's own day:
never before their entry's file.

Retention (`expire`): whole day files whose day ended more than `keep` ago are removed; nothing
else is ever deleted. `keep=None` removes nothing.

Crash safety. Appending to several day files and then replacing the journal (or removing the old
`archive.jsonl`) cannot be one atomic step. So a compaction first writes `intent.json` (fsync,
rename, fsync the folder) naming each day file it will append to with its size before, and its
commit point: the journal file replaced by another (archiving) or `archive.jsonl` gone
(rotating the old layout). Then it appends (each file fsynced, and the folder), commits, and
removes the intent. The next compaction, under the journal lock, first `settle`s a leftover
intent: before the commit point it cuts each day file back to its recorded size (the lines are
still in the journal or the old file); past it, it only removes the intent. Readers apply the
same rule without the lock (`View`): while an uncommitted intent is there, they read each day
file only up to its recorded size. So after a `kill -9` at any instant every line is either where
it was or where it went, never in both for a reader, and never gone.

A reader running *while* a compaction runs may still meet an entry both in the journal it loaded
and in the archive (the compaction finished in between): `history` prefers the journal's copy
by id.
"""

from __future__ import annotations

import contextlib
import heapq
import json
import os
import re
import stat
from collections.abc import Callable, Container, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cmdctl.core import durable
from cmdctl.core.errors import JournalError
from cmdctl.core.model import Entry
from cmdctl.journal import events as ev
from cmdctl.journal import heads, quarantine, summary
from cmdctl.journal.events import EventDecodeError
from cmdctl.journal.framing import Damage, Scan, reframe, scan_bytes
from cmdctl.journal.layout import (
    ARCHIVE_DIR,
    ARCHIVE_FILE,
    DIR_MODE,
    FILE_MODE,
    JOURNAL_FILE,
    make_private_dir,
)
from cmdctl.journal.ledger import Ledger

INTENT_FILE = "intent.json"
DAY_S = 86400.0
_DAY_FILE = re.compile(r"(\d{4})-(\d{2})-(\d{2})\.jsonl")
_COMMITS = ("journal", "legacy")  # the journal file replaced; the old archive.jsonl gone


@dataclass(frozen=True, slots=True)
class Day:
    """One day file: its day (`2026-12-05`) and when that day began (epoch s, UTC)."""

    name: str
    start: float

    @property
    def end(self) -> float:
        """When the day ended: every entry in the file finished before."""
        return self.start + DAY_S

    @property
    def file(self) -> str:
        return f"{self.name}.jsonl"


@dataclass(frozen=True, slots=True)
class Rotation:
    """What a compaction did to the archive."""

    settled: bool  # an interrupted compaction's writes were settled first
    rotated_lines: int  # lines moved from the old `archive.jsonl` into day files
    deleted: tuple[str, ...]  # day files removed as older than the retention
    files: int  # day files after
    size: int  # their bytes


@dataclass(frozen=True, slots=True)
class ArchiveCheck:
    """What `check` found in the archive. `ok` is False on a damaged line."""

    folder: Path
    files: int
    lines: int
    damaged: tuple[tuple[Path, Damage], ...]
    warnings: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.damaged


@dataclass(frozen=True, slots=True)
class _Intent:
    commit: str  # one of _COMMITS
    journal: tuple[int, int]  # (st_dev, st_ino) of the journal file to be replaced
    sizes: tuple[tuple[str, int], ...]  # day file -> its size before (-1: it did not exist)


# -- days ---------------------------------------------------------------------------------------


def day_of(ts: float, default: str) -> str:
    """The UTC day (`2026-12-05`) of the epoch time `ts`; `default` if it names none."""
    try:
        d = datetime.fromtimestamp(ts, UTC)
    except (OverflowError, OSError, ValueError):
        return default
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}"


def _parse(filename: str) -> Day | None:
    match = _DAY_FILE.fullmatch(filename)
    if match is None:
        return None
    try:
        year, month, day = map(int, match.groups())
        start = datetime(year, month, day, tzinfo=UTC).timestamp()
    except ValueError:
        return None
    return Day(filename[: -len(".jsonl")], start)


def days(directory: Path) -> list[Day]:
    """The day files in the archive, oldest first."""
    try:
        names = os.listdir(directory / ARCHIVE_DIR)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as err:
        raise JournalError(f"cannot list {directory / ARCHIVE_DIR}: {err}") from err
    return sorted((d for d in map(_parse, names) if d is not None), key=lambda d: d.name)


def finished_day(ledger: Ledger, entry_id: str, default: str) -> str:
    """The day file of the finished entry `entry_id` of `ledger`."""
    try:
        entry = ledger.get(entry_id)
    except (EventDecodeError, ValueError, KeyError):
        return default
    return day_of(entry.finished_at if entry.finished_at is not None else entry.updated, default)


def entry_id_of(line: bytes) -> str:
    """The entry id a committed line is about ("" if it does not decode)."""
    head = heads.peek(line)
    if head is not None:
        return head[1]
    try:
        return ev.decode(line).id
    except EventDecodeError:
        return ""


# -- writing (the journal lock held) ------------------------------------------------------------


def rotate(
    directory: Path,
    by_day: dict[str, list[bytes]],
    replace_journal: Callable[[], None],
    *,
    journal_ids: Container[str],
    today: str,
    keep: float | None,
    now: float,
) -> Rotation:
    """One compaction's archive work: settle, rotate the old file, archive, replace, expire.

    `by_day` holds the journal's lines to archive (reframed) by day; `replace_journal` writes
    the new journal (the commit point of archiving); `journal_ids` are the entries the journal
    holds (an old crash may have left one in `archive.jsonl` too: the journal's copy wins).
    OSError from any write; what was not committed is undone.
    """
    settled = settle(directory)
    rotated = _rotate_legacy(directory, journal_ids, today)
    journal = _file_id(directory / JOURNAL_FILE) or (0, 0)
    _append(directory, by_day, replace_journal, _Intent("journal", journal, ()))
    try:
        deleted = expire(directory, keep, now)
        files, size = _usage(directory)
    except OSError as err:  # not an OSError: the caller would say "journal unchanged"
        raise JournalError(
            f"journal compacted, but removing old archive files failed: {err}",
            hint="the next `journal compact` tries again",
        ) from err
    return Rotation(settled, rotated, deleted, files, size)


def settle(directory: Path) -> bool:
    """Finish or undo what an interrupted compaction left (see the module doc); OSError.

    True if there was something to settle.
    """
    folder = directory / ARCHIVE_DIR
    try:
        intent = _load_intent(folder)
    except ValueError as err:
        raise JournalError(
            f"{folder / INTENT_FILE} is not what cmdctl writes: {err}",
            hint="move it out of the archive folder; then `journal verify`",
        ) from err
    if folder.is_dir():  # a kill while the intent was being written leaves its temp file
        leftovers = [n for n in os.listdir(folder) if n.startswith(f".{INTENT_FILE}.")]
        if leftovers:
            durable.remove_files(folder, leftovers)
    if intent is None:
        return False
    if not _committed(
        intent,
        journal=_file_id(directory / JOURNAL_FILE),
        legacy=_file_id(directory / ARCHIVE_FILE) is not None,
    ):
        for name, size in intent.sizes:
            if size < 0:
                durable.remove_files(folder, [name])
            else:
                with contextlib.suppress(FileNotFoundError):
                    durable.truncate_file(folder / name, size)
    durable.remove_files(folder, [INTENT_FILE])
    return True


def expire(directory: Path, keep: float | None, now: float) -> tuple[str, ...]:
    """Remove the day files whose day ended more than `keep` seconds before `now`; OSError."""
    if keep is None:
        return ()
    old = [d.file for d in days(directory) if d.end <= now - keep]
    if old:
        durable.remove_files(directory / ARCHIVE_DIR, old)
    return tuple(old)


def _rotate_legacy(directory: Path, journal_ids: Container[str], today: str) -> int:
    """Move the old layout's `archive.jsonl` into day files; the lines moved."""
    legacy = directory / ARCHIVE_FILE
    try:
        data = durable.read_file(legacy)
    except FileNotFoundError:
        return 0
    scan = scan_bytes(data)
    ledger = Ledger.from_lines(scan.lines)
    by_day: dict[str, list[bytes]] = {}
    seen: set[bytes] = set()
    moved = 0
    for raw in scan.lines:
        line = reframe(raw)
        entry_id = entry_id_of(line)
        # An old crash between appending here and replacing the journal left lines twice (or
        # in the journal too, whose copy is archived from there): each once.
        if line in seen or entry_id in journal_ids:
            continue
        seen.add(line)
        day = finished_day(ledger, entry_id, today) if entry_id in ledger else today
        by_day.setdefault(day, []).append(line)
        moved += 1
    damaged = list(scan.damaged)
    if scan.end < len(data):
        damaged.append(Damage(scan.last_line + 1, "torn tail of archive.jsonl", data[scan.end :]))
    if damaged:
        quarantine.keep_damaged(directory, damaged)
    _append(
        directory,
        by_day,
        lambda: durable.remove_files(directory, [ARCHIVE_FILE]),
        _Intent("legacy", (0, 0), ()),
    )
    return moved


def _append(
    directory: Path, by_day: dict[str, list[bytes]], commit: Callable[[], object], how: _Intent
) -> None:
    """Append each day's lines to its file, then `commit`, under an intent; OSError."""
    if not by_day:
        commit()
        return
    folder = _folder(directory)
    sizes = tuple((f"{day}.jsonl", _size(folder / f"{day}.jsonl")) for day in sorted(by_day))
    intent = _Intent(how.commit, how.journal, sizes)
    durable.replace_file(folder / INTENT_FILE, _encode(intent), mode=FILE_MODE)
    try:
        for day in sorted(by_day):
            data = b"".join(by_day[day])
            durable.append_file(folder / f"{day}.jsonl", data, mode=FILE_MODE)
        commit()
    except OSError:
        with contextlib.suppress(OSError, JournalError):
            settle(directory)  # undoes the appends unless the commit happened after all
        raise
    durable.remove_files(folder, [INTENT_FILE])


def _folder(directory: Path) -> Path:
    folder = directory / ARCHIVE_DIR
    make_private_dir(folder)
    if stat.S_IMODE(os.stat(folder, follow_symlinks=False).st_mode) != DIR_MODE:
        os.chmod(folder, DIR_MODE, follow_symlinks=False)
    return folder


def _size(path: Path) -> int:
    try:
        return os.stat(path, follow_symlinks=False).st_size
    except FileNotFoundError:
        return -1


def _usage(directory: Path) -> tuple[int, int]:
    folder = directory / ARCHIVE_DIR
    listed = days(directory)
    return len(listed), sum(max(0, _size(folder / d.file)) for d in listed)


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def _encode(intent: _Intent) -> bytes:
    body = {"commit": intent.commit, "journal": list(intent.journal), "sizes": dict(intent.sizes)}
    return json.dumps(body, sort_keys=True).encode() + b"\n"


def _load_intent(folder: Path) -> _Intent | None:
    """The intent in `folder`, None if there is none; ValueError if it is not one."""
    try:
        raw = durable.read_file(folder / INTENT_FILE)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise ValueError(str(err)) from err
    try:
        body = json.loads(raw)
        commit, journal, sizes = body["commit"], body["journal"], body["sizes"]
    except (KeyError, TypeError) as err:
        raise ValueError(f"missing {err}") from err
    if commit not in _COMMITS or len(journal) != 2 or not isinstance(sizes, dict):
        raise ValueError("unknown fields")
    if not all(_parse(name) and isinstance(size, int) for name, size in sizes.items()):
        raise ValueError("a size that names no day file")
    return _Intent(commit, (int(journal[0]), int(journal[1])), tuple(sorted(sizes.items())))


def _committed(intent: _Intent, *, journal: tuple[int, int] | None, legacy: bool) -> bool:
    """Did the compaction that wrote `intent` reach its commit point?"""
    if intent.commit == "legacy":
        return not legacy
    return journal != intent.journal


# -- reading (no lock) --------------------------------------------------------------------------


class View:
    """The archive as one reader sees it: the old file if any, and each day file up to the size
    it had when the view was taken (less what an uncommitted compaction appended)."""

    def __init__(self, directory: Path, legacy: int | None, sized: list[tuple[Day, int]]) -> None:
        self.directory = directory
        self._legacy = legacy
        self._days = sized

    @classmethod
    def open(cls, directory: Path, journal: tuple[int, int] | None) -> View:
        """The view of a reader that loaded the journal file `journal` ((st_dev, st_ino))."""
        folder = directory / ARCHIVE_DIR
        for attempt in range(3):  # again if the old file was rotated meanwhile
            legacy = _open_quiet(directory / ARCHIVE_FILE)
            legacy_id = None if legacy is None else _fd_id(legacy)
            # Sizes first, then the intent: lines appended after these sizes are not seen, and
            # lines appended before them were announced by an intent that is still there, or
            # committed (then the old file is gone: looked at next).
            sized = [(d, s) for d in days(directory) if (s := _size(folder / d.file)) >= 0]
            try:
                intent = _load_intent(folder)
            except ValueError:
                intent = None  # `journal verify` says so; a compaction refuses it
            if _file_id(directory / ARCHIVE_FILE) == legacy_id or attempt == 2:
                break
            if legacy is not None:
                os.close(legacy)
        if intent is not None and not _committed(
            intent, journal=journal, legacy=legacy is not None
        ):
            before = dict(intent.sizes)
            sized = [(d, min(s, max(0, before.get(d.file, s)))) for d, s in sized]
        return cls(directory, legacy, sized)

    def close(self) -> None:
        if self._legacy is not None:
            with contextlib.suppress(OSError):
                os.close(self._legacy)
            self._legacy = None

    def __enter__(self) -> View:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def has_legacy(self) -> bool:
        return self._legacy is not None

    @property
    def days(self) -> list[Day]:
        """The day files of the view, oldest first."""
        return [d for d, _ in self._days]

    def legacy(self) -> Scan:
        """The old `archive.jsonl`, read whole (it is rotated away by the next compaction)."""
        if self._legacy is None:
            return scan_bytes(b"")
        return scan_bytes(_pread(self._legacy, None))

    def day(self, day: Day) -> Scan:
        """One day file as far as this view sees it (a file expired meanwhile reads empty)."""
        size = dict((d.name, s) for d, s in self._days).get(day.name, 0)
        try:
            fd = os.open(self.directory / ARCHIVE_DIR / day.file, os.O_RDONLY | durable.NOFOLLOW)
        except FileNotFoundError:
            return scan_bytes(b"")
        except OSError as err:
            raise JournalError(f"cannot read {day.file}: {err}") from err
        try:
            return scan_bytes(_pread(fd, size))
        finally:
            os.close(fd)

    def lines(self) -> Iterator[bytes]:
        """Every archived line: the old file's, then each day's, oldest first."""
        yield from self.legacy().lines
        for day in self.days:
            yield from self.day(day).lines


def history(
    view: View,
    current: Ledger,
    rows: list[Entry],
    *,
    wanted: Callable[[Entry], bool],
    since: float | None,
    last: int,
) -> list[Entry]:
    """The newest `last` of `rows` (the journal's history, newest first) and the archive's
    finished entries that `wanted` accepts and `current` (the journal) does not hold.

    Day files are read one at a time, newest first, and only while one could still hold a row
    that would show: memory is one day's fold plus `last` rows. With `since`, files of days
    that ended before it are not opened.
    """
    best = rows[:last]

    def take(ledger: Ledger) -> None:
        nonlocal best
        found = [
            e
            for e in summary.history(ledger.entries(), since=since)
            if e.id not in current and wanted(e)
        ]
        if found:
            best = heapq.nlargest(last, [*best, *found], key=_newest)

    if view.has_legacy:
        take(Ledger.from_lines(view.legacy().lines))
    for day in reversed(view.days):
        if since is not None and day.end <= since:
            break
        if len(best) >= last and (best[-1].finished_at or best[-1].updated) >= day.end:
            break
        take(Ledger.from_lines(view.day(day).lines))
    return best


def _newest(e: Entry) -> tuple[float, str]:
    return (e.finished_at or e.updated, e.id)


def read_all(directory: Path) -> tuple[list[bytes], list[bytes]]:
    """Every archived line and every journal line, as one reader sees them (tests, soak)."""
    fd = _open_quiet(directory / JOURNAL_FILE)
    if fd is None:
        journal_lines: list[bytes] = []
        file = None
    else:
        try:
            file = _fd_id(fd)
            journal_lines = scan_bytes(_pread(fd, None)).lines
        finally:
            os.close(fd)
    with View.open(directory, file) as view:
        return list(view.lines()), journal_lines


def check(directory: Path) -> ArchiveCheck:
    """Read every archive file, one at a time: damaged lines, torn tails, modes, strays."""
    folder = directory / ARCHIVE_DIR
    warnings: list[str] = []
    damaged: list[tuple[Path, Damage]] = []
    lines = 0
    with View.open(directory, _file_id(directory / JOURNAL_FILE)) as view:
        sources: list[tuple[Path, Callable[[], Scan]]] = []
        if view.has_legacy:
            sources.append((directory / ARCHIVE_FILE, view.legacy))
        sources += [(folder / d.file, lambda d=d: view.day(d)) for d in view.days]  # type: ignore[misc]
        for path, read in sources:
            scan = read()
            lines += len(scan.lines)
            damaged += [(path, d) for d in scan.damaged]
            if scan.torn or scan.uncommitted:
                why = f"torn tail: {scan.torn} bytes, {scan.uncommitted} lines"
                damaged.append((path, Damage(scan.last_line + 1, why)))
            _mode_warning(path, FILE_MODE, warnings)
        files = len(sources)
    if folder.is_dir():
        _mode_warning(folder, DIR_MODE, warnings)
        known = {d.file for d in days(directory)} | {INTENT_FILE}
        for name in sorted(set(os.listdir(folder)) - known):
            warnings.append(f"{folder / name}: not an archive file, never read")
        if (folder / INTENT_FILE).exists():
            warnings.append(
                f"{folder / INTENT_FILE}: a compaction was interrupted; "
                "the next `journal compact` settles it"
            )
    return ArchiveCheck(folder, files, lines, tuple(damaged), tuple(warnings))


def _mode_warning(path: Path, want: int, out: list[str]) -> None:
    with contextlib.suppress(FileNotFoundError):
        mode = stat.S_IMODE(os.stat(path, follow_symlinks=False).st_mode)
        if mode != want:
            out.append(f"{path} has mode {mode:o}, expected {want:o}")


def _open_quiet(path: Path) -> int | None:
    try:
        return os.open(path, os.O_RDONLY | durable.NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as err:
        raise JournalError(f"cannot read {path}: {err}") from err


def _fd_id(fd: int) -> tuple[int, int]:
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def _pread(fd: int, size: int | None) -> bytes:
    """The first `size` bytes of `fd` (None: all of it)."""
    chunks = []
    offset = 0
    while size is None or offset < size:
        want = 1 << 24 if size is None else min(1 << 24, size - offset)
        chunk = os.pread(fd, want, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)
