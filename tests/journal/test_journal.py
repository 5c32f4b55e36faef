"""The journal on disk: append, torn tails, damage, compaction, modes, failures, snapshots."""

from __future__ import annotations

import errno
import os
import resource
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cmdctl.core.errors import BusyError, JournalError
from cmdctl.core.model import Entry, State
from cmdctl.journal import archive, framing, layout, snapshot
from cmdctl.journal import events as ev
from cmdctl.journal.framing import frame, scan_bytes
from cmdctl.journal.netfs import filesystem_type, is_network_fs
from cmdctl.journal.store import Journal

from .builders import entry, queued_batch


def lines(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")


@pytest.fixture
def open_umask() -> Iterator[None]:
    old = os.umask(0)
    try:
        yield
    finally:
        os.umask(old)


def test_append_then_read_returns_every_event(journal: Journal) -> None:
    first, second = queued_batch(3), [ev.cancelled("X", 5.0, who="bob")]
    report = journal.append(first)
    assert (report.events, report.repairs) == (3, ())
    journal.append(second)
    assert list(journal.events()) == first + second
    scan, ledger = journal.load()
    assert scan.committed == 4 and not scan.damaged
    assert [p.reason for p in ledger.problems] == ["event for an unknown id"]
    assert [e.id for e in ledger.entries()] == sorted(e.id for e in first)
    assert journal.append([]).events == 0


def test_modes_are_private_even_with_an_open_umask(
    journal: Journal, open_umask: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshot, "SNAPSHOT_AFTER_BYTES", 0)
    journal.append(queued_batch(2))
    with journal.path.open("ab") as f:
        f.write(b'{"t":"torn')
    journal.append([ev.done(ev.queued(entry()).id, 1.0, outcome="confirmed", duration=1)])
    done_id = next(iter(journal.ledger().ids()))
    journal.append([ev.done(done_id, 1.0, outcome="confirmed", duration=1)])
    journal.compact(keep_seconds=10, now=1000.0)
    journal.load()  # writes a snapshot
    d = journal.directory
    with journal.try_drain_lock():
        pass
    names = {p.name for p in d.iterdir()}
    assert {"journal.jsonl", "journal.lock", "drain.lock"} <= names
    assert {"quarantine", "journal.snapshot", "archive"} <= names
    assert [p.name for p in (d / "archive").iterdir()] == ["1970-01-01.jsonl"]
    assert d.stat().st_mode & 0o777 == 0o700
    assert (d / "quarantine").stat().st_mode & 0o777 == 0o700
    assert (d / "archive").stat().st_mode & 0o777 == 0o700
    for p in [*d.iterdir(), *(d / "quarantine").iterdir(), *(d / "archive").iterdir()]:
        if p.is_file():
            assert p.stat().st_mode & 0o777 == 0o600, p


def test_torn_last_line_is_quarantined_and_never_glued(journal: Journal) -> None:
    journal.append(queued_batch(2))
    intact = journal.path.read_bytes()
    torn = frame([ev.encode(queued_batch(1)[0])])[:57]
    with journal.path.open("ab") as f:
        f.write(torn)

    scan, ledger = journal.load()  # readers: not visible, not damage
    assert (scan.torn, scan.damaged, len(ledger)) == (57, [], 2)
    report = journal.verify()
    assert report.ok and report.torn == 57
    assert any("torn tail" in w for w in report.warnings)

    nxt = queued_batch(3, batch="B2")
    result = journal.append(nxt)
    [repair] = result.repairs
    assert (repair.offset, repair.size, repair.lines) == (len(intact), 57, 0)
    assert repair.path.read_bytes() == torn
    assert journal.path.read_bytes().startswith(intact)
    assert all(framing._more(line) for line in lines(journal.path)[:-1])
    scan, ledger = journal.load()
    assert not scan.damaged and scan.torn == 0
    assert ledger.batches()["B2"].total == 3
    assert journal.verify().quarantined == (repair.path,)


def test_complete_lines_of_an_unfinished_append_are_quarantined(journal: Journal) -> None:
    journal.append(queued_batch(1))
    batch = frame(ev.encode_many(queued_batch(3, batch="B9")))
    two_lines = b"".join(line + b"\n" for line in batch.split(b"\n")[:2])
    with journal.path.open("ab") as f:
        f.write(two_lines)
    scan, ledger = journal.load()
    assert (scan.uncommitted, scan.damaged, len(ledger)) == (2, [], 1)
    [repair] = journal.repair()
    assert (repair.lines, repair.path.read_bytes()) == (2, two_lines)
    assert "B9" not in journal.ledger().batches()
    assert journal.repair() == ()


def test_garbage_line_in_the_middle_is_reported_and_skipped(journal: Journal) -> None:
    journal.append(queued_batch(2))
    with journal.path.open("ab") as f:
        f.write(b"this is not a journal line\n")
    journal.append(queued_batch(1, batch="B2"))
    # Flip one character inside the first line: its checksum no longer matches.
    data = bytearray(journal.path.read_bytes())
    data[data.index(b"tv-0")] = ord("T")
    journal.path.write_bytes(bytes(data))

    scan, ledger = journal.load()
    assert [(d.line, d.reason.split(" ")[0]) for d in scan.damaged] == [
        (1, "damaged"),
        (3, "damaged"),
    ]
    assert len(ledger) == 2  # line 2 and line 4
    report = journal.verify()
    assert not report.ok
    assert [d.line for d in report.damaged] == [1, 3]
    # The next append is unaffected by damage in the middle.
    journal.append(queued_batch(1, batch="B3"))
    assert "B3" in journal.ledger().batches()


def test_broken_off_append_in_the_middle_is_damage(journal: Journal) -> None:
    batch = frame(ev.encode_many(queued_batch(3)))
    first_two = b"".join(line + b"\n" for line in batch.split(b"\n")[:2])
    journal.directory.mkdir(parents=True)
    journal.path.write_bytes(first_two + frame([ev.encode(queued_batch(1, "B2")[0])]))
    scan = scan_bytes(journal.path.read_bytes())
    assert [d.line for d in scan.damaged] == [1, 2]
    assert scan.committed == 1


def test_compact_keeps_live_and_young_archives_old(journal: Journal) -> None:
    live, young, old, old_cancel, running = (entry(created=10.0) for _ in range(5))
    journal.append([ev.queued(e) for e in (live, young, old, old_cancel, running)])
    journal.append(
        [
            ev.started(young.id, 900.0, attempt=1, run="r"),
            ev.done(young.id, 950.0, outcome="confirmed", duration=1.0),
            ev.started(old.id, 20.0, attempt=1, run="r"),
            ev.done(old.id, 30.0, outcome="delivered", duration=1.0),
            ev.cancelled(old_cancel.id, 40.0, who="bob"),
            ev.started(running.id, 41.0, attempt=1, run="r"),
            ev.done("NOSUCHID", 42.0, outcome="confirmed", duration=1.0),
        ]
    )
    before = journal.ledger()
    report = journal.compact(keep_seconds=100.0, now=1000.0)
    assert (report.kept_entries, report.archived_entries) == (3, 2)
    assert (report.kept_lines, report.archived_lines) == (6, 6)  # 5 + orphan event archived
    after = journal.ledger()
    assert sorted(after.ids()) == sorted([live.id, young.id, running.id])
    for entry_id in after.ids():
        assert after.get(entry_id) == before.get(entry_id)
    archived = {ev.decode(line).id for line in archive.read_all(journal.directory)[0]}
    assert archived == {old.id, old_cancel.id, "NOSUCHID"}
    assert journal.verify().ok
    # Compacting again archives nothing more; appends continue normally.
    assert journal.compact(keep_seconds=100.0, now=1000.0).archived_entries == 0
    journal.append([ev.done(live.id, 1001.0, outcome="confirmed", duration=1.0)])
    assert journal.ledger().state(live.id) is State.DONE


def test_compact_quarantines_damage_instead_of_dropping_it(journal: Journal) -> None:
    journal.append(queued_batch(1))
    with journal.path.open("ab") as f:
        f.write(b"garbage\n")
    report = journal.compact(keep_seconds=0.0, now=0.0)
    assert report.quarantined_lines == 1
    [q] = [p for p in journal.quarantined() if p.suffix == ".damaged"]
    assert q.read_bytes() == b"garbage\n"
    assert journal.verify().ok


def test_reader_of_the_old_file_survives_compaction(journal: Journal) -> None:
    e = entry()
    journal.append([ev.queued(e), ev.cancelled(e.id, 1.0, who="bob")])
    journal.append(queued_batch(1))
    _, ledger = journal.load()  # holds positions into the file it read
    journal.compact(keep_seconds=0.0, now=10_000.0)
    assert e.id not in journal.ledger()
    assert ledger.get(e.id).state is State.CANCELLED


def test_failed_write_is_not_accepted_and_leaves_the_file_unchanged(journal: Journal) -> None:
    journal.append(queued_batch(5))
    before = journal.path.read_bytes()
    # A real short write: a file size limit just past the current end (SIGXFSZ ignored, so
    # write() returns a short count and then EFBIG).
    code = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from driver import batch_events
        from cmdctl.core.errors import JournalError
        from cmdctl.journal.store import Journal
        try:
            Journal(Path({str(journal.directory)!r})).append(batch_events(500, "x")[1])
        except JournalError as err:
            print(err)
            sys.exit(err.exit_code)
        """
    )
    limit = len(before) + 4096

    def limit_file_size() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = subprocess.run(
        [sys.executable, "-c", code],
        preexec_fn=limit_file_size,
        # Under the limit, a module it compiled would be cached as a cut-off .pyc (the import
        # system writes it in one unchecked write) and break every later import of it.
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 3, done.stderr
    assert "nothing accepted" in done.stdout and "File too large" in done.stdout
    assert journal.path.read_bytes() == before
    assert journal.verify().ok


def test_write_to_a_full_device_raises_journal_error(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    journal.append(queued_batch(1))
    before = journal.path.read_bytes()

    def full(fd: int, data: bytes | memoryview) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")

    # A symlink to /dev/full is refused now (never followed), so the disk fills up in os.write.
    monkeypatch.setattr(os, "write", full)
    with pytest.raises(JournalError, match=r"nothing accepted.*No space left"):
        journal.append(queued_batch(2))
    monkeypatch.undo()
    assert journal.path.read_bytes() == before


def test_a_directory_under_a_file_is_a_clear_journal_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(JournalError, match="a parent of it is not a directory"):
        Journal(blocker / "j").append(queued_batch(1))


def test_unwritable_directory_raises_journal_error() -> None:
    # /proc refuses mkdir even for root, which ignores directory modes.
    with pytest.raises(JournalError, match="cannot create journal directory"):
        Journal(Path("/proc/cmdctl-test/j")).append(queued_batch(1))


def test_drain_lock_is_busy_while_another_process_holds_it(journal: Journal) -> None:
    code = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from cmdctl.journal.store import Journal
        with Journal(Path({str(journal.directory)!r})).try_drain_lock():
            print("held", flush=True)
            sys.stdin.readline()
        """
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(BusyError, match="another drain"), journal.try_drain_lock():
            pass
    finally:
        holder.communicate("go\n", timeout=30)
    with journal.try_drain_lock():
        pass


MOUNTINFO = textwrap.dedent(
    """\
    22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
    40 22 0:35 / /mnt/nas rw,relatime shared:20 - nfs4 nas:/export rw,vers=4.2
    41 40 0:36 / /mnt/nas/local\\040disk rw shared:21 - ext4 /dev/sdb1 rw
    42 22 0:37 / /srv/share rw - cifs //server/share rw
    43 22 0:38 / /home/u/remote rw - fuse.sshfs u@h:/ rw
    """
)


@pytest.mark.parametrize(
    ("path", "fstype", "network"),
    [
        ("/home/u/.local/state/cmdctl", "ext4", False),
        ("/mnt/nas/cmdctl", "nfs4", True),
        ("/mnt/nasty", "ext4", False),
        ("/mnt/nas/local disk/cmdctl", "ext4", False),
        ("/srv/share", "cifs", True),
        ("/home/u/remote/x", "fuse.sshfs", True),
    ],
)
def test_network_filesystems_are_detected(path: str, fstype: str, network: bool) -> None:
    assert filesystem_type(Path(path), MOUNTINFO) == fstype
    assert is_network_fs(fstype) is network


def test_snapshot_is_used_validated_and_refreshed(
    journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshot, "SNAPSHOT_AFTER_BYTES", 0)
    first = queued_batch(20)
    journal.append(first)
    journal.append([ev.started(first[0].id, 1.0, attempt=1, run="r")])
    with journal.path.open("ab") as f:
        f.write(b"garbage\n")
    journal.append([ev.done(first[0].id, 2.0, outcome="confirmed", duration=1.0)])
    scan, _ = journal.load()  # no snapshot yet: writes one
    # The appends' delta records stand in for reading their lines; the line written behind
    # the journal's back breaks the chain, so it and what follows are read and checked.
    assert scan.start > 0 and [d.line for d in scan.damaged] == [22] and scan.committed == 22
    snap_file = journal.directory / "journal.snapshot"
    assert snap_file.exists()

    journal.append([ev.cancelled(first[1].id, 3.0, who="bob"), *queued_batch(2, "B2")])
    scan, ledger = journal.load()
    assert scan.start > 0 and scan.committed == 25 and [d.line for d in scan.damaged] == [22]
    reference = Ledger_entries(journal)
    assert [ledger.get(i) for i in ledger.ids()] == reference
    assert ledger.get(first[0].id).state is State.DONE  # a record read back from the prefix

    # A damaged snapshot is ignored.
    blob = bytearray(snap_file.read_bytes())
    blob[-5] ^= 0xFF
    snap_file.write_bytes(bytes(blob))
    scan, ledger = journal.load()
    assert scan.start == 0 and [ledger.get(i) for i in ledger.ids()] == reference

    # A journal cut back and regrown past the snapshot's offset is not mistaken for the same.
    scan, _ = journal.load()
    assert snap_file.exists()
    data = journal.path.read_bytes()
    journal.path.write_bytes(data[: len(data) // 2].rsplit(b"\n", 2)[0] + b"\n")
    monkeypatch.setattr(snapshot, "SNAPSHOT_AFTER_BYTES", 1 << 40)
    journal.append(queued_batch(30, "B3"))
    scan, ledger = journal.load()
    assert scan.committed == len(journal.read().lines)  # not the snapshot's count
    assert [ledger.get(i) for i in ledger.ids()] == Ledger_entries(journal)

    # Compaction makes a new file: the old snapshot no longer applies, compaction writes one
    # for the new file, and a stale copy of the old one is refused.
    monkeypatch.setattr(snapshot, "SNAPSHOT_AFTER_BYTES", 0)
    journal.load()
    stale = snap_file.read_bytes()
    journal.compact(keep_seconds=0.0, now=1e9)
    scan, ledger = journal.load()
    assert scan.start == journal.path.stat().st_size > 0
    assert [ledger.get(i) for i in ledger.ids()] == Ledger_entries(journal)
    snap_file.write_bytes(stale)
    scan, ledger = journal.load()
    assert scan.start == 0
    assert [ledger.get(i) for i in ledger.ids()] == Ledger_entries(journal)


def Ledger_entries(journal: Journal) -> list[Entry]:
    """The entries from a full decode of every line (no snapshot, no lazy path)."""
    from cmdctl.journal.ledger import Ledger

    ledger = Ledger.from_events(journal.events())
    return [ledger.get(i) for i in ledger.ids()]


def test_empty_and_missing_journals(journal: Journal) -> None:
    scan, ledger = journal.load()
    assert (scan.committed, len(ledger)) == (0, 0)
    assert journal.repair() == ()
    assert journal.compact(keep_seconds=1.0, now=1.0).kept_entries == 0
    assert journal.verify().ok


def _appends(*sizes: int) -> list[list[bytes]]:
    """Framed lines (no newlines) of appends of the given sizes."""
    out = []
    for n in sizes:
        out.append(frame(ev.encode_many(queued_batch(n, batch=f"B{len(out)}"))).split(b"\n")[:-1])
    return out


def test_a_damaged_line_inside_a_committed_append_costs_only_that_line() -> None:
    a, b = _appends(3, 2)
    data = b"\n".join([a[0], b"xx" + a[1], a[2], *b]) + b"\n"
    scan = scan_bytes(data)
    assert [(d.line, d.reason.startswith("damaged")) for d in scan.damaged] == [(2, True)]
    assert scan.lines == [a[0], a[2], *b]
    assert scan.numbers == [1, 3, 4, 5]
    assert scan.offsets == [0, len(a[0]) + len(a[1]) + 4, *scan.offsets[2:]]


def test_a_later_append_never_completes_an_earlier_broken_one() -> None:
    a, b, c = _appends(3, 1, 3)
    data = b"\n".join([a[0], a[1], *b, c[0], c[1], c[2]]) + b"\n"
    scan = scan_bytes(data)
    assert [d.line for d in scan.damaged] == [1, 2]
    assert scan.lines == [*b, *c]


def test_an_append_in_progress_is_invisible_not_damage() -> None:
    a, b = _appends(1, 4)
    data = b"\n".join([*a, b[0], b[1]]) + b"\n" + b[2][:10]
    scan = scan_bytes(data)
    assert (scan.lines, scan.damaged, scan.uncommitted, scan.torn) == (a, [], 2, 10)
    assert scan.end == len(a[0]) + 1


def test_writes_refuse_a_network_filesystem(
    journal: Journal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The mount table is the machine's; pretend the journal directory sits on NFS.
    monkeypatch.setattr(layout, "local_filesystem_type", lambda path: "nfs4")
    with pytest.raises(JournalError, match=r"network filesystem \(nfs4\)") as err:
        journal.append(queued_batch(1))
    assert err.value.hint and "local directory" in err.value.hint
    assert not journal.path.exists()
    allowed = Journal(journal.directory, allow_network_fs=True)
    allowed.append(queued_batch(1))
    assert any("network filesystem" in w for w in allowed.verify().warnings)


def test_this_machine_mountinfo_is_understood(tmp_path: Path) -> None:
    text = Path("/proc/self/mountinfo").read_text() if Path("/proc/self/mountinfo").exists() else ""
    if not text:
        pytest.skip("no /proc/self/mountinfo")
    # Some mount always contains the path ("/"), so only the exact type shows the longest
    # matching mount point was chosen; util-linux's findmnt answers the same question.
    findmnt = shutil.which("findmnt")
    if findmnt is None:
        pytest.skip("no findmnt to compare with")
    # /proc and /dev are mounts below "/" (and tmp_path may be on "/" itself).
    for path in [tmp_path, *(p for p in (Path("/proc/self"), Path("/dev")) if p.exists())]:
        want = subprocess.run(
            [findmnt, "-n", "-o", "FSTYPE", "-T", str(path)],
            capture_output=True, text=True, check=True, timeout=10,
        ).stdout.strip()
        assert filesystem_type(path, text) == want, path


_sizes = st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=6)


def _build(sizes: list[int]) -> tuple[list[list[bytes]], bytes]:
    appends = [
        frame(ev.encode_many(queued_batch(n, batch=f"B{i}"))).split(b"\n")[:-1]
        for i, n in enumerate(sizes)
    ]
    return appends, b"".join(line + b"\n" for a in appends for line in a)


@settings(max_examples=150, deadline=None)
@given(_sizes, st.data())
def test_any_crash_point_shows_exactly_the_appends_completed_before_it(
    sizes: list[int], data: st.DataObject
) -> None:
    appends, blob = _build(sizes)
    cut = data.draw(st.integers(min_value=0, max_value=len(blob)))
    complete, done_at = [], 0
    for a in appends:
        size = sum(len(line) + 1 for line in a)
        if done_at + size > cut:
            break
        complete.extend(a)
        done_at += size
    scan = scan_bytes(blob[:cut])
    assert scan.lines == complete and scan.damaged == []
    assert scan.end == done_at
    assert framing.committed_end(blob[:cut], from_start=True) == done_at


@settings(max_examples=150, deadline=None)
@given(_sizes, st.data())
def test_a_garbage_line_anywhere_costs_exactly_that_line(
    sizes: list[int], data: st.DataObject
) -> None:
    appends, _ = _build(sizes)
    flat = [line for a in appends for line in a]
    bad = data.draw(st.integers(min_value=0, max_value=len(flat) - 1))
    garbage = data.draw(st.sampled_from([b"", b"garbage", flat[bad][:-3], b"x" + flat[bad]]))
    damaged = [*flat[:bad], garbage, *flat[bad + 1 :]]
    scan = scan_bytes(b"".join(line + b"\n" for line in damaged))
    assert scan.lines == flat[:bad] + flat[bad + 1 :]
    assert [d.line for d in scan.damaged] == [bad + 1]


def test_two_quarantines_in_the_same_second_both_keep_their_lines(journal: Journal) -> None:
    journal.append(queued_batch(1))
    for n in (1, 2, 3):
        with journal.path.open("ab") as f:
            f.write(b"garbage %d\n" % n)
        assert journal.compact(keep_seconds=0.0, now=0.0).quarantined_lines == 1
    kept = sorted(p.read_bytes() for p in journal.quarantined() if p.suffix == ".damaged")
    assert kept == [b"garbage 1\n", b"garbage 2\n", b"garbage 3\n"]
