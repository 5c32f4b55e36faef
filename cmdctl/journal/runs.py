"""`journal.runs`: a bulk's `queued` events, encoded from what its entries share.

A playbook step on 1,000 devices is one `Run`: its entries differ only in id and device, so its
1,000 lines share everything after `"device"`. `QueuedRuns` is the append `bulk` hands to
`Journal.append`: `encode_many` takes its lines from `RunLines` (each made when read), the
append's delta record reads its `columns()`, and no `Entry` or `Event` is made per command. The
bytes are the event-by-event encoder's (tests/journal/test_runs.py).
"""

from __future__ import annotations

import bisect
import gc
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from json.encoder import encode_basestring
from typing import Any, overload

from cmdctl.core.model import Entry, JSONValue
from cmdctl.journal.events import (
    QUEUED,
    VERSION,
    Event,
    PreEncoded,
    encode,
    encode_many,
    format_ts,
    queued,
    queued_fields,
)


@dataclass(frozen=True, slots=True)
class Run:
    """Entries queued together that differ only in id and device: `like` is any one of them
    (its own id and device are not used), the i-th has id `ids[i]` and runs on `devices[i]`.

    A playbook step on 1,000 devices is one run: its 1,000 lines share all after "device".
    """

    like: Entry
    ids: Sequence[str]
    devices: Sequence[str]

    def __post_init__(self) -> None:
        if len(self.ids) != len(self.devices):
            raise ValueError(f"a run of {len(self.ids)} ids on {len(self.devices)} devices")

    def entry(self, index: int) -> Entry:
        """Its `index`-th entry."""
        return replace(self.like, id=self.ids[index], device=self.devices[index])


class QueuedRuns(PreEncoded):
    """The `queued` events of the entries of `runs`, in order: `[queued(e) for e in entries]`
    without an `Entry` and an `Event` made per command only to be encoded (a bulk of 100,000).

    `encode_many` gives their lines, each made when it is read from its run's shared part
    and a head of id and device; the bytes are the event-by-event encoder's (a run whose first
    line does not start with that head is encoded event by event). The events themselves,
    which the append's delta record reads, are made once, when first asked for.
    """

    __slots__ = ("_events", "_runs", "_size")

    def __init__(self, runs: Iterable[Run]) -> None:
        self._runs = tuple(run for run in runs if run.ids)
        self._size = sum(len(run.ids) for run in self._runs)
        self._events: list[Event] | None = None

    @property
    def runs(self) -> tuple[Run, ...]:
        """The runs, in order (empty ones left out)."""
        return self._runs

    def __len__(self) -> int:
        return self._size

    @overload
    def __getitem__(self, index: int) -> Event: ...

    @overload
    def __getitem__(self, index: slice) -> list[Event]: ...

    def __getitem__(self, index: int | slice) -> Event | list[Event]:
        return self._all()[index]

    def __iter__(self) -> Iterator[Event]:
        return iter(self._all())

    def __repr__(self) -> str:
        return f"QueuedRuns({len(self._runs)} runs, {self._size} events)"

    def _all(self) -> list[Event]:
        if self._events is None:
            gc_was_on = gc.isenabled()
            gc.disable()  # 200,000 small acyclic objects: collections would only cost time
            try:
                self._events = [
                    Event(QUEUED, entry_id, run.like.created, RunFields(run, device))
                    for run in self._runs
                    for entry_id, device in zip(run.ids, run.devices, strict=True)
                ]
            finally:
                if gc_was_on:
                    gc.enable()
        return self._events

    def lines(self) -> Sequence[str]:
        """The events' lines, made as they are read (what `encode_many` returns)."""
        return RunLines(self._runs, self._size)

    def columns(self) -> tuple[list[str], list[str], list[str], list[float], list[float]]:
        """(ids, batches, devices, created, not_before) of the events, in order, without
        making them: what an append's delta record reads of each (`journal.delta`)."""
        ids: list[str] = []
        batches: list[str] = []
        devices: list[str] = []
        created: list[float] = []
        not_before: list[float] = []
        for run in self._runs:
            n, like = len(run.ids), run.like
            ids += run.ids
            devices += run.devices
            batches += [like.batch] * n
            created += [like.created] * n
            not_before += [like.not_before] * n
        return ids, batches, devices, created, not_before


