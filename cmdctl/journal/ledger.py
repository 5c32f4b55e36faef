"""The fold: journal events → the current `Entry` of every id, plus the queries built on it.

An entry's state depends only on the sequence of its event types, so the ledger tracks state,
batch and device eagerly (from `events.peek`, without decoding lines) and decodes an entry's
records into an `Entry` only when asked for it. This keeps `status` on a million events fast.
A record is a decoded `Event`, a raw line, or (from the journal) the line's position in the
file, packed as `offset << 32 | length` and read back through `read_at`.

The rules for one entry are in `journal.entry` (`fold`).
"""

from __future__ import annotations

import operator
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import compress, repeat
from operator import itemgetter
from typing import Any

from cmdctl.core.errors import InputError, JournalError
from cmdctl.core.model import Entry, State
from cmdctl.journal import events as ev
from cmdctl.journal.delta import KINDS, QUEUED_CODE
from cmdctl.journal.entry import FINISHED_STATES, TRANSITIONS, entry_of
from cmdctl.journal.events import Event, EventDecodeError

_TRANSITIONS_B = {k.encode(): v for k, v in TRANSITIONS.items()}

# A row: [state, batch, device, records, cached Entry or None, (created, not_before) or None].
_STATE, _BATCH, _DEVICE, _RECORDS, _CACHE, _SCHEDULE = range(6)
_STATES = tuple(State)
_STATE_INDEX = {state: i for i, state in enumerate(_STATES)}

#: A decoded event, a raw line, or a line's position packed as `offset << 32 | length`.
Record = Event | bytes | int

ReadAt = Callable[[int, int], bytes]


@dataclass(frozen=True, slots=True)
class Problem:
    """An event the fold could not use: for an unknown id, a duplicate `queued`, bad fields."""

    entry_id: str
    type: str
    reason: str


@dataclass(frozen=True, slots=True)
class Summary:
    """What `status` shows at a glance."""

    counts: dict[State, int]
    oldest_pending: float | None  # `created` of the oldest pending entry
    next_due: float | None  # earliest `not_before` among pending entries
    stuck: int  # running entries


