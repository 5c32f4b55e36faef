"""The columnar ledger against a plain reference fold, through every way a ledger is built.

The ledger keeps its rows as columns with counts, batch heads and pending times advanced as it
folds (`journal.ledger`). Here a reference kept as simply as possible (one list of events per id,
each entry folded whole by `entry_of`) and the ledger must agree on everything a query shows,
dict order included (`status --json` prints the counts in that order), whether the ledger was
folded from events, from lines, from the writers' delta records, or from a snapshot taken
anywhere in the stream plus what came after it.
"""

from __future__ import annotations

import marshal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from cmdctl.core.ids import new_id
from cmdctl.core.model import Entry, State
from cmdctl.journal import delta, snapshot
from cmdctl.journal import events as ev
from cmdctl.journal import summary as summary_of
from cmdctl.journal.entry import FINISHED_STATES, TRANSITIONS, entry_of
from cmdctl.journal.events import Event
from cmdctl.journal.framing import frame
from cmdctl.journal.ledger import Ledger
from cmdctl.journal.store import Journal

from .builders import entry, event


class Reference:
    """The fold as plainly as it can be written: events per id, entries decoded whole."""

    def __init__(self) -> None:
        self.events: dict[str, list[Event]] = {}
        self.states: dict[str, State] = {}
        self.problems = 0

    def apply(self, e: Event) -> None:
        if e.type == ev.QUEUED:
            if e.id in self.events:
                self.problems += 1
                return
            self.events[e.id], self.states[e.id] = [e], State.PENDING
            return
        if e.id not in self.events:
            self.problems += 1
            return
        self.events[e.id].append(e)
        move = TRANSITIONS.get(e.type)
        if move is not None and (self.states[e.id] not in FINISHED_STATES or e.type == ev.RETRIED):
            self.states[e.id] = move

    def entries(self) -> list[Entry]:
        return [entry_of(self.events[i]) for i in self.events]

    def counts(self) -> dict[State, int]:
        out: dict[State, int] = {}
        for state in self.states.values():
            out[state] = out.get(state, 0) + 1
        return out

    def batches(self) -> dict[str, dict[State, int]]:
        out: dict[str, dict[State, int]] = {}
        for e in self.entries():
            counts = out.setdefault(e.batch, {})
            counts[e.state] = counts.get(e.state, 0) + 1
        return out

    def times(self, batch: str | None = None) -> tuple[float | None, float | None]:
        pending = [e for e in self.entries()
                   if e.state is State.PENDING and (batch is None or e.batch == batch)]
        return (min((e.created for e in pending), default=None),
                min((e.not_before for e in pending), default=None))


