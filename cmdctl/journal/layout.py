"""The journal directory: its file names, their modes, and the checks made before writing there.

The directory is 0700 and every file in it 0600, whatever the umask; see `journal.store` for
what each file holds.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from cmdctl.core.errors import JournalError
from cmdctl.journal.netfs import is_network_fs, local_filesystem_type

JOURNAL_FILE = "journal.jsonl"
LOCK_FILE = "journal.lock"
DRAIN_LOCK_FILE = "drain.lock"
ARCHIVE_FILE = "archive.jsonl"
SNAPSHOT_FILE = "journal.snapshot"
QUARANTINE_DIR = "quarantine"

FILE_MODE = 0o600
DIR_MODE = 0o700


def make_private_dir(directory: Path) -> None:
    """Create `directory` (and parents) if missing, with mode 0700; OSError on failure."""
    directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    os.chmod(directory, DIR_MODE)  # mkdir's mode is filtered by the umask


def ensure_dir(directory: Path) -> None:
    """Create the journal directory (0700) if missing; JournalError if that fails."""
    try:
        if not directory.is_dir():
            make_private_dir(directory)
    except OSError as err:
        raise JournalError(f"cannot create journal directory {directory}: {err}") from err


def refuse_network_fs(directory: Path, *, allow: bool) -> None:
    """JournalError if `directory` is on a network filesystem, unless `allow`."""
    fstype = filesystem(directory)
    if is_network_fs(fstype) and not allow:
        raise JournalError(
            f"journal directory {directory} is on a network filesystem ({fstype}); "
            "its locks and fsync cannot guarantee that accepted commands are kept",
            hint="use a local directory (--journal DIR or $CMDCTL_HOME)",
        )


def filesystem(directory: Path) -> str | None:
    """The type of the filesystem holding `directory` (None where it cannot be told)."""
    return local_filesystem_type(directory)


def warnings(directory: Path, fstype: str | None) -> list[str]:
    """What is wrong with the directory but not corruption: a network fs, modes too open."""
    out = []
    if is_network_fs(fstype):
        out.append(f"journal is on a network filesystem ({fstype})")
    for path, want in ((directory, DIR_MODE), (directory / JOURNAL_FILE, FILE_MODE)):
        with contextlib.suppress(FileNotFoundError):
            mode = path.stat().st_mode & 0o777
            if mode & ~want:
                out.append(f"{path} has mode {mode:o}, expected {want:o}")
    return out
