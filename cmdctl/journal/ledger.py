"""The fold: journal events → the current `Entry` of every id, plus the queries built on it.

An entry's state depends only on the sequence of its event types, so the ledger tracks state,
batch and device eagerly (from `events.peek`, without decoding lines) and decodes an entry's
records into an `Entry` only when asked for it. A record is a decoded `Event`, a raw line, or
(from the journal) the line's position in the file, packed as `offset << 32 | length` and read
back through `read_at`.

The rows are columns, one item per entry in journal order of its `queued` record, so a million
entries cost tens of bytes each rather than a Python list apiece: the ids in a list (and a dict
id → row, built on first lookup), the states in a bytearray, batch and device as codes into one
table of names (array 'I'), the position of an entry's only record in array 'Q' (0: its records
are in a small dict, as for an entry with several), and the `queued` record's created and
not_before in array 'd'. Records that come later as journal positions go to a log (rows in
array 'I', positions in array 'Q', in journal order): a drain's appends fold from their delta
records by C-level maps and extends, and a query gathers the log records of the rows it decodes
in one pass. Counts per batch and state (recounted from the columns after such a fold), each
batch's first row and the pending entries' oldest `created` and earliest `not_before` are kept,
so `status` does not walk the rows; filters build masks (one byte per row) with C-level maps.
A snapshot stores the columns and the log as bytes.

The rules for one entry are in `journal.entry` (`fold`).
"""

from __future__ import annotations

import marshal
import math
import operator
import re
from array import array
from bisect import bisect_left
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import accumulate, chain, compress, islice, repeat
from typing import Any, cast

from cmdctl.core.errors import InputError, JournalError
from cmdctl.core.model import Entry, State
from cmdctl.journal import events as ev
from cmdctl.journal.delta import KINDS, QUEUED_CODE
from cmdctl.journal.entry import FINISHED_STATES, TRANSITIONS, entry_of
from cmdctl.journal.events import Event, EventDecodeError

_STATES = tuple(State)
_CODE = {state: i for i, state in enumerate(_STATES)}
_PENDING = _CODE[State.PENDING]
_RUNNING = _CODE[State.RUNNING]
_FINISHED_CODES = frozenset(_CODE[s] for s in FINISHED_STATES)
#: event type (bytes) → the state code it moves an entry to
_MOVES_B = {k.encode(): _CODE[v] for k, v in TRANSITIONS.items()}
_MOVES = {k: _CODE[v] for k, v in TRANSITIONS.items()}
_NAN = math.nan
_RETRIED_CODE = KINDS.index(ev.RETRIED)
#: `_NEXT[state * len(KINDS) + kind]`: the state an event of `kind` (a code into `delta.KINDS`)
#: leaves a row in `state` in, by the rules `_add_record` applies one event at a time.
_NEXT = bytes(
    move if (move := _MOVES.get(kind)) is not None and move != old
    and (old not in _FINISHED_CODES or code == _RETRIED_CODE) else old
    for old in range(len(_STATES)) for code, kind in enumerate(KINDS)
)
#: `_NEXT` by kind, as `bytes.translate` tables (state → state); masks: 0xFF where the kind is
_NEXT_BY_KIND = [
    bytes(_NEXT[old * len(KINDS) + code] if old < len(_STATES) else old for old in range(256))
    for code in range(len(KINDS))
]
_KIND_MASKS = [bytes(0xFF if c == code else 0 for c in range(256)) for code in range(len(KINDS))]
_UNKNOWN_TIMES = (math.inf, math.inf)  # `_times` as it starts: no pending entry yet
#: The `ts` of a `started` line as `events.encode` writes it (others are decoded).
_STARTED_TS = re.compile(rb'\{"t":"started","id":"[^"\\]*","ts":([-+.eE0-9]+),')

#: A decoded event, a raw line, or a line's position packed as `offset << 32 | length`.
Record = Event | bytes | int

ReadAt = Callable[[int, int], bytes]


def _table(codes: Iterable[int]) -> bytes:
    """A `bytes.translate` table: 1 for the state codes given, 0 for the rest."""
    chosen = set(codes)
    return bytes(1 if i in chosen else 0 for i in range(256))


_UNFINISHED_TABLE = _table(c for c in range(len(_STATES)) if c not in _FINISHED_CODES)
_STATE_TABLES = [_table([c]) for c in range(len(_STATES))]


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


