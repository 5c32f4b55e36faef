"""The journal on disk: format, lock, append, read, verify, compact.

`Journal` is here; the nouns it uses have their own modules: `layout` (names, modes, directory
checks), `durable` (writes that survive a crash), `snapshot`, `delta`, `quarantine`, `compaction`.

Files in the journal directory (0700; every file 0600; `layout` refuses a directory or file
another user could write to, and nothing here is opened through a symbolic link):

    journal.jsonl        the append-only log of event lines
    journal.lock         `flock`ed by writers (append, compact, repair, verify; `core.lockfile`)
    journal.snapshot     derived cache of the fold (see below); safe to delete
    journal.delta        derived cache: each append's lines, pre-read (see below); safe to delete
    drain.lock           held by a running drain (`try_drain_lock`), never waited for
    archive/DAY.jsonl    finished entries that `compact` moved out of the journal, by the
                         UTC day they finished; `archive.jsonl` is the old layout (see `archive`)
    quarantine/*.torn    torn tails cut off by a writer after a crash
    quarantine/*.damaged damaged lines `compact` moved aside

Line format. Each line is the event's JSON (`cmdctl.journal.events`) with two framing keys appended:

    {"t":"done","id":"01J…","ts":1763900000.5,"v":1,"outcome":"confirmed","duration":0.4,"m":0,"c":"1a2b3c4d"}

`c` is the CRC-32 (8 lower-case hex digits) of every byte before `,"c":`. `m` places the line
in its append: `0` for an append of one line; `"k/n"` for line n-k of an append of n lines
(`"2/3"`, `"1/3"`, `"0/3"`). An append is committed when its `k = 0` line is complete, so a batch
is all-or-nothing for every reader: lines of an append whose last line never arrived (a crash,
or a write still in progress) are not visible, and because `n` is in every line, no later
append can be mistaken for the missing rest of an earlier one. The append is written a few
thousand lines per `os.write` (a bulk's 46 MB is never copied whole), followed by one `fsync`;
success is reported only after both.

Failure. If the write or the fsync fails, the file is cut back to its size before the append
and JournalError ("nothing accepted") is raised; an fsync is never retried. (Should the cut
itself fail after a failed fsync, complete lines may remain that were reported as not accepted.)

Crash repair. A writer, under the lock, checks the tail before appending: bytes after the last
newline (a torn line) and any trailing lines of an uncommitted append are copied to
`quarantine/<time>.torn` (fsynced), then cut off the journal. They are never glued onto the next
record. Readers never repair and need no lock: they just do not see an uncommitted tail.

Damage. A line whose CRC or framing is wrong, or an append broken off in the middle of the file,
is reported with its line number and skipped; `verify` (`journal.verification`, which streams the
file in bounded memory) calls it corruption. A damaged line inside
an append whose last line is intact costs only that line: the rest of the append still proves
it was committed.

Compaction rewrites the journal under the lock into a temp file (fsync, rename, fsync the
directory), keeping every live entry and finished entries younger than the retention. Older
finished entries (and events for unknown ids) are appended to the archive's day files and
fsynced *before* the rename, under an intent that the next compaction and readers use to undo or
ignore what a crash in between left twice (`journal.archive`): nothing lost, nothing seen twice.
Readers that have the old file open keep reading it; the next read opens the new one.

Snapshot. `journal.snapshot` is a derived cache of the fold up to a byte offset (marshal data
behind its own CRC, recording the journal's device and inode, the offset, and the CRC of the 4 KiB
before the offset). `load` uses it only when all of these still match the file and then reads just
the tail; otherwise it reads everything. Readers refresh it (temp file + rename; no lock needed,
it describes an immutable committed prefix) after reading more than SNAPSHOT_AFTER_BYTES past it;
compaction replaces it. It is never the source of truth: deleting it is always safe.

Delta. Every append also adds a record to `journal.delta` describing its own lines (types, ids,
positions, and batch/device/times of `queued` events), so a reader can fold a run of appends
nobody has read yet without reading, checksumming and parsing those lines; the first `status`
after a million events of `bulk` and drains costs about as much as a warm one plus one fold.
`load` folds the records that continue from the snapshot (or the start), one at a time, each
once it has checked that the journal still holds the bytes it describes, and reads the journal
only past them. Like the
snapshot it trusts a committed prefix once checked; `verify` and `compact` always read every line.

Network filesystems (NFS, CIFS/SMB, ...) do not give `flock` and `fsync` the guarantees above;
writes refuse to run there unless `allow_network_fs=True` (detected from /proc/self/mountinfo on
Linux; elsewhere the check is skipped).
"""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, TypeVar

