"""The journal directory trusts nobody else: its owner and mode, links, and a durable creation."""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

import pytest

from cmdctl.core import durable
from cmdctl.core.errors import JournalError
from cmdctl.journal import layout
from cmdctl.journal.store import Journal

from .builders import queued_batch

OTHER_UID = 65534  # nobody


def _used(journal: Journal) -> Journal:
    journal.append(queued_batch(2))
    journal.load()
    return journal


@pytest.mark.parametrize(
    ("mode", "who"),
    [(0o770, "group"), (0o707, "others"), (0o1777, "group and others")],
    ids=["group", "others", "both"],
)
def test_a_directory_others_can_write_is_refused(journal: Journal, mode: int, who: str) -> None:
    _used(journal)
    before = journal.path.read_bytes()
    os.chmod(journal.directory, mode)
    with pytest.raises(JournalError, match=f"writable by {who}, refusing to trust it") as info:
        journal.append(queued_batch(1))
    assert info.value.hint == f"chmod 700 {journal.directory}"
    with pytest.raises(JournalError, match="refusing to trust it"):
        journal.load()  # readers too: they write the snapshot and delta caches
    assert journal.path.read_bytes() == before


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a directory away")
def test_a_directory_owned_by_another_user_is_refused(journal: Journal) -> None:
    _used(journal)
    before = journal.path.read_bytes()
    os.chown(journal.directory, OTHER_UID, -1)
    with pytest.raises(JournalError, match=f"owned by uid {OTHER_UID}, not by you"):
        journal.append(queued_batch(1))
    with pytest.raises(JournalError, match=f"owned by uid {OTHER_UID}"):
        journal.verify()
    assert journal.path.read_bytes() == before


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file away")
def test_a_journal_file_owned_by_another_user_is_refused(journal: Journal) -> None:
    _used(journal)
    os.chown(journal.path, OTHER_UID, -1)
    with pytest.raises(JournalError, match=f"journal.jsonl is owned by uid {OTHER_UID}"):
        journal.append(queued_batch(1))


@pytest.mark.parametrize(
    "name",
    ["journal.jsonl", "journal.lock", "drain.lock", "archive.jsonl", "journal.snapshot",
     "journal.delta"],
)
def test_a_symlink_in_place_of_a_journal_file_is_never_followed(
    journal: Journal, tmp_path: Path, name: str
) -> None:
    _used(journal)
    victim = tmp_path / "victim"
    victim.write_bytes(b"someone else's file\n")
    victim.chmod(0o644)
    link = journal.directory / name
    link.unlink(missing_ok=True)
    link.symlink_to(victim)
    with pytest.raises(JournalError, match=f"{name} is a symbolic link"):
        journal.append(queued_batch(1))
    with pytest.raises(JournalError, match="symbolic link"):
        journal.load()
    assert victim.read_bytes() == b"someone else's file\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644


def test_a_symlink_planted_after_the_check_is_not_followed(tmp_path: Path) -> None:
    """The check and the open are two steps; the open itself refuses links (O_NOFOLLOW)."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"x\n")
    victim.chmod(0o644)
    link = tmp_path / "journal.jsonl"
    link.symlink_to(victim)
    for attempt in (
        lambda: durable.open_append(link, mode=0o600),
        lambda: durable.append_file(link, b"y\n", mode=0o600),
        lambda: durable.read_file(link),
    ):
        with pytest.raises(OSError) as info:
            attempt()
        assert info.value.errno == errno.ELOOP
    assert victim.read_bytes() == b"x\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a file away")
def test_a_hard_link_to_another_users_file_is_not_appended_to(tmp_path: Path) -> None:
    victim = tmp_path / "victim"
    victim.write_bytes(b"x\n")
    os.chown(victim, OTHER_UID, -1)
    link = tmp_path / "journal.jsonl"
    os.link(victim, link)
    with pytest.raises(PermissionError, match=f"owned by uid {OTHER_UID}"):
        durable.append_file(link, b"y\n", mode=0o600)
    assert victim.read_bytes() == b"x\n"


def test_a_quarantine_that_is_not_a_directory_is_refused(journal: Journal) -> None:
    _used(journal)
    (journal.directory / layout.QUARANTINE_DIR).write_text("")
    with pytest.raises(JournalError, match="quarantine is not a directory"):
        journal.append(queued_batch(1))


def test_the_default_location_needs_only_the_directory_itself_to_be_safe(
    tmp_path: Path,
) -> None:
    """Parents are not checked: a world-writable sticky parent (/tmp) is fine."""
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o1777)
    journal = Journal(shared / "cmdctl")
    journal.append(queued_batch(1))
    assert stat.S_IMODE(journal.directory.stat().st_mode) == 0o700
    assert len(journal.ledger()) == 1


def test_creating_the_journal_fsyncs_the_new_names(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The directory, its parent and the new journal file survive a crash after "queued"."""
    synced: list[tuple[int, int]] = []
    real_fsync = os.fsync

    def spy(fd: int) -> None:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            synced.append((st.st_dev, st.st_ino))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy)
    journal.append(queued_batch(1))
    monkeypatch.undo()

    def ident(p: Path) -> tuple[int, int]:
        st = p.stat()
        return (st.st_dev, st.st_ino)

    assert ident(journal.directory) in synced  # journal.jsonl's name is in it
    assert ident(journal.directory.parent) in synced  # so is the new directory's