def _moved(olds: bytes, codes: bytes) -> bytes:
    """The states rows in `olds` move to by one event each, of the kinds in `codes`: for each
    kind, its column of `_NEXT` by `bytes.translate`, chosen where the kind is by a mask."""
    first = codes[0]
    if codes.count(first) == len(codes):
        return olds.translate(_NEXT_BY_KIND[first])
    n = len(olds)
    out = int.from_bytes(olds)
    for code in set(codes):
        mask = int.from_bytes(codes.translate(_KIND_MASKS[code]))
        out = out & ~mask | int.from_bytes(olds.translate(_NEXT_BY_KIND[code])) & mask
    return out.to_bytes(n)


class Ledger:
    """Current entries, folded from events in journal order."""

    def __init__(self, read_at: ReadAt | None = None) -> None:
        self._read_at = read_at
        self.problems: list[Problem] = []
        self._ids: list[str] | None = []  # None: still `_ids_blob` (from a snapshot)
        self._ids_blob = b""
        self._index: dict[str, int] | None = {}  # id → row; None: not built yet
        # The ids, in row order, are strictly ascending and `_last` is the greatest: an append
        # of queued ids all above it and ascending needs no lookup to know they are new.
        self._ascending = True
        self._last = ""
        self._state = bytearray()
        self._names: list[str] = []  # batches and devices, each once
        self._codes: dict[str, int] = {}
        self._batch = array("I")
        self._device = array("I")
        self._place = array("Q")  # the only record's position; 0: see `_more`
        self._more: dict[int, list[Record]] = {}  # row → records, when not one position
        # The same from a snapshot, packed (rows ascending, where each one's records end in
        # `_flat`), moved into `_more` when a row is read or changed: a snapshot of 300,000
        # finished entries loads as three buffers, not 300,000 lists.
        self._packed = (array("Q"), array("Q"), array("Q"))  # rows, ends, flat
        self._created = array("d")  # of the `queued` record; valid unless in `_unscheduled`
        self._due = array("d")
        self._unscheduled: set[int] = set()  # pending rows whose columns above are not known
        self._tally: dict[int, list[int]] = {}  # batch code → count per state; first-seen order
        self._stale = False  # the counts in `_tally` are to be recounted from the columns
        self._heads: dict[int, int] = {}  # batch code → its first row
        #: (oldest created, earliest not_before) of pending rows; None: not known, recompute
        self._times: tuple[float, float] | None = _UNKNOWN_TIMES
        # Records after an entry's first ones, as journal positions in the order they came: the
        # row each belongs to and the position. A drain's appends add here by C-level extends,
        # not a list per row; a row's records are these after its own (`_records`).
        self._log_rows = array("I")
        self._log_places = array("Q")
        self._logged: dict[int, list[int]] = {}  # row → its log positions, for rows gathered
        # Records after a row's log ones that are not positions (a decoded event, a raw line),
        # and every record of that row after them: each row's records stay in journal order.
        self._late: dict[int, list[Record]] = {}
        self._cache: dict[int, Entry] = {}
        self._decoded = 0  # records held as events or raw lines, not positions (no snapshot)

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
        return len(self._state)

    def __contains__(self, entry_id: object) -> bool:
        return entry_id in self._lookup()

    # -- the columns -----------------------------------------------------------------------------

    def _id_list(self) -> list[str]:
        ids = self._ids
        if ids is None:
            ids = self._ids = marshal.loads(self._ids_blob)
            self._ids_blob = b""
        return ids

    def _lookup(self) -> dict[str, int]:
        index = self._index
        if index is None:
            ids = self._id_list()
            index = self._index = dict(zip(ids, range(len(ids)), strict=True))
        return index

    def _code(self, name: str) -> int:
        code = self._codes.get(name)
        if code is None:
            code = self._codes[name] = len(self._names)
            self._names.append(name)
        return code

    def _new_row(
        self, ident: str, batch: str, device: str, record: Record, times: tuple[float, float] | None
    ) -> None:
        row = len(self._state)
        self._id_list().append(ident)
        self._lookup()[ident] = row
        if self._ascending:
            self._ascending = ident > self._last
            self._last = ident
        self._state.append(_PENDING)
        b = self._code(batch)
        self._batch.append(b)
        self._device.append(self._code(device))
        self._place.append(0)
        if type(record) is int and 0 < record < 1 << 64:
            self._place[row] = record
        else:
            self._more[row] = [record]
            self._decoded += type(record) is not int
        tally = self._tally.get(b)
        if tally is None:
            tally = self._tally[b] = [0] * len(_STATES)
            self._heads[b] = row
        tally[_PENDING] += 1
        if times is None:
            self._created.append(_NAN)
            self._due.append(_NAN)
            self._unscheduled.add(row)
            self._times = None
        else:
            self._created.append(times[0])
            self._due.append(times[1])
            if self._times is not None:
                self._times = (min(self._times[0], times[0]), min(self._times[1], times[1]))

    def _add_record(self, row: int, record: Record, move: int | None, retried: bool) -> None:
        """An event for an existing row: keep its record, move its state by the rules."""
        late = self._late.get(row)
        if late is None and type(record) is int and 0 <= record < 1 << 64:
            self._log_rows.append(row)
            self._log_places.append(record)
            self._logged.clear()
        else:  # an event or a raw line, or any record after one: after the row's log ones
            if late is None:
                late = self._late[row] = []
            late.append(record)
            self._decoded += type(record) is not int
        self._cache.pop(row, None)
        old = self._state[row]
        if old == _PENDING:
            self._times = None  # its schedule may change, or it leaves the pending ones
        if move is not None and move != old and (old not in _FINISHED_CODES or retried):
            self._state[row] = move
            tally = self._tally[self._batch[row]]
            tally[old] -= 1
            tally[move] += 1
            old = move
        if old == _PENDING:
            self._unscheduled.add(row)
            self._times = None

    def _records(self, row: int) -> list[Record]:
        place = self._place[row]
        first: list[Record] = [place] if place else self._more_of(row)
        if not self._log_rows:
            late = self._late.get(row)
            return first + late if late else first
        logged = self._logged_of(row)
        late = self._late.get(row)
        if late:
            return first + logged + late
        return first + logged if logged else first  # type: ignore[operator]

    def _gather(self, rows: Iterable[int]) -> dict[int, list[int]]:
        """The log positions of each of `rows` (kept in `_logged` until the log grows): one
        C-level pass over the log for all of them."""
        logged = self._logged
        wanted = set(rows).difference(logged)
        if wanted:
            found: dict[int, list[int]] = {row: [] for row in wanted}
            log_rows = self._log_rows
            if len(wanted) == 1:
                (row,) = wanted
                hits = map(row.__eq__, log_rows)
            else:
                hits = map(wanted.__contains__, log_rows)
            for row, place in compress(zip(log_rows, self._log_places, strict=True), hits):
                found[row].append(place)
            logged.update(found)
        return logged

    def _logged_of(self, row: int) -> list[int]:
        logged = self._logged.get(row)
        return self._gather((row,))[row] if logged is None else logged

    def _more_of(self, row: int) -> list[Record]:
        records = self._more.get(row)
        if records is None:
            records = self._more[row] = self._unpack(row)
        return records

    def _unpack(self, row: int) -> list[Record]:
        rows, ends, flat = self._packed
        i = bisect_left(rows, row)
        if i == len(rows) or rows[i] != row:
            raise KeyError(row)
        return flat[ends[i - 1] if i else 0 : ends[i]].tolist()  # type: ignore[return-value]

    # -- folding -----------------------------------------------------------------------------------

    def apply(self, event: Event) -> None:
        """Fold one decoded event."""
        row = self._lookup().get(event.id)
        if event.type == ev.QUEUED:
            if row is not None:
                self.problems.append(Problem(event.id, event.type, "queued twice"))
                return
            batch, device = event.get("batch"), event.get("device")
            if not isinstance(batch, str) or not isinstance(device, str):
                self.problems.append(Problem(event.id, event.type, "queued without batch/device"))
                return
            self._new_row(event.id, batch, device, event, None)
            return
        if row is None:
            self.problems.append(Problem(event.id, event.type, "event for an unknown id"))
            return
        self._add_record(row, event, _MOVES.get(event.type), event.type == ev.RETRIED)

    def apply_lines(self, lines: Sequence[bytes], offsets: Sequence[int] | None = None) -> None:
        """Fold raw lines; with `offsets`, keep positions (read back via `read_at`) not bytes."""
        if not lines:
            return  # a reader with nothing past its snapshot: no id index to build
        index = self._lookup()
        head = ev.HEAD.match
        moves = _MOVES_B
        problems = self.problems
        strings: dict[bytes, str] = {}
        for n, line in enumerate(lines):
            record: bytes | int = line if offsets is None else offsets[n] << 32 | len(line)
            match = head(line)  # `events.peek`, inlined: this loop runs once per line
            if match is None:
                self._apply_slow(line, record)
                continue
            kind, raw_id, raw_batch, raw_device = match.groups()
            ident = raw_id.decode()
            row = index.get(ident)
            if kind == b"queued":
                if raw_batch is None:
                    self._apply_slow(line, record)
                    continue
                if row is not None:
                    problems.append(Problem(ident, ev.QUEUED, "queued twice"))
                    continue
                batch = strings.get(raw_batch)
                if batch is None:
                    batch = strings[raw_batch] = raw_batch.decode()
                device = strings.get(raw_device)
                if device is None:
                    device = strings[raw_device] = raw_device.decode()
                self._new_row(ident, batch, device, record, None)
                continue
            if row is None:
                problems.append(Problem(ident, kind.decode(), "event for an unknown id"))
                continue
            self._add_record(row, record, moves.get(kind), kind == b"retried")

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
        n = len(ids)
        n_queued = kinds.count(QUEUED_CODE)
        if not n_queued:
            if self._fold_known(kinds, ids, places):
                return
        elif n_queued == n:  # a bulk: rows for every line, if the ids are distinct and new
            base = len(self._state)
            if not self._index and self._above(ids):  # new by their order: no dict needed yet
                self._index = None  # built from the ids when something looks one up
                self._extend(list(ids), list(places), queued, indexed=True)
                return
            index = self._lookup()
            index.update(zip(ids, range(base, base + n), strict=True))
            if len(index) == base + n:  # one dict pass checks and indexes: none was there
                self._extend(list(ids), list(places), queued, indexed=True)
                return
            self._index = None  # a duplicate overwrote a row's number: rebuilt from the ids
        else:
            index = self._lookup()
            is_queued = list(map(QUEUED_CODE.__eq__, kinds))
            new_ids = list(compress(ids, is_queued))
            if index.keys().isdisjoint(new_ids) and len(set(new_ids)) == n_queued:
                # The other events name known ids, or ids queued in this append, after their
                # `queued` line (before it, an event is for an unknown id: line by line).
                other = list(map(operator.not_, is_queued))
                other_list = list(compress(ids, other))
                born = dict(zip(new_ids, compress(range(n), is_queued), strict=True))
                after_birth = all(map(operator.lt, map(born.get, other_list, repeat(-1)),
                                      compress(range(n), other)))
                known = set(other_list).difference(born)
                if after_birth and known <= index.keys() and (
                        not self._late or self._late.keys().isdisjoint(
                            map(index.__getitem__, known))):
                    self._extend(new_ids, list(compress(places, is_queued)), queued)
                    folded = self._fold_known(bytes(compress(kinds, other)), other_list,
                                              list(compress(places, other)))
                    assert folded  # every id known, none with late records
                    return
        self._fold_line_by_line(kinds, ids, places, queued)

    def _above(self, ids: Sequence[str]) -> bool:
        """True if `ids` ascend strictly and start above every id of the ledger (so none of
        them is there and they are distinct), while the ledger's own ids ascend."""
        return (
            self._ascending
            and bool(ids)
            and ids[0] > self._last
            and all(map(operator.lt, ids, islice(ids, 1, None)))
        )

    def _fold_known(self, kinds: bytes, ids: Sequence[str], places: Sequence[int]) -> bool:
        """Fold events (no `queued`) of ids all known, by C-level maps: a drain's appends of
        started / done pairs. False (nothing done) if an id is unknown.

        The events of one row run in journal order: a pass takes each row's first event left,
        so within a pass the rows are distinct and the states move by `bytes.translate`
        (`_moved`), set back with one C-level map; counts are recounted when next read.
        """
        found: list[int | None] = list(map(self._lookup().get, ids))
        if None in found:
            return False
        rows = cast(list[int], found)
        if not rows:
            return True
        if self._late and not self._late.keys().isdisjoint(rows):
            return False  # their records continue there, one at a time
        self._log_rows.extend(rows)
        self._log_places.extend(places)
        self._logged.clear()
        if self._cache:
            deque(map(self._cache.pop, rows, repeat(None)), 0)
        states, pending, touched = self._state, _PENDING, False
        todo: Sequence[int] = rows
        codes: bytes = kinds
        while todo:
            firsts = dict(zip(reversed(todo), range(len(todo) - 1, -1, -1), strict=True))
            if len(firsts) == len(todo):
                now, now_codes, todo = todo, codes, ()
            else:
                first = list(map(operator.eq, map(firsts.__getitem__, todo), range(len(todo))))
                later = list(map(operator.not_, first))
                now, now_codes = list(compress(todo, first)), bytes(compress(codes, first))
                todo, codes = list(compress(todo, later)), bytes(compress(codes, later))
            olds = bytes(map(states.__getitem__, now))
            news = _moved(olds, now_codes)
            touched = touched or pending in olds or pending in news
            self._unscheduled.update(compress(now, news.translate(_STATE_TABLES[pending])))
            if olds != news:
                deque(map(states.__setitem__, now, news), 0)
                self._stale = True
        if touched:
            self._times = None
        return True

    def _fold_line_by_line(
        self,
        kinds: bytes,
        ids: Sequence[str],
        places: Sequence[int],
        queued: tuple[Sequence[str], Sequence[str], Sequence[float], Sequence[float]],
    ) -> None:
        """`apply_heads` one line at a time: an append that queues an id already known
        ("queued twice"), names an unknown one, or has events for ids it queues."""
        index = self._lookup()
        problems = self.problems
        details = zip(*queued, strict=True)
        for code, ident, place in zip(kinds, ids, places, strict=True):
            row = index.get(ident)
            if code == QUEUED_CODE:
                batch, device, created, not_before = next(details)
                if row is not None:
                    problems.append(Problem(ident, ev.QUEUED, "queued twice"))
                    continue
                self._new_row(ident, batch, device, place, (created, not_before))
                continue
            if row is None:
                problems.append(Problem(ident, KINDS[code], "event for an unknown id"))
                continue
            self._add_record(row, place, _MOVES.get(KINDS[code]), code == _RETRIED_CODE)

    def _extend(
        self,
        new_ids: list[str],
        places: list[int],
        queued: tuple[Sequence[str], Sequence[str], Sequence[float], Sequence[float]],
        *,
        indexed: bool = False,
    ) -> None:
        """New pending rows for distinct, unknown ids, at once by C-level maps (`indexed`: the
        id→row dict has them already)."""
        batches, devices, created, not_before = queued
        base, n = len(self._state), len(new_ids)
        for name in set(batches) | set(devices):
            self._code(name)
        codes = self._codes.__getitem__
        new_batches = array("I", map(codes, batches))
        if self._ascending and new_ids:
            self._ascending = self._above(new_ids)
            self._last = new_ids[-1]
        self._id_list().extend(new_ids)
        if not indexed:
            self._lookup().update(zip(new_ids, range(base, base + n), strict=True))
        self._state.extend(bytes([_PENDING]) * n)
        self._batch.extend(new_batches)
        self._device.extend(array("I", map(codes, devices)))
        self._place.extend(places)
        self._created.extend(created)
        self._due.extend(not_before)
        fresh = [(new_batches.index(b), b) for b in set(new_batches) if b not in self._tally]
        for first, b in sorted(fresh):
            self._tally[b] = [0] * len(_STATES)
            self._heads[b] = base + first
        for b, count in Counter(new_batches).items():
            self._tally[b][_PENDING] += count
        if self._times is not None and n:
            self._times = (min(self._times[0], min(created)), min(self._times[1], min(not_before)))

    def _apply_slow(self, line: bytes, record: bytes | int) -> None:
        try:
            event = ev.decode(line)
        except EventDecodeError as err:
            self.problems.append(Problem("?", "?", f"undecodable record: {err}"))
            return
        if event.type != ev.QUEUED:  # `apply`, keeping the record given, not the event
            row = self._lookup().get(event.id)
            if row is None:
                self.problems.append(Problem(event.id, event.type, "event for an unknown id"))
            else:
                self._add_record(row, record, _MOVES.get(event.type), event.type == ev.RETRIED)
            return
        before = len(self.problems)
        self.apply(event)
        row = self._lookup().get(event.id)
        if row is None or len(self.problems) != before:
            return
        records = self._more[row]  # `apply` kept the decoded event there
        self._decoded -= type(record) is int
        if len(records) == 1 and type(record) is int and 0 < record < 1 << 64:
            del self._more[row]
            self._place[row] = record
        else:
            records[-1] = record  # keep the position, not the decoded copy

    # -- snapshots (a derived cache the journal validates; see journal.snapshot) --------------

    def dump_rows(self) -> tuple[tuple[Any, ...], list[Any]]:
        """The ledger as plain data for `marshal` and its columns as buffers, written as they
        are in memory; only a ledger of journal positions can be dumped."""
        if self._decoded:
            raise ValueError("only a ledger of journal positions can be dumped")
        if self._late:  # positions that do not fit in 64 bits
            raise ValueError("a journal over 4 GiB has no snapshot")
        packed = self._packed
        if self._more:  # merged with the packed ones, by C-level maps
            old_rows, ends, flat = packed
            merged: dict[int, Sequence[Record]] = dict(zip(
                old_rows, map(flat.__getitem__, map(slice, chain((0,), ends), ends)), strict=True))
            merged.update(self._more)
            order = sorted(merged)
            lists = list(map(merged.__getitem__, order))
            try:
                packed = (array("Q", order), array("Q", accumulate(map(len, lists))),
                          array("Q", chain.from_iterable(lists)))  # type: ignore[arg-type]
            except OverflowError as err:  # a position past 4 GiB: not in 64 bits
                raise ValueError("a journal over 4 GiB has no snapshot") from err
        if self._times is None:  # once here, so that no later `status` has to read a line
            self._times = self._pending_times(None)
        # version 2: no table of references (tens of MB for a million ids), none to share
        ids = self._ids_blob if self._ids is None else marshal.dumps(self._ids, 2)
        rows = (
            self._names, sorted(self._unscheduled), list(self._counted().items()),
            list(self._heads.items()), self._times,
            [(p.entry_id, p.type, p.reason) for p in self.problems],
        )
        columns = [ids, self._state, self._batch, self._device, self._place, self._created,
                   self._due, *packed, self._log_rows, self._log_places]
        return rows, columns

    def load_rows(self, rows: tuple[Any, ...], columns: Sequence[Any]) -> None:
        """Restore the ledger from `dump_rows` output (before applying newer lines)."""
        names, unscheduled, tally, heads, times, problems = rows
        ids, state, batch, device, place, created, due, *packed, log_rows, log_places = columns
        self._ids, self._ids_blob, self._index = None, bytes(ids), None
        self._ascending, self._last = False, ""  # not known without decoding the ids
        self._state = bytearray(state)
        self._names = list(names)
        self._codes = {name: i for i, name in enumerate(names)}
        for column, data in ((self._batch, batch), (self._device, device),
                             (self._place, place), (self._created, created), (self._due, due)):
            del column[:]
            column.frombytes(data)
        self._more = {}
        self._packed = (array("Q"), array("Q"), array("Q"))
        for column, data in zip(self._packed, packed, strict=True):
            column.frombytes(data)
        self._log_rows, self._log_places, self._logged = array("I"), array("Q"), {}
        self._late = {}
        self._log_rows.frombytes(log_rows)
        self._log_places.frombytes(log_places)
        self._unscheduled = set(unscheduled)
        self._tally = {b: list(c) for b, c in tally}
        self._stale = False
        self._heads = dict(heads)
        self._times = None if times is None else (times[0], times[1])
        self._cache = {}
        n = len(self._state)
        if not (len(self._batch) == len(self._device) == len(self._place) == len(self._created)
                == len(self._due) == n) or len(self._packed[0]) != len(self._packed[1]) or (
                len(self._log_rows) != len(self._log_places)):
            raise ValueError("snapshot columns of different lengths")
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

    def _entry_at(self, row: int) -> Entry:
        cached = self._cache.get(row)
        if cached is not None:
            return cached
        try:
            entry = entry_of(self._records(row), decode=self._event)
        except (EventDecodeError, ValueError) as err:
            raise JournalError(
                f"entry {self._id_list()[row]}: unreadable records: {err}") from err
        self._cache[row] = entry
        return entry

    def _schedule(self, row: int) -> tuple[float, float]:
        """(created, not_before) of a row, reading its only `queued` line if it can."""
        if row in self._late or (self._log_rows and self._logged_of(row)):  # not its only record
            entry = self._entry_at(row)
            return entry.created, entry.not_before
        place = self._place[row]
        if place:
            times = ev.peek_schedule(self._raw(place))
            if times is not None:
                return times[0], times[1]
        records = self._more_of(row) if not place else None
        if records is not None and len(records) == 1 and not isinstance(records[0], Event):
            times = ev.peek_schedule(self._raw(records[0]))
            if times is not None:
                return times[0], times[1]
        entry = self._entry_at(row)
        return entry.created, entry.not_before

    def _scheduled(self) -> None:
        """Fill the schedule columns of pending rows that lack them."""
        state = self._state
        if self._log_rows:
            self._gather(self._unscheduled)
        for row in sorted(self._unscheduled):
            if state[row] == _PENDING:
                self._created[row], self._due[row] = self._schedule(row)
        self._unscheduled.clear()

    def get(self, entry_id: str) -> Entry:
        """The entry with exactly this id; KeyError if there is none."""
        return self._entry_at(self._lookup()[entry_id])

    def records(self, entry_id: str) -> list[Event | bytes]:
        """The entry's records in journal order: events, or raw lines as the journal holds them."""
        raw = self._raw
        return [r if isinstance(r, Event) else raw(r)
                for r in self._records(self._lookup()[entry_id])]

    def ids(self) -> Iterator[str]:
        """Every id, in journal order of its `queued` record."""
        return iter(self._id_list())

    def state(self, entry_id: str) -> State:
        """The entry's state, without decoding it."""
        return _STATES[self._state[self._lookup()[entry_id]]]

    def rows_in(self, state: State) -> Iterator[tuple[int, str, list[Event | bytes]]]:
        """(place, id, records) of every entry in `state`, in journal order, without a lookup
        per id: `place` is the entry's index in `ids()` (its journal order)."""
        ids, raw = self._id_list(), self._raw
        for row in self._prepared(self._rows(self._state.translate(_STATE_TABLES[_CODE[state]]))):
            yield row, ids[row], [r if isinstance(r, Event) else raw(r)
                                  for r in self._records(row)]

    def lookup(self, id_or_prefix: str) -> Entry:
        """The entry with this id or unique id prefix; InputError if none or several match."""
        if id_or_prefix in self:
            return self.get(id_or_prefix)
        prefix = id_or_prefix.strip().upper()
        if not prefix:
            raise InputError("empty entry id")
        matches = [i for i in self._id_list() if i.startswith(prefix)]
        if not matches:
            raise InputError(f"no entry with id {id_or_prefix!r}", hint="see `cmdctl queue ls`")
        if len(matches) > 1:
            shown = ", ".join(matches[:3]) + (", …" if len(matches) > 3 else "")
            raise InputError(
                f"id prefix {id_or_prefix!r} matches {len(matches)} entries ({shown})",
                hint="give more characters of the id",
            )
        return self.get(matches[0])

    # -- filters: a mask of one byte per row (1: matches), built by C-level maps ---------------

    def _mask(
        self,
        *,
        device: str | None = None,
        batch: str | None = None,
        state: State | None = None,
        unfinished: bool = False,
    ) -> bytes | bytearray | None:
        """Rows matching every filter given; None: every row."""
        masks: list[bytes | bytearray] = []
        if state is not None:
            masks.append(self._state.translate(_STATE_TABLES[_CODE[state]]))
        if unfinished:
            masks.append(self._state.translate(_UNFINISHED_TABLE))
        for name, column in ((batch, self._batch), (device, self._device)):
            if name is None:
                continue
            code = self._codes.get(name)
            if code is None:
                return bytes(len(self))
            masks.append(bytes(map(code.__eq__, column)))
        if not masks:
            return None
        if len(masks) == 1:
            return masks[0]
        joined = int.from_bytes(masks[0])
        for mask in masks[1:]:
            joined &= int.from_bytes(mask)
        return joined.to_bytes(len(self))

    def _prepared(self, rows: Iterable[int]) -> list[int]:
        """`rows`, their logged records gathered in one pass (not one pass each)."""
        rows = list(rows)
        if self._log_rows:
            self._gather(rows)
        return rows

    def _rows(self, mask: bytes | bytearray | None) -> Iterator[int]:
        rows = range(len(self))
        return iter(rows) if mask is None else compress(rows, mask)

    def entries(
        self,
        *,
        device: str | None = None,
        batch: str | None = None,
        state: State | None = None,
    ) -> list[Entry]:
        """Entries matching every filter given, in id order."""
        mask = self._mask(device=device, batch=batch, state=state)
        out = list(map(self._entry_at, self._prepared(self._rows(mask))))
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
        mask = self._mask(device=device, batch=batch, state=state, unfinished=unfinished)
        ids = self._id_list()
        return list(ids) if mask is None else list(compress(ids, mask))

    def page(
        self,
        *,
        device: str | None = None,
        batch: str | None = None,
        state: State | None = None,
        unfinished: bool = False,
        first: int,
    ) -> tuple[list[Entry], int]:
        """The first `first` matching entries in journal order (decoded), and how many match.

        `queue ls -n 10` of a million entries counts them all and decodes ten.
        """
        mask = self._mask(device=device, batch=batch, state=state, unfinished=unfinished)
        total = len(self) if mask is None else mask.count(1)
        shown = self._prepared(islice(self._rows(mask), max(first, 0)))
        return list(map(self._entry_at, shown)), total

    # -- queries -------------------------------------------------------------------------------

    def counts(self) -> dict[State, int]:
        """How many entries are in each state (states with none are left out), in the order
        each state first appears in the journal."""
        state = self._state
        present = sorted((at, code) for code in range(len(_STATES))
                         if (at := state.find(code)) >= 0)
        return {_STATES[code]: state.count(code) for _, code in present}

    def summary(self, batch: str | None = None) -> Summary:
        """Counts, oldest pending, next due and stuck (of one batch, if named), decoding as
        little as possible."""
        if batch is None:
            counts = self.counts()
            if self._times is None:
                self._times = self._pending_times(None)
            oldest, due = self._times
        else:
            code = self._codes.get(batch)
            counts = self._batch_counts(code) if code in self._tally else {}
            oldest, due = self._pending_times(batch) if counts.get(State.PENDING) else (
                math.inf, math.inf)
        return Summary(counts, None if oldest == math.inf else oldest,
                       None if due == math.inf else due, counts.get(State.RUNNING, 0))

    def _pending_times(self, batch: str | None) -> tuple[float, float]:
        self._scheduled()
        mask = self._mask(state=State.PENDING, batch=batch)
        assert mask is not None
        return (min(compress(self._created, mask), default=math.inf),
                min(compress(self._due, mask), default=math.inf))

    def _counted(self) -> dict[int, list[int]]:
        """`_tally`, recounted from the columns if a fold left it stale (one C-level count
        costs less than keeping a drain's million moves counted as they come)."""
        if self._stale:
            width = len(_STATES)
            counts = Counter(map(operator.add, map(operator.mul, self._batch, repeat(width)),
                                 self._state))
            for b, tally in self._tally.items():
                tally[:] = [counts.get(b * width + s, 0) for s in range(width)]
            self._stale = False
        return self._tally

    def _batch_counts(self, code: int) -> dict[State, int]:
        """A batch's counts, states in the order they first appear among its rows."""
        tally = self._counted()[code]
        present = [s for s, n in enumerate(tally) if n]
        if len(present) == 1:
            return {_STATES[present[0]]: tally[present[0]]}
        state, batches, head = self._state, self._batch, self._heads[code]
        firsts = []
        for s in present:
            at = state.find(s, head)
            while batches[at] != code:  # a row of another batch: look further (tally says >0)
                at = state.find(s, at + 1)
            firsts.append((at, s))
        return {_STATES[s]: tally[s] for _, s in sorted(firsts)}

    def batches(self) -> dict[str, BatchProgress]:
        """Progress per batch, batches in order of first appearance."""
        names = self._names
        return {names[b]: BatchProgress(names[b], self._batch_counts(b)) for b in self._tally}

    def batch_names(self) -> list[str]:
        """Every batch, in order of first appearance, counting nothing."""
        return [self._names[b] for b in self._tally]

    def batch_heads(self, batches: Iterable[str] | None = None) -> dict[str, Entry]:
        """The first entry of each batch (or of the ones named), decoding only those."""
        wanted = None if batches is None else set(batches)
        names = self._names
        heads = {names[b]: row for b, row in self._heads.items()
                 if wanted is None or names[b] in wanted}
        self._prepared(heads.values())
        return {name: self._entry_at(row) for name, row in heads.items()}

    def batch_queued(self, batches: Iterable[str] | None = None) -> dict[str, Entry]:
        """Each batch's first entry (or of the ones named) as its `queued` record made it:
        what later events never change (playbook, origin, created), decoding one line each."""
        wanted = None if batches is None else set(batches)
        names, decode = self._names, self._event
        return {names[b]: entry_of([self._records_first(row)], decode=decode)
                for b, row in self._heads.items() if wanted is None or names[b] in wanted}

    def _records_first(self, row: int) -> Record:
        place = self._place[row]
        return place if place else self._more_of(row)[0]

    def running_since(self, batch: str | None = None) -> list[tuple[str, float]]:
        """(id, `started or updated`) of each running entry (of one batch), in journal order,
        reading its last `started` line rather than decoding the entry where it can: what
        `status` needs to tell stuck entries from running ones."""
        rows = self._prepared(self._rows(self._mask(state=State.RUNNING, batch=batch)))
        ids, match, out = self._id_list(), _STARTED_TS.match, []
        for row in rows:
            since = None
            for record in reversed(self._records(row)):
                if isinstance(record, Event):
                    if record.type == ev.STARTED:
                        since = record.ts
                        break
                    continue
                line = self._raw(record)
                if line.startswith(b'{"t":"started"'):
                    found = match(line)
                    since = float(found[1]) if found else None
                    break
            if not since:  # none read, or 0.0: as the entry has it
                entry = self._entry_at(row)
                since = entry.started or entry.updated
            out.append((ids[row], since))
        return out

    def entries_of(self, ids: Iterable[str]) -> list[Entry]:
        """The entries with these ids, in that order (KeyError for one there is not)."""
        return list(map(self._entry_at, self._prepared(map(self._lookup().__getitem__, ids))))

    def pending(self) -> list[Entry]:
        """Every pending entry, due or not, in id order."""
        return self.entries(state=State.PENDING)

    def stuck(self) -> list[Entry]:
        """Running entries: started, no outcome recorded (the drain may have died)."""
        return self.entries(state=State.RUNNING)

    def expired(self, now: float) -> list[Entry]:
        """Pending entries whose `expires` time has passed."""
        return [e for e in self.pending() if e.expires is not None and e.expires <= now]
