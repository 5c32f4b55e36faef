"""`journal.snapshot`: the fold up to a byte offset, cached so a big journal is read only once.

A derived cache, never the source of truth: deleting it is always safe. The file is a magic
line, the CRC-32 (8 hex digits) of the payload, then the payload: a `Snapshot` as marshal data.
It records the journal's device and inode, the offset it covers and the CRC of the 4 KiB before
that offset, and is used only while all of these still match the journal. Written without the
lock (it describes an immutable committed prefix) and without fsync (a torn one fails its CRC).
"""

from __future__ import annotations

import contextlib
import marshal
import os
import zlib
from collections.abc import Callable
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
_MAGIC = b"cmdctl-snapshot-2\n"  # 2: columnar rows


class Snapshot(NamedTuple):
    """The fold of the journal's committed prefix up to `offset`, and how to recognise it."""

    dev: int  # the journal file's st_dev and st_ino: the snapshot is of this file only
    ino: int
    offset: int  # the end of the prefix it covers
    prefix_crc: int  # `tail_check` at `offset`: the file still holds the same bytes there
    committed: int  # committed lines in the prefix
    last_line: int  # line number of the prefix's last line
    damaged: list[tuple[int, str]]  # (line, reason) of damaged lines in the prefix
    rows: tuple[Any, ...]  # `Ledger.dump_rows()`


def read(
    directory: Path, st: os.stat_result, read_at: Callable[[int, int], bytes]
) -> Snapshot | None:
    """The snapshot in `directory` if it describes the journal `st` (read with `read_at`)."""
    try:
        blob = durable.read_file(directory / SNAPSHOT_FILE)
    except OSError:
        return None
    head = len(_MAGIC)
    if blob[:head] != _MAGIC or len(blob) < head + 8:
        return None
    if zlib.crc32(blob[head + 8 :]) != int(blob[head : head + 8], 16):
        return None
    try:
        snap = Snapshot(*marshal.loads(blob[head + 8 :]))
    except (ValueError, EOFError, TypeError):
        return None
    if (snap.dev, snap.ino) != (st.st_dev, st.st_ino) or snap.offset > st.st_size:
        return None
    if tail_check(read_at, snap.offset) != snap.prefix_crc:
        return None  # the file was cut back and rewritten since: not the same journal
    return snap


def write(
    directory: Path,
    st: os.stat_result,
    scan: Scan,
    ledger: Ledger,
    read_at: Callable[[int, int], bytes],
) -> bool:
    """Cache the fold of the journal `st` up to `scan.end`; False if it could not be written."""
    try:
        snap = Snapshot(
            dev=st.st_dev,
            ino=st.st_ino,
            offset=scan.end,
            prefix_crc=tail_check(read_at, scan.end),
            committed=scan.committed,
            last_line=scan.last_line,
            damaged=[(d.line, d.reason) for d in scan.damaged if d.line <= scan.last_line],
            rows=ledger.dump_rows(),
        )
        payload = marshal.dumps(tuple(snap))
        blob = b"%s%08x%s" % (_MAGIC, zlib.crc32(payload), payload)
        durable.replace_file(directory / SNAPSHOT_FILE, blob, mode=FILE_MODE, sync=False)
    except (OSError, ValueError, JournalError):
        return False  # any failure just means no snapshot
    return True


def remove(directory: Path) -> None:
    """Forget the snapshot (the journal it describes was replaced)."""
    with contextlib.suppress(FileNotFoundError):
        (directory / SNAPSHOT_FILE).unlink()
