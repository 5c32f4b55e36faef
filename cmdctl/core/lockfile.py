"""Exclusive locks between processes: `flock` on a lock file that stays in place.

The journal's writers and the drain take these (`cmdctl.journal.store`). A lock is held by an
open descriptor of the file: the kernel releases it when the descriptor is closed, so a holder
killed with SIGKILL leaves nothing behind. Each `acquire` opens its own descriptor, so two
threads of one process exclude each other as two processes do; it is not reentrant.

This is the lock `filelock`'s `UnixFileLock` takes (cmdctl took it through filelock before;
importing filelock cost ~15 ms in every writing command): `flock(LOCK_EX | LOCK_NB)` on the
same file, retried every 50 ms until the timeout, the file never removed, so waiters and holders
always share one inode. A cmdctl that still takes the lock through filelock and this one
exclude each other.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import time
from pathlib import Path

from cmdctl.core.durable import NOFOLLOW

#: Seconds between two attempts while another process holds the lock (filelock's default).
POLL_S = 0.05

# Some file systems report a held lock as EACCES rather than EWOULDBLOCK (= EAGAIN on Linux).
_HELD = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.EACCES})


def acquire(path: Path, *, mode: int, timeout: float) -> int | None:
    """Take the exclusive lock on `path`; the descriptor that holds it (give it to `release`).

    None if another process still held it after `timeout` seconds (0: a single attempt).
    The file is created with permission bits `mode` if missing, never through a symbolic link;
    OSError if it cannot be opened or locked.
    """
    deadline = time.monotonic() + timeout
    while True:
        fd = _try(path, mode)
        if fd is not None:
            return fd
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        time.sleep(min(POLL_S, left))


def release(fd: int) -> None:
    """Give the lock up and close its descriptor."""
    try:
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _try(path: Path, mode: int) -> int | None:
    """One attempt: the locked descriptor, or None if another process holds the lock."""
    fd = _open(path, mode)
    if fd is None:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        os.close(fd)
        if err.errno in _HELD:
            return None
        raise
    try:
        if os.fstat(fd).st_nlink == 0:  # removed while we waited: a lock nobody else would see
            os.close(fd)
            return None
    except BaseException:
        os.close(fd)
        raise
    return fd


def _open(path: Path, mode: int) -> int | None:
    """A descriptor of the lock file, created with `mode` if missing; None if it just vanished."""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | NOFOLLOW, mode)
    except FileExistsError:
        pass
    else:
        with contextlib.suppress(PermissionError):
            os.fchmod(fd, mode)  # exactly `mode`, whatever the umask
        return fd
    try:
        return os.open(path, os.O_RDWR | NOFOLLOW)
    except FileNotFoundError:
        return None  # removed between the two opens: try again
