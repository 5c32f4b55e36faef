"""durable: short writes are looped, replaced files are whole, modes are as asked, no temp left."""

from __future__ import annotations

import errno
import os
import select
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from cmdctl.core import durable


@pytest.fixture
def tight_umask() -> Iterator[None]:
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def test_write_all_loops_over_short_writes(tmp_path: Path) -> None:
    data = bytes(range(256)) * 40
    sizes: list[int] = []

    def dribble(fd: int, view: memoryview) -> int:  # a write that never takes more than 7 bytes
        n = os.write(fd, view[:7])
        sizes.append(n)
        return n

    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        durable.write_all(fd, data, write=dribble)
    finally:
        os.close(fd)
    assert (tmp_path / "f").read_bytes() == data
    assert len(sizes) == -(-len(data) // 7)


def test_write_all_into_a_pipe_delivers_every_byte() -> None:
    data = os.urandom(1 << 20)  # far beyond a pipe's buffer: a non-blocking write takes a part
    r, w = os.pipe()
    os.set_blocking(w, False)
    got = bytearray()
    taken: list[int] = []

    def drain() -> None:
        while chunk := os.read(r, 1 << 16):
            got.extend(chunk)

    def write_when_ready(fd: int, view: memoryview) -> int:
        while True:
            try:
                taken.append(os.write(fd, view))
                return taken[-1]
            except BlockingIOError:
                select.select([], [fd], [], 5.0)

    reader = threading.Thread(target=drain)
    reader.start()
    try:
        durable.write_all(w, data, write=write_when_ready)
    finally:
        os.close(w)
        reader.join(timeout=10)
        os.close(r)
    assert bytes(got) == data
    assert len(taken) > 1 and min(taken) < len(data)  # there were short writes, and looped


def test_write_all_refuses_a_write_that_makes_no_progress() -> None:
    with pytest.raises(OSError) as err:
        durable.write_all(-1, b"abc", write=lambda fd, view: 0)
    assert err.value.errno == errno.EIO


def test_replace_file_is_whole_with_the_mode_asked_and_leaves_no_temp(
    tmp_path: Path, tight_umask: None
) -> None:
    target = tmp_path / "node.prom"
    target.write_bytes(b"old")
    data = b"x" * (3 << 20)
    durable.replace_file(target, data, mode=0o644)
    assert target.read_bytes() == data
    assert target.stat().st_mode & 0o777 == 0o644  # not filtered by the umask
    assert [p.name for p in tmp_path.iterdir()] == ["node.prom"]
    durable.replace_file(target, b"cache", mode=0o600, sync=False)
    assert target.read_bytes() == b"cache"
    assert target.stat().st_mode & 0o777 == 0o600


def test_the_temp_name_cannot_be_mistaken_for_the_target(tmp_path: Path) -> None:
    tmp = durable.temp_name(tmp_path / "cmdctl.prom")
    assert tmp.parent == tmp_path
    assert tmp.name.startswith(".") and tmp.suffix == ".tmp"
    assert not tmp.name.endswith(".prom")


def test_replace_file_failing_leaves_the_target_and_no_temp(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "journal.jsonl"
    target.write_bytes(b"old\n")

    def no_fsync(fd: int) -> None:
        raise OSError(errno.EIO, "fsync failed")

    monkeypatch.setattr(os, "fsync", no_fsync)
    with pytest.raises(OSError, match="fsync failed"):
        durable.replace_file(target, b"new\n", mode=0o600)
    monkeypatch.undo()
    assert target.read_bytes() == b"old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["journal.jsonl"]


def test_replace_file_failing_to_rename_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "occupied"
    (target / "inside").mkdir(parents=True)  # a non-empty directory cannot be replaced
    with pytest.raises(OSError):
        durable.replace_file(target, b"data", mode=0o600)
    assert [p.name for p in tmp_path.iterdir()] == ["occupied"]


def test_append_file_appends_with_the_mode_asked(tmp_path: Path, tight_umask: None) -> None:
    path = tmp_path / "archive.jsonl"
    durable.append_file(path, b"a\n", mode=0o640)
    os.chmod(path, 0o666)  # someone loosened it: the next append puts it back
    durable.append_file(path, b"b\n", mode=0o640, sync=False)
    assert path.read_bytes() == b"a\nb\n"
    assert path.stat().st_mode & 0o777 == 0o640


def test_open_append_readable_can_read_back(tmp_path: Path) -> None:
    path = tmp_path / "j"
    fd = durable.open_append(path, mode=0o600, readable=True)
    try:
        durable.append(fd, b"hello")
        assert os.pread(fd, 5, 0) == b"hello"
    finally:
        os.close(fd)


def test_create_file_never_overwrites_and_cleans_up_a_failed_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tight_umask: None
) -> None:
    path = tmp_path / "q.torn"
    durable.create_file(path, b"tail", mode=0o600)
    assert path.read_bytes() == b"tail"
    with pytest.raises(FileExistsError):
        durable.create_file(path, b"other", mode=0o600)
    assert path.read_bytes() == b"tail"

    def full(fd: int, view: memoryview) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OSError, match="No space"):
        durable.create_file(tmp_path / "second.torn", b"tail", mode=0o600)
    monkeypatch.undo()
    assert [p.name for p in tmp_path.iterdir()] == ["q.torn"]


def test_fsync_dir_wants_a_directory(tmp_path: Path) -> None:
    durable.fsync_dir(tmp_path)
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(NotADirectoryError):
        durable.fsync_dir(tmp_path / "f")