from cmdctl.core import durable, lockfile
from cmdctl.core.errors import BusyError, JournalError
from cmdctl.journal import delta, layout, quarantine, snapshot
from cmdctl.journal import events as ev

if TYPE_CHECKING:
    from cmdctl.journal.archive import ArchiveCheck
    from cmdctl.journal.compaction import CompactReport
from cmdctl.journal.events import Event
from cmdctl.journal.framing import Damage, Mark, Scan, frame_lines, scan_bytes, tail_check
from cmdctl.journal.layout import DRAIN_LOCK_FILE, FILE_MODE, JOURNAL_FILE, LOCK_FILE
from cmdctl.journal.ledger import Ledger
from cmdctl.journal.quarantine import Repair

__all__ = ["AppendReport", "Journal", "VerifyReport"]

_WRITE_LINES = 4096  # lines per write of an append (about 2 MB of a bulk)


class Decision(Protocol):
    """What a `Journal.transact` decision returns: at least the events to append."""

    @property
    def events(self) -> Sequence[Event]: ...


D = TypeVar("D", bound=Decision)

# Appends hold the lock for milliseconds; compaction of a very large journal for seconds.
# Waiting longer than this means something is wrong (a hung process holding the lock).
LOCK_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class AppendReport:
    """What one append did."""

    events: int
    size: int
    repairs: tuple[Repair, ...] = ()


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What `verify` found. `ok` is False on corruption."""

    path: Path
    events: int
    entries: int
    damaged: tuple[Damage, ...]
    problems: tuple[str, ...]  # fold problems: events for unknown ids, duplicates, bad fields
    torn: int
    uncommitted: int
    quarantined: tuple[Path, ...]
    filesystem: str | None
    warnings: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """No damaged line and nothing the fold could not place."""
        return not self.damaged and not self.problems


# -- the journal -----------------------------------------------------------------------------


class Journal:
    """The journal in `directory` (created 0700 on first write)."""

    def __init__(self, directory: Path, *, allow_network_fs: bool = False) -> None:
        self.directory = Path(directory)
        self.path = self.directory / JOURNAL_FILE
        self.allow_network_fs = allow_network_fs
        self._checked_fs = False

    # -- setup and locks ---------------------------------------------------------------------

    def _prepare(self) -> None:
        layout.ensure_dir(self.directory)
        if not self._checked_fs:
            layout.refuse_network_fs(self.directory, allow=self.allow_network_fs)
            self._checked_fs = True

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self._prepare()
        path = self.directory / LOCK_FILE
        try:
            fd = lockfile.acquire(path, mode=FILE_MODE, timeout=LOCK_TIMEOUT_S)
        except OSError as err:
            raise JournalError(f"cannot take the journal lock: {err}") from err
        if fd is None:
            raise JournalError(
                f"journal lock {path} still held after {LOCK_TIMEOUT_S:.0f} s",
                hint="another cmdctl may be stuck; check running processes",
            )
        try:
            yield
        finally:
            lockfile.release(fd)

    @contextlib.contextmanager
    def try_drain_lock(self) -> Iterator[None]:
        """Hold the drain lock for the duration; BusyError at once if another process has it."""
        self._prepare()
        fd = lockfile.acquire(self.directory / DRAIN_LOCK_FILE, mode=FILE_MODE, timeout=0)
        if fd is None:
            raise BusyError("another drain is already running", hint="it will pick up this work")
        try:
            yield
        finally:
            lockfile.release(fd)

    def _open_for_append(self) -> int:
        return durable.open_append(self.path, mode=FILE_MODE, readable=True)

    # -- writing -----------------------------------------------------------------------------

    def append(self, events: Sequence[Event]) -> AppendReport:
        """Append `events` as one all-or-nothing batch; JournalError means "not accepted"."""
        if not events:
            return AppendReport(0, 0)
        with self._locked():
            return self._append_locked(events)

    def transact(self, decide: Callable[[Ledger], D]) -> tuple[D, AppendReport]:
        """Decide on the current entries and append, under the lock: no writer in between.

        `decide` gets the ledger as of now and returns a decision whose `events` are appended
        (empty: nothing is written); the decision is returned with the append's report.
        """
        with self._locked():
            _scan, ledger = self.load()
            result = decide(ledger)
            events = result.events
            report = self._append_locked(events) if events else AppendReport(0, 0)
        return result, report

    def append_since(
        self, since: Mark | None, decide: Callable[[Sequence[bytes], bool], Sequence[Event]]
    ) -> tuple[AppendReport, Mark]:
        """Look at what others appended after `since`, then append, under the lock.

        `decide(lines, whole)` gets the committed lines after `since` and returns the events to
        append (empty: nothing is written). `whole` is True when the lines are the entire file:
        `since` is None, at the start, or of a file since replaced (see `Mark`; compaction
        archives finished entries, so an entry missing from a whole read was finished). Returns
        the report and the mark just past the journal's end, so the next call sees only what
        was appended after this one.
        """
        with self._locked():
            fd = self._open()
            try:
                repairs = self._repair_tail(fd)
                st = os.fstat(fd)
                try:
                    start = _resume_at(fd, st, since)
                    data = _pread_all(fd, start)
                except OSError as err:
                    raise JournalError(f"cannot read {self.path}: {err}") from err
                events = decide(scan_bytes(data, start).lines, start == 0)
                report = self._append_fd(fd, events, repairs)
                mark = _end_mark(fd)
            finally:
                os.close(fd)
        return report, mark

    def _append_locked(self, events: Sequence[Event]) -> AppendReport:
        """`append` for a caller that already holds the lock."""
        fd = self._open()
        try:
            return self._append_fd(fd, events, self._repair_tail(fd))
        finally:
            os.close(fd)

    def _open(self) -> int:
        try:
            return self._open_for_append()
        except OSError as err:
            raise JournalError(f"cannot open {self.path}, nothing accepted: {err}") from err

    def _append_fd(
        self, fd: int, events: Sequence[Event], repairs: tuple[Repair, ...]
    ) -> AppendReport:
        """Write `events` at the end of the repaired file `fd` (the lock held), then fsync."""
        if not events:
            return AppendReport(0, 0, repairs)
        lines = frame_lines(ev.encode_many(events))
        st = os.fstat(fd)
        size = self._write_lines(fd, lines, st.st_size)
        blob = delta.record((st.st_dev, st.st_ino), st.st_size, lines, events)
        if blob is not None:
            delta.append(self.directory, blob)
        return AppendReport(len(events), size, repairs)

    def _write_lines(self, fd: int, lines: list[bytes], start: int) -> int:
        """`_write_all` of the lines, a few thousand at a time: a bulk of 100,000 lines is
        46 MB, which `b"".join` would copy whole. Still one append: readers see none of it
        until its last line is there, and a failure cuts the file back to `start`."""
        size = 0
        try:
            for at in range(0, len(lines), _WRITE_LINES):
                chunk = b"".join(lines[at : at + _WRITE_LINES])
                durable.write_all(fd, chunk)
                size += len(chunk)
        except OSError as err:
            self._cut_back(fd, start)
            raise JournalError(
                f"writing {self.path} failed, nothing accepted: {err.strerror or err}"
            ) from err
        self._write_all(fd, b"", start)  # the fsync, and what its failure means
        return size

    def _write_all(self, fd: int, payload: bytes, start: int) -> None:
        try:
            durable.write_all(fd, payload)
        except OSError as err:
            self._cut_back(fd, start)
            raise JournalError(
                f"writing {self.path} failed, nothing accepted: {err.strerror or err}"
            ) from err
        try:
            os.fsync(fd)
        except OSError as err:
            # Never retry: after a failed fsync the kernel may have dropped the dirty pages and
            # a second fsync would "succeed" without the data being on disk.
            self._cut_back(fd, start)
            raise JournalError(
                f"fsync of {self.path} failed, nothing accepted: {err.strerror or err}"
            ) from err

    def _cut_back(self, fd: int, size: int) -> None:
        # Best effort: if truncation fails too, the batch's last line is missing or unsynced
        # and the next writer quarantines the uncommitted tail.
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size)

    def repair(self) -> tuple[Repair, ...]:
        """Take the lock and quarantine a torn tail, if there is one."""
        with self._locked():
            if not self.path.exists():
                return ()
            fd = self._open_for_append()
            try:
                return self._repair_tail(fd)
            finally:
                os.close(fd)

    def _repair_tail(self, fd: int) -> tuple[Repair, ...]:
        return quarantine.repair_tail(self.directory, self.path, fd)

    # -- reading -----------------------------------------------------------------------------

    def read(self) -> Scan:
        """Read the whole committed journal; no lock, safe during appends and compaction."""
        if not layout.check_dir(self.directory):
            return scan_bytes(b"")
        try:
            data = durable.read_file(self.path)
        except FileNotFoundError:
            data = b""
        except OSError as err:
            raise JournalError(f"cannot read {self.path}: {err}") from err
        return scan_bytes(data)

    def load(self) -> tuple[Scan, Ledger]:
        """Read and fold, starting from a valid snapshot when there is one.

        Returns the scan (damage reports; its `lines` are only those read past the snapshot)
        and the ledger of current entries. No lock; safe during appends and compaction.
        """
        if not layout.check_dir(self.directory):
            return scan_bytes(b""), Ledger()
        try:
            fd = os.open(self.path, os.O_RDONLY | durable.NOFOLLOW)
        except FileNotFoundError:
            return scan_bytes(b""), Ledger()
        except OSError as err:
            raise JournalError(f"cannot read {self.path}: {err}") from err
        reader = _Reader(fd)
        ledger = Ledger(reader.read_at)
        gc_was_on = gc.isenabled()
        gc.disable()  # hundreds of thousands of acyclic rows: collections only cost time
        try:
            try:
                st = os.fstat(fd)
                file_id = (st.st_dev, st.st_ino)
                found = snapshot.read(self.directory, st, _preader(fd))
                snap = None if found is None else found[0]
                if found is not None:
                    try:
                        ledger.load_rows(found[0].rows, found[1])
                    except ValueError:  # not of this ledger's making: read everything
                        ledger, snap = Ledger(reader.read_at), None
                    del found  # the snapshot's bytes: copied into the ledger's columns
                base = 0 if snap is None else snap.offset
                chain = delta.fold(
                    self.directory, fd, file_id, base, st.st_size,
                    lambda h: ledger.apply_heads(h.kinds, h.ids, h.places, h.queued),
                )
                data = reader.read_from(chain.end)
            except OSError as err:
                raise JournalError(f"cannot read {self.path}: {err}") from err
            before = (0 if snap is None else snap.last_line) + chain.lines
            scan = scan_bytes(data, chain.end, before + 1)
            scan.file = file_id
            scan.check = tail_check(reader.read_at, scan.end)
            scan.committed += chain.lines
            if snap is not None:
                scan.committed += snap.committed
                scan.damaged[:0] = [Damage(n, why) for n, why in snap.damaged]
            ledger.apply_lines(scan.lines, scan.offsets)
            big = scan.end - base >= snapshot.SNAPSHOT_AFTER_BYTES
            if big and snapshot.write(self.directory, st, scan, ledger, reader.read_at):
                delta.prune(self.directory, scan.end, file_id)
        finally:
            if gc_was_on:
                gc.enable()
        return scan, ledger

    def ledger(self) -> Ledger:
        """The current entries."""
        return self.load()[1]

    def events(self) -> Iterator[Event]:
        """Every committed event, decoded, in journal order."""
        return self.read().events()

    def quarantined(self) -> tuple[Path, ...]:
        """Files in quarantine."""
        return quarantine.files(self.directory)

    def verify(self) -> VerifyReport:
        """Check every line and every entry, a block at a time; see `VerifyReport.ok`."""
        from cmdctl.journal import verification  # only `journal verify` needs it

        source = verification.Source.empty()
        if layout.check_dir(self.directory):
            with self._locked():  # a stable view: no append half-way through
                try:
                    source = verification.Source.open(self.path)
                except OSError as err:
                    raise JournalError(f"cannot read {self.path}: {err}") from err
        try:
            checked = verification.check(source)
        except OSError as err:
            raise JournalError(f"cannot read {self.path}: {err}") from err
        finally:
            source.close()
        fstype = layout.filesystem(self.directory)
        warnings = layout.warnings(self.directory, fstype)
        if checked.torn or checked.uncommitted:
            warnings.append(
                f"torn tail ({checked.uncommitted} uncommitted lines, {checked.torn} bytes): "
                "the next write moves it to quarantine"
            )
        quarantined = self.quarantined()
        if quarantined:
            warnings.append(f"{len(quarantined)} file(s) in quarantine")
        return VerifyReport(
            path=self.path,
            events=checked.events,
            entries=checked.entries,
            damaged=checked.damaged,
            problems=checked.problems,
            torn=checked.torn,
            uncommitted=checked.uncommitted,
            quarantined=quarantined,
            filesystem=fstype,
            warnings=tuple(warnings),
        )

    # -- compaction --------------------------------------------------------------------------

    def compact(
        self, keep_seconds: float, now: float, archive_keep: float | None = None
    ) -> CompactReport:
        """Rewrite the journal without finished entries older than `keep_seconds` (archived),
        removing archive day files older than `archive_keep` (None: none; `journal.archive`)."""
        from cmdctl.journal import compaction  # with the archive: only `journal compact`

        horizon = now - keep_seconds
        with self._locked():
            if not self.path.exists():
                return compaction.CompactReport(0, 0, 0, 0, 0, 0, 0)
            fd = self._open_for_append()
            try:
                repairs = self._repair_tail(fd)
            finally:
                os.close(fd)
            scan = self.read()
            chosen = compaction.plan(scan, horizon, now)
            try:
                rotation = compaction.rewrite(
                    self.directory, scan, chosen, now=now, archive_keep=archive_keep
                )
            except OSError as err:
                raise JournalError(
                    f"compaction of {self.path} failed, journal unchanged: {err}"
                ) from err
            size_after = self.path.stat().st_size
        if size_after >= snapshot.SNAPSHOT_AFTER_BYTES:
            self.load()  # so the next reader starts from a snapshot of the new file
        return compaction.report(scan, chosen, size_after, repairs, rotation)

    def verify_archive(self) -> ArchiveCheck:
        """Check every line of the archive's files, one file at a time, under the lock."""
        from cmdctl.journal import archive

        if not layout.check_dir(self.directory):
            return archive.check(self.directory)
        with self._locked():  # no compaction half-way through
            return archive.check(self.directory)


