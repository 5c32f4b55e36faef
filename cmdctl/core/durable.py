"""Writing bytes so they survive: every byte written, fsynced, and the directory entry synced.

The one place that loops over `os.write` (a write may be short: a signal, a file-size limit, a
full disk) and knows what must be fsynced for a rename or a new file to survive a crash. Errors
are raised as the `OSError` they are; callers say what failed in their own words.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Callable, Iterable
from pathlib import Path

#: How `write_all` writes (default `os.write`); tests pass one that writes short.
Write = Callable[[int, memoryview], int]

# Never through a symbolic link: whoever planted one would choose the file cmdctl appends to,
# truncates or chmods (ELOOP instead). The journal directory is checked too (`layout`).
NOFOLLOW = os.O_NOFOLLOW | os.O_CLOEXEC
_APPEND = os.O_WRONLY | os.O_APPEND | NOFOLLOW
_APPEND_READ = os.O_RDWR | os.O_APPEND | NOFOLLOW
_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW


#: Bytes per write(2). A 64 MB snapshot written in one call took 0.4-0.7 s here, in 1 MiB calls
#: a fraction of that (`queue ls` on a million entries, first run: 1.86 -> 1.48 s, medians).
_WRITE_CHUNK = 1 << 20


def write_all(fd: int, data: bytes, *, write: Write | None = None) -> None:
    """Write every byte of `data` to `fd`, looping over short writes; OSError on failure."""
    write = write or os.write
    view = memoryview(data)
    while view:
        n = write(fd, view[:_WRITE_CHUNK])
        if n <= 0:
            raise OSError(errno.EIO, "write made no progress")
        view = view[n:]


def read_file(path: Path) -> bytes:
    """The whole content of the file `path`, never through a symbolic link; OSError."""
    fd = os.open(path, os.O_RDONLY | NOFOLLOW)
    try:
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    finally:
        os.close(fd)


def append(fd: int, data: bytes, *, sync: bool = True) -> None:
    """Write all of `data` to `fd` where it stands (O_APPEND: at the end); then fsync if `sync`."""
    write_all(fd, data)
    if sync:
        os.fsync(fd)


def open_append(path: Path, *, mode: int, readable: bool = False) -> int:
    """Open `path` for appending, its permission bits set to `mode`.

    Created if missing, and then its directory is fsynced, so that what is appended and
    fsynced later does not vanish with the file's name in a crash.
    """
    flags = _APPEND_READ if readable else _APPEND
    created = False
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        try:
            fd = os.open(path, flags | os.O_CREAT | os.O_EXCL, mode)
            created = True
        except FileExistsError:  # another writer created it meanwhile
            fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid():  # a hard link to someone else's file: leave it alone
            raise OSError(errno.EPERM, f"owned by uid {st.st_uid}, not by this user", str(path))
        if st.st_mode & 0o777 != mode:
            os.fchmod(fd, mode)  # the umask filtered os.open's mode, or it was changed since
        if created:
            fsync_dir(path.parent)
    except OSError:
        os.close(fd)
        raise
    return fd


def append_file(path: Path, data: bytes, *, mode: int, sync: bool = True) -> None:
    """Append `data` to the file `path`; with `sync`, fsync it and its directory."""
    fd = open_append(path, mode=mode)
    try:
        append(fd, data, sync=sync)
    finally:
        os.close(fd)
    if sync:
        fsync_dir(path.parent)


def create_file(path: Path, data: bytes, *, mode: int) -> None:
    """Write `data` to a new file `path` (FileExistsError if taken), fsync it and its directory.

    On failure after creating it, the partial file is removed again.
    """
    fd = os.open(path, _NEW, mode)
    try:
        try:
            os.fchmod(fd, mode)
            append(fd, data)
        finally:
            os.close(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise
    fsync_dir(path.parent)


def temp_name(path: Path) -> Path:
    """The temporary file `replace_file` writes before renaming it to `path`.

    Hidden, and ending in `.tmp` rather than `path`'s suffix, so nothing that picks files by
    name (node_exporter's `*.prom`, a `*.jsonl` glob) mistakes it for the target.
    """
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def replace_file(path: Path, data: bytes, *, mode: int, sync: bool = True) -> None:
    """Atomically replace `path` with `data`: temp file in the same directory, then rename.

    With `sync` the temp file is fsynced before the rename and the directory after it, so a
    crash leaves either the old content or the new, never a mix; without (a cache that checks
    itself) neither is. On failure the temp file is removed and `path` is untouched.
    """
    tmp = temp_name(path)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | NOFOLLOW, mode)
        try:
            os.fchmod(fd, mode)
            append(fd, data, sync=sync)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if sync:
        fsync_dir(path.parent)


def truncate_file(path: Path, size: int) -> None:
    """Cut the file `path` back to `size` bytes and fsync it (never through a link); OSError."""
    fd = os.open(path, os.O_WRONLY | NOFOLLOW)
    try:
        os.ftruncate(fd, size)
        os.fsync(fd)
    finally:
        os.close(fd)


def remove_files(directory: Path, names: Iterable[str]) -> int:
    """Remove the files `names` in `directory` (missing ones skipped), then fsync `directory`
    once so the removals survive a crash; returns how many were removed; OSError."""
    removed = 0
    for name in names:
        try:
            os.unlink(directory / name)
        except FileNotFoundError:
            continue
        removed += 1
    fsync_dir(directory)
    return removed


def fsync_dir(directory: Path) -> None:
    """fsync `directory`, so the names created, renamed or removed in it survive a crash."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
