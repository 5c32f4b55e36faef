"""`journal.snapshot`: the fold up to a byte offset, cached so a big journal is read only once.

A derived cache, never the source of truth: deleting it is always safe. The file is a magic
line, the CRC-32 (8 hex digits) of everything after it, the length (16 hex digits) of the
`Snapshot` as marshal data, that data, then the ledger's columns as raw bytes, one after the
other (their lengths are in the `Snapshot`): a million entries write and read as a few large
buffers, never copied into one payload.
It records the journal's device and inode, the offset it covers and the CRC of the 4 KiB before
that offset, and is used only while all of these still match the journal. Written without the
lock (it describes an immutable committed prefix) and without fsync (a torn one fails its CRC).
"""

from __future__ import annotations

import contextlib
import marshal
import os
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from cmdctl.core import durable
from cmdctl.core.errors import JournalError
from cmdctl.journal.framing import Scan, tail_check
from cmdctl.journal.layout import FILE_MODE, SNAPSHOT_FILE
from cmdctl.journal.ledger import Ledger

# A reader that had to read this many bytes past the snapshot writes a fresh one, so a big
# journal is read in full once and later reads only decode the tail.
SNAPSHOT_AFTER_BYTES = 4 << 20
_MAGIC = b"cmdctl-snapshot-4\n"  # 3: columns as bytes, with counts; 4: and the log


class Snapshot(NamedTuple):
    """The fold of the journal's committed prefix up to `offset`, and how to recognise it."""

    dev: int  # the journal file's st_dev and st_ino: the snapshot is of this file only
    ino: int
    offset: int  # the end of the prefix it covers
    prefix_crc: int  # `tail_check` at `offset`: the file still holds the same bytes there
    committed: int  # committed lines in the prefix
    last_line: int  # line number of the prefix's last line
    damaged: list[tuple[int, str]]  # (line, reason) of damaged lines in the prefix
    rows: tuple[Any, ...]  # `Ledger.dump_rows()[0]`: all but the columns
    sizes: list[int]  # lengths of the columns that follow (`Ledger.dump_rows()[1]`)


#: Bytes per entry of each column after the ids (0: any): states, batches, devices, places,
#: created, not_before; then the packed records: rows, their ends, positions; then the log of
#: later records: rows, positions (`Ledger.dump_rows`).
_WIDTHS = (0, 1, 4, 4, 8, 8, 8, 0, 0, 0, 0, 0)

#: The columns of a snapshot read back, for `Ledger.load_rows` (views into the file's bytes).
Parts = list[memoryview]


def read(
    directory: Path, st: os.stat_result, read_at: Callable[[int, int], bytes]
) -> tuple[Snapshot, Parts] | None:
    """The snapshot in `directory` if it describes the journal `st` (read with `read_at`)."""
    try:
        blob = durable.read_file(directory / SNAPSHOT_FILE)
    except OSError:
        return None
    head = len(_MAGIC)
    if blob[:head] != _MAGIC or len(blob) < head + 24:
        return None
    view = memoryview(blob)  # tens of MB for a big journal: sliced, never copied whole
    try:
        if zlib.crc32(view[head + 8 :]) != int(blob[head : head + 8], 16):
            return None
        at = head + 24 + int(blob[head + 8 : head + 24], 16)
        snap = Snapshot(*marshal.loads(view[head + 24 : at]))
        parts: Parts = []
        for size in snap.sizes:
            parts.append(view[at : at + size])
            at += size
    except (ValueError, EOFError, TypeError):
        return None
    if at != len(blob) or len(parts) != len(_WIDTHS):
        return None
    n = parts[1].nbytes
    if any(w and p.nbytes != n * w for p, w in zip(parts, _WIDTHS, strict=True)):
        return None
    if parts[7].nbytes != parts[8].nbytes or parts[9].nbytes % 8 or (
            parts[10].nbytes * 2 != parts[11].nbytes or parts[11].nbytes % 8):
        return None
    if (snap.dev, snap.ino) != (st.st_dev, st.st_ino) or snap.offset > st.st_size:
        return None
    if tail_check(read_at, snap.offset) != snap.prefix_crc:
        return None  # the file was cut back and rewritten since: not the same journal
    return snap, parts


def write(
    directory: Path,
    st: os.stat_result,
    scan: Scan,
    ledger: Ledger,
    read_at: Callable[[int, int], bytes],
) -> bool:
    """Cache the fold of the journal `st` up to `scan.end`; False if it could not be written."""
    try:
        rows, columns = ledger.dump_rows()
        snap = Snapshot(
            dev=st.st_dev,
            ino=st.st_ino,
            offset=scan.end,
            prefix_crc=tail_check(read_at, scan.end),
            committed=scan.committed,
            last_line=scan.last_line,
            damaged=[(d.line, d.reason) for d in scan.damaged if d.line <= scan.last_line],
            rows=rows,
            sizes=[memoryview(c).nbytes for c in columns],
        )
        meta = marshal.dumps(tuple(snap))
        parts = [b"%016x" % len(meta), meta, *columns]
        crc = 0
        for part in parts:
            crc = zlib.crc32(part, crc)
        _replace(directory / SNAPSHOT_FILE, [b"%s%08x" % (_MAGIC, crc), *parts])
    except (OSError, ValueError, JournalError):
        return False  # any failure just means no snapshot
    return True


def _replace(path: Path, parts: Sequence[Any]) -> None:
    """`durable.replace_file(path, b"".join(parts), sync=False)`, without the join's copy."""
    tmp = durable.temp_name(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | durable.NOFOLLOW, FILE_MODE)
        try:
            os.fchmod(fd, FILE_MODE)
            for part in parts:
                durable.write_all(fd, part)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def remove(directory: Path) -> None:
    """Forget the snapshot (the journal it describes was replaced)."""
    with contextlib.suppress(FileNotFoundError):
        (directory / SNAPSHOT_FILE).unlink()
