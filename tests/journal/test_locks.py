"""The journal lock and the drain lock between real processes (and threads, and older cmdctls).

The holders are real processes (once, a thread of this one), some of them taking the lock the
way older cmdctls did, through filelock: what is promised is that no two ever hold it at once.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from filelock import FileLock, Timeout

from cmdctl.core.errors import BusyError, JournalError
from cmdctl.journal import store
from cmdctl.journal.ledger import Ledger
from cmdctl.journal.store import Journal

from .builders import queued_batch

# The child holds the journal lock the way every cmdctl writer does: inside `transact`.
CMDCTL_HOLDER = """
import sys
from pathlib import Path
from cmdctl.journal.store import Journal

class Nothing:
    events = ()

def hold(ledger):
    print("held", flush=True)
    sys.stdin.readline()
    return Nothing()

Journal(Path({directory!r})).transact(hold)
"""

# A cmdctl from before `core.lockfile` took its locks through filelock.
FILELOCK_HOLDER = """
import sys
from filelock import FileLock
with FileLock({path!r}, mode=0o600):
    print("held", flush=True)
    sys.stdin.readline()
"""


@contextmanager
def holder(code: str) -> Iterator[subprocess.Popen[str]]:
    """A child process that holds a lock from when this yields until the block ends."""
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "held"
        yield child
    finally:
        if child.poll() is None:
            child.communicate("go\n", timeout=30)


class Nothing:
    events = ()


@pytest.fixture
def short_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store, "LOCK_TIMEOUT_S", 0.3)


def test_a_writer_cannot_append_while_another_process_holds_the_lock(
    journal: Journal, short_wait: None
) -> None:
    journal.append(queued_batch(1))
    before = journal.path.read_bytes()
    with holder(CMDCTL_HOLDER.format(directory=str(journal.directory))):
        began = time.monotonic()
        held = r"journal lock .*journal\.lock still held after 0 s"
        with pytest.raises(JournalError, match=held):
            journal.append(queued_batch(1, batch="B2"))
        assert time.monotonic() - began >= 0.3  # it waited for the holder, then gave up
        assert journal.path.read_bytes() == before
    assert journal.append(queued_batch(1, batch="B2")).events == 1  # released: free again


def test_a_waiting_writer_appends_as_soon_as_the_holder_lets_go(journal: Journal) -> None:
    with holder(CMDCTL_HOLDER.format(directory=str(journal.directory))) as child:
        assert child.stdin is not None
        let_go = threading.Timer(0.4, child.stdin.close)  # the holder's readline returns
        began = time.monotonic()
        let_go.start()
        assert journal.append(queued_batch(2)).events == 2
        waited = time.monotonic() - began
        child.wait(timeout=30)
    assert 0.35 <= waited < 5
    assert len(journal.ledger().entries()) == 2


def test_a_holder_killed_with_sigkill_leaves_the_lock_free(journal: Journal) -> None:
    with holder(CMDCTL_HOLDER.format(directory=str(journal.directory))) as child:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
        began = time.monotonic()
        assert journal.append(queued_batch(1)).events == 1
        assert time.monotonic() - began < 1  # no waiting for a timeout: the kernel let it go


def test_a_filelock_holder_excludes_this_cmdctl(journal: Journal, short_wait: None) -> None:
    journal.append(queued_batch(1))
    lock = str(journal.directory / "journal.lock")
    with (
        holder(FILELOCK_HOLDER.format(path=lock)),
        pytest.raises(JournalError, match="still held after"),
    ):
        journal.append(queued_batch(1, batch="B2"))
    drain_lock = str(journal.directory / "drain.lock")
    with (
        holder(FILELOCK_HOLDER.format(path=drain_lock)),
        pytest.raises(BusyError, match="another drain"),
        journal.try_drain_lock(),
    ):
        pass
    with journal.try_drain_lock():
        pass


def test_this_cmdctl_excludes_a_filelock_user(journal: Journal) -> None:
    journal.append(queued_batch(1))
    lock = journal.directory / "journal.lock"
    with holder(CMDCTL_HOLDER.format(directory=str(journal.directory))), pytest.raises(Timeout):
        FileLock(lock).acquire(timeout=0.2)
    with FileLock(lock).acquire(timeout=5):
        pass


def test_two_threads_of_one_process_exclude_each_other(journal: Journal, short_wait: None) -> None:
    inside, leave = threading.Event(), threading.Event()

    def hold(ledger: Ledger) -> Nothing:
        inside.set()
        leave.wait(30)
        return Nothing()

    first = threading.Thread(target=journal.transact, args=(hold,))
    first.start()
    try:
        assert inside.wait(30)
        with pytest.raises(JournalError, match="still held after"):
            Journal(journal.directory).append(queued_batch(1))
    finally:
        leave.set()
        first.join(30)
    assert Journal(journal.directory).append(queued_batch(1)).events == 1


def test_the_lock_file_stays_and_is_private(journal: Journal) -> None:
    journal.append(queued_batch(1))
    lock = journal.directory / "journal.lock"
    inode = lock.stat().st_ino
    journal.append(queued_batch(1, batch="B2"))
    assert lock.stat().st_ino == inode  # never removed: waiters and holders share one file
    assert lock.stat().st_mode & 0o777 == 0o600