class RunFields(Mapping[str, JSONValue]):
    """The fields of the event of a run's entry on `device` (an event's fields do not hold
    its id): `queued_fields` of that entry, made only when a reader asks for more than the
    four every append's delta reads."""

    __slots__ = ("_fields", "device", "run")

    def __init__(self, run: Run, device: str) -> None:
        self.run = run
        self.device = device
        self._fields: dict[str, Any] | None = None

    def _all(self) -> dict[str, Any]:
        if self._fields is None:
            self._fields = queued_fields(replace(self.run.like, device=self.device))
        return self._fields

    def __getitem__(self, key: str) -> JSONValue:
        like = self.run.like
        if key == "batch":
            return like.batch
        if key == "device":
            return self.device
        if key == "created":
            return like.created
        if key == "not_before":
            return like.not_before
        return self._all()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())

    def __repr__(self) -> str:
        return repr(self._all())


class RunLines(Sequence[str]):
    """`encode_many` of a `QueuedRuns`: each line made when it is read."""

    __slots__ = ("_made", "_runs", "_size", "_starts")

    def __init__(self, runs: tuple[Run, ...], size: int) -> None:
        self._runs = runs
        self._size = size
        self._starts: list[int] = []
        at = 0
        for run in runs:
            self._starts.append(at)
            at += len(run.ids)
        self._made: dict[int, tuple[str, str] | None] = {}

    def __len__(self) -> int:
        return self._size

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> list[str]: ...

    def __getitem__(self, index: int | slice) -> str | list[str]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._size))]
        if index < 0:
            index += self._size
        if not 0 <= index < self._size:
            raise IndexError("line index out of range")
        k = bisect.bisect_right(self._starts, index) - 1
        run, at = self._runs[k], index - self._starts[k]
        parts = self._parts(k)
        if parts is None:
            return encode(queued(run.entry(at)))
        mid, rest = parts
        return f'{{"t":"queued","id":{encode_basestring(run.ids[at])}{mid}' \
            f'{encode_basestring(run.devices[at])},{rest}'

    def __iter__(self) -> Iterator[str]:
        return self._lines(closed=True)

    def opened(self) -> Iterator[str]:
        """The lines without their closing brace (what the framing adds its keys to)."""
        return self._lines(closed=False)

    def _lines(self, *, closed: bool) -> Iterator[str]:
        esc = encode_basestring
        for k, run in enumerate(self._runs):
            parts = self._parts(k)
            if parts is None:
                lines = encode_many([queued(run.entry(i)) for i in range(len(run.ids))])
                yield from (lines if closed else (line[:-1] for line in lines))
                continue
            mid, rest = parts
            if not closed:
                rest = rest[:-1]
            for entry_id, device in zip(run.ids, run.devices, strict=True):
                yield f'{{"t":"queued","id":{esc(entry_id)}{mid}{esc(device)},{rest}'

    def _parts(self, k: int) -> tuple[str, str] | None:
        """The run's line after the id up to the device, and after the device; None: the run
        is encoded event by event. Taken from its first line as the event encoder writes it."""
        if k in self._made:
            return self._made[k]
        run = self._runs[k]
        first = encode(queued(run.entry(0)))  # raises as the event-by-event encoder would
        like = run.like
        parts = None
        if (
            type(like.batch) is str
            and set(map(type, run.ids)) == {str}
            and set(map(type, run.devices)) == {str}
        ):
            batch = encode_basestring(like.batch)
            mid = f',"ts":{format_ts(like.created)},"v":{VERSION},"batch":{batch},"device":'
            head = f'{{"t":"queued","id":{encode_basestring(run.ids[0])}{mid}' \
                f'{encode_basestring(run.devices[0])},'
            if first.startswith(head):
                parts = mid, first[len(head):]
        self._made[k] = parts
        return parts
