"""Is the journal directory on a network filesystem? (Its locks and fsync are not to be trusted.)"""

from __future__ import annotations

import os
from pathlib import Path

NETWORK_FILESYSTEMS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "ncpfs",
        "afs",
        "9p",
        "ceph",
        "glusterfs",
        "lustre",
        "gpfs",
        "beegfs",
        "davfs",
        "fuse.sshfs",
        "fuse.s3fs",
        "fuse.rclone",
        "fuse.glusterfs",
        "fuse.davfs2",
        "fuse.cephfs",
    }
)


# -- network filesystems ---------------------------------------------------------------------


def _unescape_mount(text: str) -> str:
    return (text.replace("\\040", " ").replace("\\011", "\t").replace("\\012", "\n")).replace(
        "\\134", "\\"
    )


def filesystem_type(path: Path, mountinfo: str) -> str | None:
    """The type of the filesystem holding `path`, from /proc/self/mountinfo text."""
    target = os.path.realpath(path)
    best: tuple[int, str] | None = None
    for row in mountinfo.splitlines():
        left, sep, right = row.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5 or not right.split():
            continue
        mount = _unescape_mount(fields[4])
        inside = target == mount or target.startswith(mount.rstrip("/") + "/")
        if inside and (best is None or len(mount) >= best[0]):
            best = (len(mount), right.split()[0])
    return None if best is None else best[1]


def is_network_fs(fstype: str | None) -> bool:
    """True for filesystems where locks and fsync cannot be trusted."""
    return fstype is not None and fstype in NETWORK_FILESYSTEMS


def local_filesystem_type(path: Path) -> str | None:
    try:
        text = Path("/proc/self/mountinfo").read_text()
    except OSError:
        return None  # not Linux: nothing to check against
    return filesystem_type(path, text)
