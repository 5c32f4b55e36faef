"""The journal directory: its file names, their modes, and the checks made before using it.

The directory is 0700 and every file in it 0600, whatever the umask; see `journal.store` for
what each file holds. Like ssh with `~/.ssh`, cmdctl refuses a journal directory another user
could write to (owned by someone else, or group- or world-writable) and any of its files that
is a symbolic link or belongs to someone else: whoever can write there can make cmdctl append
to, truncate or chmod a file of their choosing. Only the directory itself and its files are
checked, not its parents (`/tmp/x` or a shared `/srv` stay usable; a parent that another user
may rename things in is that parent's owner's business, as with any file).
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

from cmdctl.core import durable
from cmdctl.core.errors import JournalError
from cmdctl.journal.netfs import is_network_fs, local_filesystem_type

JOURNAL_FILE = "journal.jsonl"
LOCK_FILE = "journal.lock"
DRAIN_LOCK_FILE = "drain.lock"
ARCHIVE_FILE = "archive.jsonl"  # the archive's old layout: one file (see `journal.archive`)
ARCHIVE_DIR = "archive"  # the archive: one file per day (see `journal.archive`)
SNAPSHOT_FILE = "journal.snapshot"
DELTA_FILE = "journal.delta"
QUARANTINE_DIR = "quarantine"

#: Every folder cmdctl keeps in the journal directory.
DIRS = (QUARANTINE_DIR, ARCHIVE_DIR)

#: Every name cmdctl opens in the journal directory (besides temp files, created exclusively).
FILES = (JOURNAL_FILE, LOCK_FILE, DRAIN_LOCK_FILE, ARCHIVE_FILE, SNAPSHOT_FILE, DELTA_FILE)

FILE_MODE = 0o600
DIR_MODE = 0o700

_LOCATION_HINT = "use a directory of your own (--journal DIR or $CMDCTL_HOME)"


def make_private_dir(directory: Path) -> None:
    """Create `directory` (and missing parents) 0700, each new name fsynced; OSError on failure."""
    missing = []
    here = directory
    while not os.path.lexists(here) and here != here.parent:
        missing.append(here)
        here = here.parent
    for new in reversed(missing):
        try:
            os.mkdir(new, DIR_MODE)
        except FileExistsError:
            continue  # another process made it meanwhile
        os.chmod(new, DIR_MODE)  # mkdir's mode is filtered by the umask
        durable.fsync_dir(new.parent)  # so the new directory survives a crash


def ensure_dir(directory: Path) -> None:
    """Create the journal directory (0700) if missing, then `check_dir`; JournalError."""
    if check_dir(directory):
        return
    try:
        make_private_dir(directory)
    except OSError as err:
        raise JournalError(
            f"cannot create journal directory {directory}: {err.strerror or err}",
            hint=_LOCATION_HINT,
        ) from err
    check_dir(directory)


def check_dir(directory: Path) -> bool:
    """False if `directory` does not exist; JournalError if it is unsafe to use or no directory.

    Unsafe: owned by another user, group- or world-writable, or holding a journal file that is
    a symbolic link, not a regular file, or owned by another user.
    """
    try:
        st = os.stat(directory)
    except FileNotFoundError:
        return False
    except NotADirectoryError as err:
        raise JournalError(
            f"journal directory {directory}: a parent of it is not a directory",
            hint=_LOCATION_HINT,
        ) from err
    except OSError as err:
        raise JournalError(
            f"cannot use journal directory {directory}: {err.strerror or err}", hint=_LOCATION_HINT
        ) from err
    if not stat.S_ISDIR(st.st_mode):
        raise JournalError(
            f"journal directory {directory} is not a directory",
            hint="--journal and $CMDCTL_HOME name a directory (created if missing)",
        )
    me = os.geteuid()
    if st.st_uid != me:
        raise JournalError(
            f"journal directory {directory} is owned by uid {st.st_uid}, not by you "
            f"(uid {me}): refusing to trust it",
            hint=f"chown it to yourself, or {_LOCATION_HINT}",
        )
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o022:
        who = " and ".join(w for w, bit in (("group", 0o020), ("others", 0o002)) if mode & bit)
        raise JournalError(
            f"journal directory {directory} has mode {mode:o}: writable by {who}, "
            "refusing to trust it",
            hint=f"chmod 700 {directory}",
        )
    for name in (*FILES, *DIRS):
        _check_member(directory / name, me, want_dir=name in DIRS)
    return True


def _check_member(path: Path, me: int, *, want_dir: bool) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    except OSError as err:
        raise JournalError(f"cannot check {path}: {err.strerror or err}") from err
    if stat.S_ISLNK(st.st_mode):
        raise JournalError(
            f"{path} is a symbolic link: cmdctl never follows links in the journal directory",
            hint="remove the link (who made it?) or move the real file there",
        )
    if want_dir != stat.S_ISDIR(st.st_mode) or not (want_dir or stat.S_ISREG(st.st_mode)):
        kind = "a directory" if want_dir else "a regular file"
        raise JournalError(f"{path} is not {kind}", hint="move it out of the journal directory")
    if st.st_uid != me:
        raise JournalError(
            f"{path} is owned by uid {st.st_uid}, not by you (uid {me}): refusing to use it",
            hint="chown it to yourself, or move it out of the journal directory",
        )


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
