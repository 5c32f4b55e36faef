"""`Journal.append_since` and `Claims`: a drain's appends see the cancels made since its read."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import pytest

from cmdctl.core.model import State
from cmdctl.journal import events as ev
from cmdctl.journal.claims import Claims
from cmdctl.journal.framing import Mark
from cmdctl.journal.store import Journal

from .builders import entry


def collect(
    seen: list[bytes], wholes: list[bool] | None = None
) -> Callable[[Sequence[bytes], bool], list[ev.Event]]:
    """A decision that appends nothing and keeps the lines it was shown."""

    def decide(lines: Sequence[bytes], whole: bool) -> list[ev.Event]:
        seen.extend(lines)
        if wholes is not None:
            wholes.append(whole)
        return []

    return decide


def test_append_since_shows_only_what_came_after_the_mark(journal: Journal) -> None:
    a, b = entry(), entry()
    journal.append([ev.queued(a)])
    scan, _ = journal.load()
    journal.append([ev.queued(b)])  # someone else, after our read
    seen: list[bytes] = []
    wholes: list[bool] = []

    def decide(lines: Sequence[bytes], whole: bool) -> list[ev.Event]:
        seen.extend(lines)
        wholes.append(whole)
        return [ev.started(a.id, 5.0, attempt=1, run="r")]

    report, mark = journal.append_since(scan.mark(), decide)
    assert [ev.decode(line).id for line in seen] == [b.id]
    assert wholes == [False]
    assert report.events == 1
    assert mark.offset == journal.path.stat().st_size
    # Nothing new since: the next look sees nothing, and our own append is not shown back.
    seen.clear()
    journal.append_since(mark, decide)
    assert seen == []


def test_append_since_reads_everything_after_a_compaction(journal: Journal) -> None:
    a, b = entry(), entry()
    journal.append([ev.queued(a), ev.queued(b)])
    scan, _ = journal.load()
    journal.compact(keep_seconds=0.0, now=0.0)  # a new file (a new inode) in its place
    seen: list[bytes] = []
    wholes: list[bool] = []
    report, mark = journal.append_since(scan.mark(), collect(seen, wholes))
    assert sorted(ev.decode(line).id for line in seen) == sorted([a.id, b.id])
    assert wholes == [True]
    assert report.events == 0
    assert journal.path.stat().st_ino == mark.file[1]


def test_append_since_a_mark_past_the_end_reads_from_the_start(journal: Journal) -> None:
    a = entry()
    journal.append([ev.queued(a)])
    st = journal.path.stat()
    seen: list[bytes] = []
    wholes: list[bool] = []
    # An append-only file never shrinks: one shorter than the mark is another file.
    mark = journal.load()[0].mark()
    journal.append_since(Mark(mark.file, st.st_size + 999, mark.check), collect(seen, wholes))
    journal.append_since(None, collect(seen, wholes))
    assert len(seen) == 2 and wholes == [True, True]


def test_append_since_does_not_take_a_reused_inode_for_the_file_it_read(
    journal: Journal,
) -> None:
    """ext4 hands a freed inode to the next new file: after two compactions the journal can
    have the (st_dev, st_ino) of the file a drain read, with other bytes in it."""
    a, b, c, d = entry(), entry(), entry(), entry()
    journal.append([ev.queued(a), ev.queued(b)])
    old = journal.load()[0].mark()
    journal.append([ev.cancelled(a.id, 2.0, who="bob")])
    journal.compact(keep_seconds=0.0, now=10.0)  # `a` archived, the file a third shorter
    journal.append([ev.queued(c), ev.queued(d)])
    st = journal.path.stat()
    assert st.st_size >= old.offset, "the test needs the new file to reach the old offset"
    reused = Mark((st.st_dev, st.st_ino), old.offset, old.check)  # what inode reuse makes
    seen: list[bytes] = []
    wholes: list[bool] = []
    _, mark = journal.append_since(reused, collect(seen, wholes))
    assert wholes == [True]
    assert sorted(ev.decode(line).id for line in seen) == sorted([b.id, c.id, d.id])
    # The mark it returns does resume: the next look sees only what came after.
    journal.append([ev.cancelled(b.id, 3.0, who="bob")])
    seen.clear()
    journal.append_since(mark, collect(seen, wholes))
    assert [ev.decode(line).type for line in seen] == [ev.CANCELLED] and wholes[-1] is False


def test_claims_drop_the_events_of_entries_cancelled_since_the_read(journal: Journal) -> None:
    a, b, c = entry(), entry(), entry()
    journal.append([ev.queued(a), ev.queued(b), ev.queued(c)])
    claims = Claims(journal)
    scan, _ = journal.load()
    claims.seen(scan)
    journal.append([ev.cancelled(a.id, 2.0, who="bob"), ev.cancelled(c.id, 2.0, who="bob"),
                    ev.retried(c.id, 3.0, who="bob")])  # c: cancelled, then wanted again
    claims.append([ev.started(x.id, 4.0, attempt=1, run="r") for x in (a, b, c)])
    assert claims.withdrawn == {a.id}
    ledger = journal.ledger()
    assert ledger.state(a.id) is State.CANCELLED
    assert ledger.state(b.id) is State.RUNNING
    assert ledger.state(c.id) is State.RUNNING
    started = [e.id for e in journal.events() if e.type == ev.STARTED]
    assert started == [b.id, c.id]  # nothing written for `a` after its cancel
    # A new read folds the cancel in: the set starts empty again.
    scan, _ = journal.load()
    claims.seen(scan)
    assert claims.withdrawn == set()


def test_claims_with_nothing_withdrawn_append_everything(journal: Journal) -> None:
    a = entry()
    journal.append([ev.queued(a)])
    claims = Claims(journal)
    claims.seen(journal.load()[0])
    report = claims.append([ev.started(a.id, 4.0, attempt=1, run="r")])
    assert report.events == 1
    assert journal.ledger().state(a.id) is State.RUNNING


@pytest.mark.parametrize("compactions", [1, 2], ids=["compacted", "compacted-twice"])
@pytest.mark.parametrize("retried", [False, True], ids=["cancelled", "cancelled-then-retried"])
def test_claims_see_a_cancel_that_a_compaction_archived(
    journal: Journal, retried: bool, compactions: int
) -> None:
    """`journal compact --keep 0s` right after a cancel moves the entry, cancel and all, to the
    archive: the drain never reads that `cancelled` line, yet must not start the entry. (Twice:
    on ext4 the second new file gets the inode of the one the drain read.)"""
    a, b = entry(), entry()
    journal.append([ev.queued(a), ev.queued(b)])
    claims = Claims(journal)
    claims.seen(journal.load()[0])
    journal.append([ev.cancelled(a.id, 2.0, who="bob")])
    if retried:  # wanted again before the compaction: live, so kept, and the drain's again
        journal.append([ev.retried(a.id, 3.0, who="bob")])
    for _ in range(compactions):
        journal.compact(keep_seconds=0.0, now=10.0)
    report = claims.append([ev.started(x.id, 4.0, attempt=1, run="r") for x in (a, b)])
    assert claims.withdrawn == (set() if retried else {a.id})
    assert report.events == (2 if retried else 1)
    started = [e.id for e in journal.events() if e.type == ev.STARTED]
    assert started == ([a.id, b.id] if retried else [b.id])
    # Later appends (the same file now) keep it withdrawn until the drain reads again.
    claims.append([ev.done(a.id, 5.0, outcome="confirmed", duration=0.1)])
    assert (a.id in set(journal.ledger().ids())) is retried  # nothing for `a` in the journal


def test_claims_after_a_compaction_keep_their_own_new_entries(journal: Journal) -> None:
    """Only entries a whole read lacks are withdrawn; one queued in the same append is not."""
    a, new = entry(), entry()
    journal.append([ev.queued(a)])
    claims = Claims(journal)
    claims.seen(journal.load()[0])
    journal.compact(keep_seconds=0.0, now=10.0)
    report = claims.append([ev.started(a.id, 4.0, attempt=1, run="r"), ev.queued(new)])
    assert report.events == 2 and claims.withdrawn == set()


def test_claims_remember_what_a_compaction_archived_for_the_rest_of_the_pass(
    journal: Journal,
) -> None:
    """Seen in the soak: the drain's first append after the compaction is about another entry
    (a whole read, but not about `a`); its next one, about `a`, reads on from there and no
    longer sees that `a` is gone. It must still not start it."""
    a, b = entry(), entry()
    journal.append([ev.queued(a), ev.queued(b)])
    claims = Claims(journal)
    claims.seen(journal.load()[0])
    journal.append([ev.cancelled(a.id, 2.0, who="bob")])
    journal.compact(keep_seconds=0.0, now=10.0)  # `a` archived, cancel and all
    claims.append([ev.started(b.id, 4.0, attempt=1, run="r")])  # the whole read: about `b`
    report = claims.append([ev.started(a.id, 5.0, attempt=1, run="r")])
    assert report.events == 0 and claims.withdrawn == {a.id}
    assert a.id not in set(journal.ledger().ids())
    # A new read starts afresh: nothing is withdrawn, nothing is taken for archived.
    claims.seen(journal.load()[0])
    assert claims.withdrawn == set()
    assert claims.append([ev.done(b.id, 6.0, outcome="confirmed", duration=0.1)]).events == 1
