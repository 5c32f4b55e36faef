"""The ledger's columns: how every entry's state, batch, device and records are held.

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

`Columns` adds rows and records one at a time and reads a row's records back into an `Entry`;
folding many lines at once is `journal.folding`, the queries and snapshots `journal.ledger`.
"""

from __future__ import annotations

import marshal
import math
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import compress

from cmdctl.core.errors import JournalError
from cmdctl.core.model import Entry, State
from cmdctl.journal import events as ev
from cmdctl.journal import heads
from cmdctl.journal.entry import FINISHED_STATES, entry_of
from cmdctl.journal.events import Event, EventDecodeError

_STATES = tuple(State)
_CODE = {state: i for i, state in enumerate(_STATES)}
_PENDING = _CODE[State.PENDING]
_RUNNING = _CODE[State.RUNNING]
_FINISHED_CODES = frozenset(_CODE[s] for s in FINISHED_STATES)
_NAN = math.nan
_UNKNOWN_TIMES = (math.inf, math.inf)  # `_times` as it starts: no pending entry yet

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


class Columns:
    """The ledger's rows as columns: rows and records added, a row's records read back."""

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
            times = heads.peek_schedule(self._raw(place))
            if times is not None:
                return times[0], times[1]
        records = self._more_of(row) if not place else None
        if records is not None and len(records) == 1 and not isinstance(records[0], Event):
            times = heads.peek_schedule(self._raw(records[0]))
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