#: What `_Reader` reads ahead once reads go forward through the file (a drain selecting 10,000
#: pending entries reads their lines in journal order: one read per window, not per line).
READ_AHEAD = 1 << 16


class _Reader:
    """Reads committed lines back by position for a ledger built by `Journal.load`.

    Keeps the descriptor of the file that was read, so positions stay valid even after a
    compaction renamed a new journal into place. Committed bytes never change (the journal is
    only appended to), so what was read ahead stays true.
    """

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._start = 0
        self._data = b""
        # (offset, the bytes read ahead from it): replaced whole and read once, so a thread
        # never pairs one window's offset with another's bytes. cmdctl's own callers load a
        # ledger per thread; a library caller may share one (`tests/journal/test_reader.py`).
        self._ahead: tuple[int, bytes] = (0, b"")
        self._next = -1  # where the last line read before `_start` ended (a hint only)

    def read_from(self, start: int) -> bytes:
        self._start, self._data = start, _pread_all(self._fd, start)
        return self._data

    def read_at(self, offset: int, size: int) -> bytes:
        if offset >= self._start:
            at = offset - self._start
            return self._data[at : at + size]
        ahead_at, ahead = self._ahead
        at = offset - ahead_at
        if at >= 0 and at + size <= len(ahead):
            line = ahead[at : at + size]
        elif 0 <= offset - self._next < READ_AHEAD and size < READ_AHEAD:
            # Going forward from the last line: read the window ahead of this one.
            ahead = os.pread(self._fd, READ_AHEAD, offset)
            self._ahead = (offset, ahead)
            line = ahead[:size]
        else:  # a line here and there (`queue show`, recovery): just that line
            line = os.pread(self._fd, size, offset)
        self._next = offset + size
        return line

    def __del__(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


def _resume_at(fd: int, st: os.stat_result, mark: Mark | None) -> int:
    """`mark`'s offset if the open journal `fd` is the file it was taken in; else 0."""
    if mark is None or mark.file != (st.st_dev, st.st_ino) or mark.offset > st.st_size:
        return 0
    return mark.offset if tail_check(_preader(fd), mark.offset) == mark.check else 0


def _end_mark(fd: int) -> Mark:
    """A mark at the end of the open journal `fd`."""
    try:
        st = os.fstat(fd)
        return Mark((st.st_dev, st.st_ino), st.st_size, tail_check(_preader(fd), st.st_size))
    except OSError:  # what was appended is on disk; the next look just reads the whole file
        return Mark((-1, -1), 0)


def _preader(fd: int) -> Callable[[int, int], bytes]:
    """`read(offset, size)` on `fd`, for `tail_check`."""
    return lambda offset, size: os.pread(fd, size, offset)


def _pread_all(fd: int, start: int) -> bytes:
    """Everything in `fd` from `start` to its end."""
    chunks = []
    offset = start
    while True:
        chunk = os.pread(fd, 1 << 24, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)
