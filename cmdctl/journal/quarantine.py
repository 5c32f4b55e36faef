"""`quarantine/`: bytes the journal no longer holds but must not lose.

`*.torn`: a torn tail (bytes after the last newline, lines of an append whose last line never
arrived) that a writer cut off the journal after a crash. `*.damaged`: damaged lines that
`compact` moved aside. Each file is written whole and fsynced before the journal changes.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cmdctl.core import durable
from cmdctl.core.errors import JournalError
from cmdctl.journal.framing import Damage, committed_end
from cmdctl.journal.layout import FILE_MODE, QUARANTINE_DIR, make_private_dir

# How far back a writer first looks for the committed end of the journal; quadrupled as needed.
_TAIL_WINDOW = 1 << 16


@dataclass(frozen=True, slots=True)
class Repair:
    """A torn tail a writer moved to quarantine."""

    offset: int
    size: int
    lines: int  # complete but uncommitted lines among the moved bytes
    path: Path


def repair_tail(directory: Path, journal: Path, fd: int) -> tuple[Repair, ...]:
    """Move the uncommitted tail of the journal `fd` (open, the lock held) to quarantine."""
    size = os.fstat(fd).st_size
    cut, tail = uncommitted_tail(fd, size)
    if cut == size:
        return ()
    target = directory / QUARANTINE_DIR / f"{_stamp()}-{os.getpid()}-{cut}.torn"
    try:
        target = _write_new_file(target, tail)
        os.ftruncate(fd, cut)
        os.fsync(fd)
    except OSError as err:
        raise JournalError(
            f"cannot quarantine the torn tail of {journal}, nothing accepted: {err}"
        ) from err
    return (Repair(cut, size - cut, tail.count(b"\n"), target),)


def uncommitted_tail(fd: int, size: int) -> tuple[int, bytes]:
    """Where the committed part of the journal `fd` (of `size` bytes) ends, and what follows."""
    window = _TAIL_WINDOW
    while True:
        start = max(0, size - window)
        buf = os.pread(fd, size - start, start)
        cut = committed_end(buf, from_start=start == 0)
        if cut is not None:
            return start + cut, buf[cut:]
        window *= 4


def keep_damaged(directory: Path, damaged: Sequence[Damage]) -> Path:
    """Write damaged lines to a new `*.damaged` file (fsynced); OSError on failure."""
    target = directory / QUARANTINE_DIR / f"{_stamp()}-{os.getpid()}.damaged"
    return _write_new_file(target, b"".join(d.raw + b"\n" for d in damaged))


def files(directory: Path) -> tuple[Path, ...]:
    """Files in quarantine."""
    q = directory / QUARANTINE_DIR
    return tuple(sorted(q.iterdir())) if q.is_dir() else ()


def _stamp() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


def _write_new_file(target: Path, data: bytes) -> Path:
    """Write `data` to a new file named `target` (or `target` with `-2`, `-3`, ... before
    its suffix when that name is taken: two quarantines in one second); returns its path."""
    make_private_dir(target.parent)
    n = 1
    while True:
        try:
            durable.create_file(target, data, mode=FILE_MODE)
            return target
        except FileExistsError:
            n += 1
            stem = target.stem if n == 2 else target.stem.rsplit("-", 1)[0]
            target = target.with_name(f"{stem}-{n}{target.suffix}")