@dataclass(frozen=True, slots=True)
class BatchProgress:
    """How far one batch has got."""

    batch: str
    counts: dict[State, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Entries in the batch."""
        return sum(self.counts.values())

    @property
    def finished(self) -> int:
        """Entries no drain will touch again."""
        return sum(n for state, n in self.counts.items() if state.finished)


def _packed(records: bytes | list[Record]) -> bytes:
    """A row's records as packed positions (what a snapshot keeps)."""
    if type(records) is bytes:
        return records
    return array("Q", records).tobytes()  # type: ignore[type-var]


_COL_STATE, _COL_BATCH, _COL_DEVICE, _COL_RECORDS, _COL_SCHEDULE = (
    itemgetter(_STATE), itemgetter(_BATCH), itemgetter(_DEVICE), itemgetter(_RECORDS),
    itemgetter(_SCHEDULE),
)


def _unpack(packed: bytes) -> list[Record]:
    return array("Q", packed).tolist()  # type: ignore[return-value]


def _records(row: list[Any]) -> list[Record]:
    """A row's records as a list (unpacking a snapshot's packed positions on first use)."""
    records = row[_RECORDS]
    if type(records) is bytes:
        records = row[_RECORDS] = _unpack(records)
    return records  # type: ignore[no-any-return]


class Ledger:
    """Current entries, folded from events in journal order."""

    def __init__(self, read_at: ReadAt | None = None) -> None:
        self._rows: dict[str, list[Any]] = {}
        self._read_at = read_at
        self.problems: list[Problem] = []

    @classmethod
    def from_events(cls, events: Iterable[Event]) -> Ledger:
        """Fold decoded events."""
        ledger = cls()
        for event in events:
            ledger.apply(event)
        return ledger

    @classmethod
    def from_lines(cls, lines: Sequence[bytes]) -> Ledger:
        """Fold raw journal lines (framing intact), decoding only what a query needs."""
        ledger = cls()
        ledger.apply_lines(lines)
        return ledger

    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._rows

    def apply(self, event: Event) -> None:
        """Fold one decoded event."""
        row = self._rows.get(event.id)
        if event.type == ev.QUEUED:
            if row is not None:
                self.problems.append(Problem(event.id, event.type, "queued twice"))
                return
            batch, device = event.get("batch"), event.get("device")
            if not isinstance(batch, str) or not isinstance(device, str):
                self.problems.append(Problem(event.id, event.type, "queued without batch/device"))
                return
            self._rows[event.id] = [State.PENDING, batch, device, [event], None, None]
            return
        if row is None:
            self.problems.append(Problem(event.id, event.type, "event for an unknown id"))
            return
        _records(row).append(event)
        row[_CACHE] = None
        state = TRANSITIONS.get(event.type)
        if state is not None and (row[_STATE] not in FINISHED_STATES or event.type == ev.RETRIED):
            row[_STATE] = state

    def apply_lines(self, lines: Sequence[bytes], offsets: Sequence[int] | None = None) -> None:
        """Fold raw lines; with `offsets`, keep positions (read back via `read_at`) not bytes."""
        rows = self._rows
        transitions = _TRANSITIONS_B
        head = ev.HEAD.match
        pending = State.PENDING
        finished = FINISHED_STATES
        problems = self.problems
        strings: dict[bytes, str] = {}
        for index, line in enumerate(lines):
            record: bytes | int = line if offsets is None else offsets[index] << 32 | len(line)
            match = head(line)  # `events.peek`, inlined: this loop runs once per line
            if match is None:
                self._apply_slow(line, record)
                continue
            kind, raw_id, raw_batch, raw_device = match.groups()
            ident = raw_id.decode()
            row = rows.get(ident)
            if kind == b"queued":
                if raw_batch is None:
                    self._apply_slow(line, record)
                    continue
                if row is not None:
                    problems.append(Problem(ident, ev.QUEUED, "queued twice"))
                    continue
                batch = strings.get(raw_batch)  # shared, and marshalled once
                if batch is None:
                    batch = strings[raw_batch] = raw_batch.decode()
                device = strings.get(raw_device)
                if device is None:
                    device = strings[raw_device] = raw_device.decode()
                rows[ident] = [pending, batch, device, [record], None, None]
                continue
            if row is None:
                problems.append(Problem(ident, kind.decode(), "event for an unknown id"))
                continue
            records = row[3]
            if type(records) is bytes:  # packed positions from a snapshot
                records = row[3] = _unpack(records)
            records.append(record)
            row[4] = None
            state = transitions.get(kind)
            if state is not None and (row[0] not in finished or kind == b"retried"):
                row[0] = state

    def apply_heads(
        self,
        kinds: bytes,
        ids: Sequence[str],
        places: Sequence[int],
        queued: tuple[Sequence[str], Sequence[str], Sequence[float], Sequence[float]],
    ) -> None:
        """Fold lines already read by their writer (`cmdctl.journal.delta`): as `apply_lines` would.

        `kinds` holds one code into `delta.KINDS` per line, `places` the packed positions,
        `queued` the batches, devices, created and not_before times of the `queued` lines.
        """
        rows = self._rows
        n = len(ids)
        n_queued = kinds.count(QUEUED_CODE)
        others: Iterable[tuple[int, int, str, int]]
        is_queued = list(map(QUEUED_CODE.__eq__, kinds))
        new_ids = list(compress(ids, is_queued))
        if n_queued and rows.keys().isdisjoint(new_ids) and len(set(new_ids)) == n_queued:
            # New rows for the queued lines at once, by C-level maps (no per-line bytecode).
            batches, devices, created_at, due_at = queued
            fresh = zip(  # strict=False: the repeats are endless; the rest are n_queued long
                repeat(State.PENDING), batches, devices,
                map(list, zip(compress(places, is_queued), strict=False)), repeat(None),
                zip(created_at, due_at, strict=True), strict=False,
            )
            rows.update(zip(new_ids, map(list, fresh), strict=True))
            if n_queued == n:
                return
            # An event must not reach a row queued later in the same append ("unknown id").
            born = dict(zip(new_ids, compress(range(n), is_queued), strict=True))
            others = compress(zip(range(n), kinds, ids, places, strict=True),
                              map(operator.not_, is_queued))
        else:  # line by line: an append that queues an id already known ("queued twice")
            born = {}
            others = zip(range(n), kinds, ids, places, strict=True)
        finished = FINISHED_STATES
        problems = self.problems
        moves = [TRANSITIONS.get(kind) for kind in KINDS]
        retried = KINDS.index(ev.RETRIED)
        details = zip(*queued, strict=True)  # used only line by line
        for index, code, ident, place in others:
            row = rows.get(ident)
            if code == QUEUED_CODE:
                batch, device, created, not_before = next(details)
                if row is not None:
                    problems.append(Problem(ident, ev.QUEUED, "queued twice"))
                    continue
                rows[ident] = [State.PENDING, batch, device, [place], None, (created, not_before)]
                continue
            if row is None or (born and born.get(ident, -1) > index):
                problems.append(Problem(ident, KINDS[code], "event for an unknown id"))
                continue
            records = row[3]
            if type(records) is bytes:  # packed positions from a snapshot
                records = row[3] = _unpack(records)
            records.append(place)
            row[4] = None
            state = moves[code]
            if state is not None and (row[0] not in finished or code == retried):
                row[0] = state

    def _apply_slow(self, line: bytes, record: bytes | int) -> None:
        try:
            event = ev.decode(line)
        except EventDecodeError as err:
            self.problems.append(Problem("?", "?", f"undecodable record: {err}"))
            return
        before = len(self.problems)
        self.apply(event)
        row = self._rows.get(event.id)
        if row is not None and len(self.problems) == before:
            _records(row)[-1] = record  # keep the position, not the decoded copy

    # -- snapshots (a derived cache the journal validates; see journal.snapshot) --------------

    def dump_rows(self) -> tuple[Any, ...]:
        """The rows as plain data for `marshal`; only a ledger of journal positions can be.

        Columns (ids, state codes, batches, devices, packed records, schedules), built and
        restored by C-level maps: a million-event ledger dumps and loads in a fraction of a
        second.
        """
        values = list(self._rows.values())
        codes = bytes(map(_STATE_INDEX.__getitem__, map(_COL_STATE, values)))
        try:
            records = list(map(_packed, map(_COL_RECORDS, values)))
        except (TypeError, OverflowError) as err:  # events, raw lines, or a file > 4 GiB
            raise ValueError("only a ledger of journal positions can be dumped") from err
        # A schedule is kept for pending rows only (what `summary` uses, when single-record).
        pending = _STATE_INDEX[State.PENDING]
        schedules = [s if c == pending else None
                     for s, c in zip(map(_COL_SCHEDULE, values), codes, strict=True)]
        for i, (entry_id, row) in enumerate(self._rows.items()):
            if schedules[i] is None and codes[i] == pending and len(records[i]) == 8:
                schedules[i] = self._schedule(entry_id, row)
        columns = (list(self._rows), codes, list(map(_COL_BATCH, values)),
                   list(map(_COL_DEVICE, values)), records, schedules)
        problems = [(p.entry_id, p.type, p.reason) for p in self.problems]
        return (columns, problems)

    def load_rows(self, dumped: tuple[Any, ...]) -> None:
        """Restore rows from `dump_rows` output (before applying newer lines)."""
        (ids, codes, batches, devices, records, schedules), problems = dumped
        states = map(_STATES.__getitem__, codes)
        rows = zip(states, batches, devices, records, repeat(None), schedules, strict=False)
        self._rows = dict(zip(ids, map(list, rows), strict=True))
        self.problems = [Problem(*p) for p in problems]

    # -- materialising -------------------------------------------------------------------------

    def _raw(self, record: bytes | int) -> bytes:
        if type(record) is bytes:
            return record
        if self._read_at is None:
            raise JournalError("ledger holds journal positions but has no journal to read")
        return self._read_at(record >> 32, record & 0xFFFFFFFF)  # type: ignore[operator]

    def _event(self, record: Record) -> Event:
        return record if isinstance(record, Event) else ev.decode(self._raw(record))

    def _schedule(self, entry_id: str, row: list[Any]) -> tuple[float, float]:
        records = _records(row)
        if len(records) == 1 and not isinstance(records[0], Event):
            times = ev.peek_schedule(self._raw(records[0]))
            if times is not None:
                return times[0], times[1]
        entry = self._entry(entry_id, row)
        return entry.created, entry.not_before

    # -- materialising -------------------------------------------------------------------------

    def _entry(self, entry_id: str, row: list[Any]) -> Entry:
        cached: Entry | None = row[_CACHE]
        if cached is not None:
            return cached
        try:
            entry = entry_of(_records(row), decode=self._event)
        except (EventDecodeError, ValueError) as err:
            raise JournalError(f"entry {entry_id}: unreadable records: {err}") from err
        row[_CACHE] = entry
        return entry

    def get(self, entry_id: str) -> Entry:
        """The entry with exactly this id; KeyError if there is none."""
        return self._entry(entry_id, self._rows[entry_id])

    def records(self, entry_id: str) -> list[Event | bytes]:
        """The entry's records in journal order: events, or raw lines as the journal holds them."""
        return [r if isinstance(r, Event) else self._raw(r) for r in _records(self._rows[entry_id])]

    def ids(self) -> Iterator[str]:
        """Every id, in journal order of its `queued` record."""
        return iter(self._rows)

    def state(self, entry_id: str) -> State:
        """The entry's state, without decoding it."""
        state: State = self._rows[entry_id][_STATE]
        return state

    def lookup(self, id_or_prefix: str) -> Entry:
        """The entry with this id or unique id prefix; InputError if none or several match."""
        if id_or_prefix in self._rows:
            return self.get(id_or_prefix)
        prefix = id_or_prefix.strip().upper()
        if not prefix:
            raise InputError("empty entry id")
        matches = [i for i in self._rows if i.startswith(prefix)]
        if not matches:
            raise InputError(f"no entry with id {id_or_prefix!r}", hint="see `cmdctl queue ls`")
        if len(matches) > 1:
            shown = ", ".join(matches[:3]) + (", …" if len(matches) > 3 else "")
            raise InputError(
                f"id prefix {id_or_prefix!r} matches {len(matches)} entries ({shown})",
                hint="give more characters of the id",
            )
        return self.get(matches[0])

    def entries(
        self,
        *,
        device: str | None = None,
        batch: str | None = None,
        state: State | None = None,
    ) -> list[Entry]:
        """Entries matching every filter given, in id order."""
        out = [
            self._entry(i, row)
            for i, row in self._rows.items()
            if (state is None or row[_STATE] is state)
            and (batch is None or row[_BATCH] == batch)
            and (device is None or row[_DEVICE] == device)
        ]
        out.sort(key=lambda e: e.id)
        return out

    def ids_where(
        self,
        *,
        device: str | None = None,
        batch: str | None = None,
        state: State | None = None,
        unfinished: bool = False,
    ) -> list[str]:
        """Ids of the entries matching every filter given, in journal order, decoding none.

        For listings that show a few of a million entries: count them all, decode the shown.
        """
        return [
            i
            for i, row in self._rows.items()
            if (state is None or row[_STATE] is state)
            and (not unfinished or not row[_STATE].finished)
            and (batch is None or row[_BATCH] == batch)
            and (device is None or row[_DEVICE] == device)
        ]

    # -- queries -------------------------------------------------------------------------------

    def counts(self) -> dict[State, int]:
        """How many entries are in each state (states with none are left out)."""
        return dict(Counter(row[_STATE] for row in self._rows.values()))

    def summary(self) -> Summary:
        """Counts, oldest pending, next due and stuck, decoding as little as possible."""
        oldest: float | None = None
        next_due: float | None = None
        pending = State.PENDING
        tally: Counter[State] = Counter()
        for entry_id, row in self._rows.items():
            state = row[_STATE]
            tally[state] += 1
            if state is not pending:
                continue
            recs = row[_RECORDS]
            single = len(recs) == (8 if type(recs) is bytes else 1)
            times = row[_SCHEDULE] if single else None
            if times is None:
                times = self._schedule(entry_id, row)
            if oldest is None or times[0] < oldest:
                oldest = times[0]
            if next_due is None or times[1] < next_due:
                next_due = times[1]
        return Summary(dict(tally), oldest, next_due, tally.get(State.RUNNING, 0))

    def batches(self) -> dict[str, BatchProgress]:
        """Progress per batch, batches in order of first appearance."""
        tally: dict[str, Counter[State]] = {}
        for row in self._rows.values():
            counter = tally.get(row[_BATCH])
            if counter is None:
                counter = tally[row[_BATCH]] = Counter()
            counter[row[_STATE]] += 1
        return {b: BatchProgress(b, dict(c)) for b, c in tally.items()}

    def batch_heads(self, batches: Iterable[str] | None = None) -> dict[str, Entry]:
        """The first entry of each batch (or of the ones named), decoding only those."""
        wanted = None if batches is None else set(batches)
        heads: dict[str, Entry] = {}
        for entry_id, row in self._rows.items():
            batch = row[_BATCH]
            if batch in heads or (wanted is not None and batch not in wanted):
                continue
            heads[batch] = self._entry(entry_id, row)
            if wanted is not None and len(heads) == len(wanted):
                break
        return heads

    def pending(self) -> list[Entry]:
        """Every pending entry, due or not, in id order."""
        return self.entries(state=State.PENDING)

    def stuck(self) -> list[Entry]:
        """Running entries: started, no outcome recorded (the drain may have died)."""
        return self.entries(state=State.RUNNING)

    def expired(self, now: float) -> list[Entry]:
        """Pending entries whose `expires` time has passed."""
        return [e for e in self.pending() if e.expires is not None and e.expires <= now]