def agree(ledger: Ledger, ref: Reference) -> None:
    """Every query of the ledger shows what the reference does, in the same order."""
    entries = ref.entries()
    assert list(ledger.ids()) == list(ref.events)
    due_times_agree(ledger, entries, filled=False)  # as folded, before a query fills them
    assert len(ledger) == len(ref.events)
    assert [ledger.state(e.id) for e in entries] == [e.state for e in entries]
    assert [ledger.get(e.id) for e in entries] == entries
    assert len(ledger.problems) == ref.problems
    counts = ref.counts()
    assert list(ledger.counts().items()) == list(counts.items())
    summary = ledger.summary()
    assert list(summary.counts.items()) == list(counts.items())
    assert (summary.oldest_pending, summary.next_due) == ref.times()
    assert summary.stuck == counts.get(State.RUNNING, 0)
    batches = ref.batches()
    got = ledger.batches()
    assert list(got) == list(batches) == ledger.batch_names()
    assert [list(p.counts.items()) for p in got.values()] == [
        list(c.items()) for c in batches.values()]
    heads = {}
    for e in entries:
        heads.setdefault(e.batch, e)
    assert ledger.batch_heads() == heads
    for batch in batches:
        one = ledger.summary(batch)
        assert (one.oldest_pending, one.next_due) == ref.times(batch)
        assert ledger.batch_heads([batch]) == {batch: heads[batch]}
    for state in State:
        wanted = [e for e in entries if e.state is state]
        assert ledger.entries(state=state) == sorted(wanted, key=lambda e: e.id)
        assert ledger.ids_where(state=state) == [e.id for e in wanted]
    for device in {e.device for e in entries} | {"nowhere"}:
        for batch in [*batches, None]:
            wanted = [e for e in entries if e.device == device and batch in (None, e.batch)
                      and not e.state.finished]
            assert ledger.ids_where(device=device, batch=batch, unfinished=True) == [
                e.id for e in wanted]
            assert ledger.page(device=device, batch=batch, unfinished=True, first=2) == (
                wanted[:2], len(wanted))
    unfinished = [e for e in entries if not e.state.finished]
    assert ledger.page(unfinished=True, first=3) == (unfinished[:3], len(unfinished))
    assert ledger.page(first=len(entries) + 1) == (entries, len(entries))
    running = [e for e in entries if e.state is State.RUNNING]
    assert ledger.running_since() == [(e.id, e.started or e.updated) for e in running]
    for batch in batches:
        assert ledger.running_since(batch) == [
            (e.id, e.started or e.updated) for e in running if e.batch == batch]
    assert ledger.batch_queued() == {
        b: entry_of(ref.events[e.id][:1]) for b, e in heads.items()}
    assert ledger.entries_of([e.id for e in reversed(entries)]) == entries[::-1]
    now = 200.0 + summary_of.STUCK_AFTER_S + 7  # some of the running started before, some after
    stuck = tuple(e for e in sorted(running, key=lambda e: e.id)
                  if now - (e.started or e.updated) > summary_of.STUCK_AFTER_S)
    shown = summary_of.status(ledger, now=now)
    assert (len(shown.stuck), tuple(shown.stuck), shown.running) == (
        len(stuck), stuck, len(running))
    for state in State:
        rows = [(n, e.id) for n, e in enumerate(entries) if e.state is state]
        assert [(n, i) for n, i, _ in ledger.rows_in(state)] == rows
        for n, _i, records in ledger.rows_in(state):
            assert entry_of(records) == entries[n]
    due_times_agree(ledger, entries, filled=True)  # once the queries have filled them


def due_times_agree(ledger: Ledger, entries: list[Entry], *, filled: bool) -> None:
    """`due_at` (what lets a drain decode a due line without peeking at it first) gives a
    pending entry's own `not_before` or None, and once the pending times are filled, the
    time of every pending entry."""
    for place, e in enumerate(entries):
        due = ledger.due_at(place)
        if e.state is not State.PENDING:
            assert due is None, e
        elif due is not None or filled:
            assert due == e.not_before, e



# -- histories ----------------------------------------------------------------------------------

KINDS = [ev.STARTED, ev.DONE, ev.FAILED, ev.CANCELLED, ev.RETRIED, ev.RESCHEDULED, ev.UNKNOWN,
         ev.EXPIRED, ev.ATTEMPT_FAILED, ev.REPRIORITISED, "custom"]

steps = st.lists(
    st.one_of(
        # queue n entries of batch b, spread over devices, created / due at these times
        st.tuples(st.just("queue"), st.integers(1, 5), st.integers(0, 3),
                  st.floats(0, 100), st.floats(0, 100)),
        st.tuples(st.sampled_from(KINDS), st.integers(0, 40), st.just(0), st.just(0.0),
                  st.just(0.0)),
        st.tuples(st.sampled_from(["ghost", "requeue", "read", "snapshot", "jumble"]),
                  st.integers(0, 40),
                  st.just(0), st.just(0.0), st.just(0.0)),
    ),
    min_size=1,
    max_size=30,
)


