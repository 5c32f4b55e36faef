"""The fold: journal events → the current `Entry` of every id, plus the queries built on it.

An entry's state depends only on the sequence of its event types, so the ledger tracks state,
batch and device eagerly (from `heads.peek`, without decoding lines) and decodes an entry's
records into an `Entry` only when asked for it. A record is a decoded `Event`, a raw line, or
(from the journal) the line's position in the file, packed as `offset << 32 | length` and read
back through `read_at`.

The ledger is built in layers, one module each: `journal.columns` holds the rows (the layout
is described there), `journal.folding` folds events into them, and here `Ledger` answers the
queries and dumps and loads its columns for a snapshot.

The rules for one entry are in `journal.entry` (`fold`).
"""

from __future__ import annotations

import marshal
import math
import operator
import re
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import accumulate, chain, compress, islice, repeat
from typing import Any

from cmdctl.core.errors import InputError
from cmdctl.core.model import Entry, State
from cmdctl.journal import events as ev
from cmdctl.journal.columns import (
    _CODE,
    _PENDING,
    _STATE_TABLES,
    _STATES,
    _UNFINISHED_TABLE,
    Problem,
    ReadAt,
    Record,
)
from cmdctl.journal.entry import entry_of
from cmdctl.journal.events import Event
from cmdctl.journal.folding import Folding

__all__ = ["BatchProgress", "Ledger", "Problem", "ReadAt", "Record", "Summary"]

#: The `ts` of a `started` line as `events.encode` writes it (others are decoded).
_STARTED_TS = re.compile(rb'\{"t":"started","id":"[^"\\]*","ts":([-+.eE0-9]+),')


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


class Ledger(Folding):
    """Current entries, folded from events in journal order."""

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

    # -- entries -----------------------------------------------------------------------------

    def get(self, entry_id: str) -> Entry:
        """The entry with exactly this id; KeyError if there is none."""
        return self._entry_at(self._lookup()[entry_id])

    def records(self, entry_id: str) -> list[Event | bytes]:
        """The entry's records in journal order: events, or raw lines as the journal holds them."""
        raw = self._raw
        return [r if isinstance(r, Event) else raw(r)
                for r in self._records(self._lookup()[entry_id])]

    def first_record(self, entry_id: str) -> Event | bytes:
        """The entry's first record (its `queued` event or line), gathering none of the others:
        a loop over many entries that looks at each one's head stays one pass, where `records`
        would pass over the whole log for each (`entries_of` gathers many in one pass)."""
        record = self._records_first(self._lookup()[entry_id])
        return record if isinstance(record, Event) else self._raw(record)

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

    def due_at(self, place: int) -> float | None:
        """`not_before` of the pending entry at `place` (as `rows_in` gives it) when the ledger
        knows it without reading the entry: its only record is its `queued` line; else None."""
        if place in self._unscheduled or self._state[place] != _PENDING:
            return None
        return self._due[place]

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