def appends(history: list[tuple[str, int, int, float, float]]) -> Iterator[list[Event] | str]:
    """The appends a history makes, and "read" / "snapshot" where a reader looks."""
    ids: list[str] = []
    queued: dict[str, Event] = {}
    for step, (op, n, b, created, due) in enumerate(history):
        ts = 200.0 + step
        if op == "queue":
            made = [entry(batch=f"B{b}", device=f"tv-{(step + i) % 3}", created=created,
                          not_before=due) for i in range(n)]
            events = [ev.queued(e) for e in made]
            queued.update((e.id, q) for e, q in zip(made, events, strict=True))
            ids += [e.id for e in made]
            yield events
        elif op in ("read", "snapshot"):
            yield op
        elif op == "jumble":  # a bulk whose ids are not in order, one of them twice
            made = [entry(batch="BJ", device="tv-0", created=1.0, not_before=2.0)
                    for _ in range(2 + n % 3)]
            events = [ev.queued(e) for e in reversed(made)]
            events.insert(n % len(events), events[(n // 3) % len(events)])
            queued.update((q.id, q) for q in events)
            ids += [e.id for e in made]
            yield events if n % 2 else sorted(events, key=lambda e: e.id)
        elif op == "ghost":
            yield [ev.done("NO-SUCH-ID", ts, outcome="confirmed", duration=0.1)]
        elif ids and op == "requeue":
            yield [queued[ids[n % len(ids)]]]
        elif ids:
            yield [event(op, ids[n % len(ids)], ts)]


@settings(max_examples=80, deadline=None)
@given(steps)
def test_any_history_folds_as_the_reference_does_from_events_and_lines(
    history: list[tuple[str, int, int, float, float]],
) -> None:
    ref = Reference()
    from_events = Ledger()
    from_lines = Ledger()
    for made in appends(history):
        if isinstance(made, str):
            continue
        for e in made:
            ref.apply(e)
            from_events.apply(e)
        from_lines.apply_lines([frame([ev.encode(e)])[:-1] for e in made])
        agree(from_events, ref)
        agree(from_lines, ref)


@settings(max_examples=60, deadline=None)
@given(steps)
def test_a_snapshot_anywhere_plus_the_records_after_it_folds_as_the_reference(
    history: list[tuple[str, int, int, float, float]],
) -> None:
    ref = Reference()
    with tempfile.TemporaryDirectory() as tmp:
        journal = Journal(Path(tmp) / "j")
        for made in appends(history):
            if made == "snapshot":  # a reader writes one, so the next starts from it
                snapshot.SNAPSHOT_AFTER_BYTES, before = 0, snapshot.SNAPSHOT_AFTER_BYTES
                try:
                    journal.load()
                finally:
                    snapshot.SNAPSHOT_AFTER_BYTES = before
                written = (journal.directory / "journal.snapshot").exists()
                assert written == journal.path.exists()
            elif made == "read":  # snapshot (if any) + delta records, nothing written
                agree(journal.load()[1], ref)
            else:
                journal.append(made)
                for e in made:
                    ref.apply(e)
        agree(journal.load()[1], ref)
        (journal.directory / delta.DELTA_FILE).unlink(missing_ok=True)
        agree(journal.load()[1], ref)  # snapshot + the journal's own lines


def test_a_snapshot_round_trips_every_column(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j")
    made = [entry(batch=f"B{i % 3}", device=f"tv-{i % 4}", created=float(i),
                  not_before=100.0 - i) for i in range(12)]
    journal.append([ev.queued(e) for e in made])
    journal.append([event(ev.STARTED, made[0].id, 1.0), event(ev.DONE, made[0].id, 2.0),
                    event(ev.RESCHEDULED, made[5].id, 3.0), event(ev.STARTED, made[7].id, 4.0),
                    ev.done("GHOST", 5.0, outcome="confirmed", duration=0.1)])
    ledger = journal.load()[1]
    rows, columns = ledger.dump_rows()
    again = Ledger(ledger._read_at)
    # through marshal and raw bytes, as `journal.snapshot` writes and reads them
    again.load_rows(marshal.loads(marshal.dumps(rows)), [bytes(memoryview(c)) for c in columns])
    assert again.dump_rows()[0] == rows
    assert [bytes(c) for c in again.dump_rows()[1]] == [bytes(c) for c in columns]
    ref = Reference()
    for e in journal.events():
        ref.apply(e)
    agree(ledger, ref)
    agree(again, ref)


def test_a_snapshot_of_decoded_events_is_refused() -> None:
    ledger = Ledger.from_events([ev.queued(entry())])
    try:
        ledger.dump_rows()
    except ValueError:
        return
    raise AssertionError("a ledger of decoded events dumped")


def test_a_snapshot_with_a_short_column_is_not_used(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j")
    journal.append([ev.queued(entry(batch="B", device=f"tv-{i}")) for i in range(5)])
    snapshot.SNAPSHOT_AFTER_BYTES, before = 0, snapshot.SNAPSHOT_AFTER_BYTES
    try:
        journal.load()
    finally:
        snapshot.SNAPSHOT_AFTER_BYTES = before
    path = journal.directory / "journal.snapshot"
    good = path.read_bytes()
    st_ = journal.path.stat()
    read_at = _reader(journal.path)
    found = snapshot.read(journal.directory, st_, read_at)
    assert found is not None and len(found[1][1]) == 5
    # a snapshot whose state column lost a byte (CRC made right): refused, not misread
    cut = len(good) - sum(c.nbytes for c in found[1][2:]) - 1
    damaged = good[:cut] + good[cut + 1 :]
    head = len(b"cmdctl-snapshot-3\n")
    import zlib

    rest = damaged[head + 8 :]
    path.write_bytes(damaged[:head] + b"%08x" % zlib.crc32(rest) + rest)
    assert snapshot.read(journal.directory, st_, read_at) is None
    assert list(journal.load()[1].counts().values()) == [5]


def _reader(path: Path) -> Any:
    data = path.read_bytes()
    return lambda offset, size: data[offset : offset + size]


def test_a_line_past_4_gib_is_kept_and_only_the_snapshot_is_refused() -> None:
    lines = [frame([ev.encode(ev.queued(entry(f"E{i}")))])[:-1] for i in range(2)]
    ledger = Ledger(lambda offset, size: lines[offset >> 32 == 5][:size])
    ledger.apply_lines(lines, [0, 5 << 32])  # the second line 20 GiB into the file
    assert [e.id for e in ledger.entries()] == ["E0", "E1"]
    try:
        ledger.dump_rows()
    except ValueError:
        return
    raise AssertionError("a position past 4 GiB dumped")


# -- a writer's appends folded from their delta records, several events an append --------------

append_ops = st.lists(
    st.lists(
        st.tuples(st.sampled_from([*KINDS, "queue", "ghost", "requeue", "early", "decoded"]),
                  st.integers(0, 40)),
        min_size=1,
        max_size=8,
    ),
    min_size=1,
    max_size=14,
)


def mixed_appends(history: list[list[tuple[str, int]]]) -> Iterator[tuple[list[Event], bool]]:
    """Appends of several events each: new entries with events for them in the same append,
    started / done pairs, events after a finished state, retries, unknown ids, a `queued`
    for a known id, and an event for an id before the `queued` that comes later in the append."""
    ids: list[str] = []
    queued: dict[str, Event] = {}
    for step, ops in enumerate(history):
        made: list[Event] = []
        later: list[Event] = []
        for k, (op, n) in enumerate(ops):
            ts = 200.0 + step + k / 10
            if op in ("queue", "early"):
                q = ev.queued(entry(batch=f"B{n % 3}", device=f"tv-{n % 4}", created=float(n),
                                    not_before=float(n % 7)))
                queued[q.id] = q
                if op == "early":  # unknown here: queued at the end of this append
                    made.append(event(ev.STARTED, q.id, ts))
                    later.append(q)
                else:
                    made.append(q)
                ids.append(q.id)
            elif op == "decoded":  # the append is folded as decoded events
                continue
            elif op == "ghost":
                made.append(ev.done("NO-SUCH-ID", ts, outcome="confirmed", duration=0.1))
            elif ids and op == "requeue":
                made.append(queued[ids[n % len(ids)]])
            elif ids:
                made.append(event(op, ids[n % len(ids)], ts))
        if made or later:
            yield made + later, any(op == "decoded" for op, _ in ops)


@settings(max_examples=120, deadline=None)
@given(append_ops)
def test_delta_records_of_mixed_appends_fold_as_their_lines_do(
    history: list[list[tuple[str, int]]],
) -> None:
    """`apply_heads` (states moved by C-level maps, records in the log) against `apply_lines`
    on the same lines and the reference, after every append; some appends folded as decoded
    events (a drain's own), whose records come after the log's."""
    data = bytearray()
    read_at = lambda offset, size: bytes(data[offset : offset + size])  # noqa: E731
    ref, by_heads, by_lines = Reference(), Ledger(read_at), Ledger(read_at)
    for made, decoded in mixed_appends(history):
        if decoded:  # as a drain folds its own events: decoded, not read back
            for e in made:
                ref.apply(e)
                by_heads.apply(e)
                by_lines.apply(e)
            continue
        lines = [frame([ev.encode(e)]) for e in made]
        start = len(data)
        data += b"".join(lines)
        for e in made:
            ref.apply(e)
        offsets = [start + sum(map(len, lines[:i])) for i in range(len(lines))]
        by_lines.apply_lines([line[:-1] for line in lines], offsets)
        blob = delta.record((0, 0), start, lines, made)
        if blob is None:  # a kind the delta cannot describe: the reader reads the lines
            by_heads.apply_lines([line[:-1] for line in lines], offsets)
        else:
            heads = delta._heads(blob[delta._HEAD.size + 4 :], start, len(data), len(made))
            assert heads is not None
            by_heads.apply_heads(heads.kinds, heads.ids, heads.places, heads.queued)
        agree(by_heads, ref)
        agree(by_lines, ref)
        assert [(p.entry_id, p.type, p.reason) for p in by_heads.problems] == [
            (p.entry_id, p.type, p.reason) for p in by_lines.problems]


def test_an_append_naming_one_entry_again_and_again_folds_its_events_in_order() -> None:
    """Every sequence of two and three events for one entry, and a few longer ones, inside one
    append with events for other entries between them, from each state: the delta's C-level
    fold takes each entry's events in turns (first ones, then second ones...), then one at a
    time, and must end where one by one ends. Order matters: `cancelled` then `started`
    leaves a pending entry cancelled; `done` then `retried` makes it pending again."""
    kinds = [k for k in KINDS if k in ev.KNOWN_TYPES]  # what a delta record describes
    sequences: list[tuple[str, ...]] = [(a, b) for a in kinds for b in kinds]
    sequences += [(a, b, c) for a in kinds for b in kinds for c in kinds]
    sequences += [  # more events than the fold takes in turns
        (ev.STARTED, ev.CANCELLED, ev.RETRIED, ev.STARTED, ev.DONE, ev.RETRIED),
        (ev.DONE, ev.STARTED, ev.RETRIED, ev.CANCELLED, ev.STARTED, ev.RETRIED, ev.FAILED),
    ]
    data = bytearray()
    read_at = lambda offset, size: bytes(data[offset : offset + size])  # noqa: E731
    ref, by_heads = Reference(), Ledger(read_at)

    def written(made: list[Event]) -> None:
        lines = [frame([ev.encode(e)]) for e in made]
        start = len(data)
        data.extend(b"".join(lines))
        for e in made:
            ref.apply(e)
        blob = delta.record((0, 0), start, lines, made)
        assert blob is not None
        got = delta._heads(blob[delta._HEAD.size + 4 :], start, len(data), len(made))
        assert got is not None
        by_heads.apply_heads(got.kinds, got.ids, got.places, got.queued)

    starts = [(), (ev.STARTED,), (ev.STARTED, ev.DONE)]  # pending, running, done
    made_for = [(new_id(), before, seq) for seq in sequences for before in starts]
    written([ev.queued(entry(ident)) for ident, _, _ in made_for])
    for step in range(2):  # to the states to start from: one append of distinct ids each
        written([event(b[step], i, 1.0 + step) for i, b, _ in made_for if len(b) > step])
    filler = [new_id() for _ in range(3)]
    written([ev.queued(entry(ident)) for ident in filler])
    made: list[Event] = []
    ts = 10.0
    for ident, _, sequence in made_for:
        for kind in sequence:  # this entry's events, one for another entry between each
            made += [event(kind, ident, ts), event(ev.STARTED, filler[len(made) % 3], ts)]
            ts += 0.01
    written(made)
    assert [(e.id, e.state) for e in by_heads.entries()] == [
        (e.id, e.state) for e in ref.entries()]
    assert list(by_heads.counts().items()) == list(ref.counts().items())
    assert not by_heads.problems and not ref.problems
