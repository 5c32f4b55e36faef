"""Journal event records (`"v": 1`) and their one-line JSON encoding.

A line is one JSON object whose first keys are always, in this order, `"t"` (event type), `"id"`
(entry id), `"ts"` (epoch seconds), `"v"` (record version), then the event's own fields in a
fixed order. The fixed head lets readers (`peek`) learn the type, id and batch of a line without
decoding it. Keys `m` and `c` are reserved for the journal's framing and dropped by `decode`.

Readers must tolerate event types they do not know (a newer cmdctl wrote them): `decode` returns
them like any other event and the ledger keeps them without changing state.
"""

from __future__ import annotations

import bisect
import gc
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from json.encoder import encode_basestring
from typing import Any, overload

from cmdctl.core.model import NO_COORDINATION, Entry, JSONValue, Priority
from cmdctl.journal.fleetkeys import coordination_fields

VERSION = 1

QUEUED = "queued"
STARTED = "started"
ATTEMPT_FAILED = "attempt_failed"
RESCHEDULED = "rescheduled"
DONE = "done"
FAILED = "failed"
CANCELLED = "cancelled"
EXPIRED = "expired"
SUPERSEDED = "superseded"
SKIPPED = "skipped"
UNKNOWN = "unknown"
REPRIORITISED = "reprioritised"
RETRIED = "retried"
HELD = "held"  # not taken by a drain for a reason (threshold crossed); still pending

KNOWN_TYPES = frozenset(
    {
        QUEUED,
        STARTED,
        ATTEMPT_FAILED,
        RESCHEDULED,
        DONE,
        FAILED,
        CANCELLED,
        EXPIRED,
        SUPERSEDED,
        SKIPPED,
        UNKNOWN,
        REPRIORITISED,
        RETRIED,
        HELD,
    }
)

#: Keys of the head and of the journal's framing; event fields may not use them.
RESERVED = frozenset({"t", "id", "ts", "v", "m", "c"})

#: Field order of a `queued` event: every `Entry` field fixed at queue time.
QUEUED_KEYS = (
    "batch",
    "device",
    "command",
    "priority",
    "created",
    "not_before",
    "expires",
    "idempotent",
    "verify",
    "max_attempts",
    "who",
    "origin",
    "step",
    "playbook",
)


_dumps = json.JSONEncoder(
    separators=(",", ":"), ensure_ascii=False, check_circular=False, allow_nan=False
).encode


def json_str(text: str) -> str:
    """`text` as the journal's encoder writes a JSON string (for matching raw lines)."""
    return encode_basestring(text)


class EventDecodeError(ValueError):
    """A line that is not a well-formed event record."""


@dataclass(frozen=True, slots=True)
class Event:
    """One journal record: something that happened to entry `id` at `ts`."""

    type: str
    id: str
    ts: float
    fields: Mapping[str, JSONValue] = field(default_factory=dict)
    v: int = VERSION

    def get(self, key: str, default: JSONValue = None) -> JSONValue:
        """A field's value, or `default`."""
        return self.fields.get(key, default)


class _Fallback(Exception):
    """The fast encoder met a value it does not handle; use the generic one."""


def _ts(value: float) -> str:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"event time must be finite, got {value!r}")
    return float.__repr__(number)


def _head(event: Event) -> str:
    if type(event.type) is not str or not event.type or type(event.id) is not str:
        raise ValueError(f"event needs a type and an id, got {event.type!r} / {event.id!r}")
    return (
        f'{{"t":{encode_basestring(event.type)},"id":{encode_basestring(event.id)},'
        f'"ts":{_ts(event.ts)},"v":{int(event.v)}'
    )


def _encode_queued(event: Event, cache: dict[Any, str]) -> str:
    """The hot path of `bulk`: a `queued` event as built by `queued()`, without json.dumps.

    `cache` lives for one batch. Entries of a bulk differ mostly in id and device, so everything
    after "device" is encoded once per distinct (command, times, flags, who, step, ...). The
    fields are read from the entry when `queued()` made the event (no dict is built), else from
    the dict; both give the same key and the same bytes.
    """
    f = event.fields
    if type(f) is QueuedFields and _plain(f.entry):
        e = f.entry
        cmd = e.command
        values: tuple[Any, ...] = (
            cmd.args, cmd.domain, cmd.target, _PRIORITY_TEXT[e.priority], e.created,
            e.not_before, e.expires, e.idempotent, e.verify, e.max_attempts, e.who, e.origin,
            e.step, e.playbook,
        )  # fmt: skip
        batch, device = e.batch, e.device
    else:
        if type(f) is QueuedFields:
            f = f.as_dict()
        if type(f) is not dict or len(f) != len(QUEUED_KEYS):
            raise _Fallback
        try:
            c = f["command"]
            values = (
                c["args"], c["domain"], c["target"], f["priority"], f["created"],
                f["not_before"], f["expires"], f["idempotent"], f["verify"], f["max_attempts"],
                f["who"], f["origin"], f["step"], f["playbook"],
            )  # fmt: skip
            batch, device = f["batch"], f["device"]
        except (KeyError, TypeError) as err:
            raise _Fallback from err
    key = _tail_key(values)
    ts = event.ts
    # x - x is 0.0 (falsy) only for finite floats; NaN and infinities are not JSON.
    if type(ts) is not float or ts - ts or type(event.v) is not int:
        raise _Fallback
    try:
        tail = cache.get(key)
    except TypeError as err:  # an unhashable value where a string belongs
        raise _Fallback from err
    if tail is None:
        tail = _queued_tail(f.as_dict() if isinstance(f, QueuedFields) else f)
        cache[key] = tail
    r_ts = repr(ts) if ts == 0.0 else (cache.get(ts) or cache.setdefault(ts, repr(ts)))
    esc = encode_basestring
    try:
        return (
            f'{{"t":"queued","id":{esc(event.id)},"ts":{r_ts},"v":{event.v},'
            f'"batch":{esc(batch)},"device":{esc(device)},{tail}'
        )
    except TypeError as err:  # a non-str where a str belongs
        raise _Fallback from err


def _plain(entry: Entry) -> bool:
    """An entry whose `queued` record has exactly `QUEUED_KEYS` (and an args dict to key by)."""
    return (
        entry.coordination is NO_COORDINATION
        and not entry.extra
        and type(entry.command.args) is dict
    )


def _tail_key(values: tuple[Any, ...]) -> tuple[Any, ...]:
    """The cache key of what follows "device": the args by identity, the rest by value."""
    args, domain, target, priority, created, not_before, expires, idem, verify, attempts, *rest = (
        values
    )
    # The cache compares with ==: 1 == 1.0 == True and 0.0 == -0.0, but they encode
    # differently. Types are pinned here, and a zero is keyed by its text.
    if (
        type(created) is not float
        or type(not_before) is not float
        or (expires is not None and type(expires) is not float)
        or type(idem) is not bool
        or type(verify) is not bool
        or type(attempts) is not int
    ):
        raise _Fallback
    return (
        id(args), domain, target, priority,
        repr(created) if created == 0.0 else created,
        repr(not_before) if not_before == 0.0 else not_before,
        repr(expires) if expires == 0.0 else expires,
        idem, verify, attempts, *rest,
    )  # fmt: skip


def _queued_tail(f: dict[str, Any]) -> str:
    cmd, created, not_before, expires = f["command"], f["created"], f["not_before"], f["expires"]
    idem, verify, attempts, playbook = (
        f["idempotent"],
        f["verify"],
        f["max_attempts"],
        f["playbook"],
    )
    if (
        type(cmd) is not dict
        or tuple(cmd) != ("domain", "target", "args")
        or type(created) is not float
        or type(not_before) is not float
        or created - created
        or not_before - not_before
        or (expires is not None and (type(expires) is not float or expires - expires))
        or type(idem) is not bool
        or type(verify) is not bool
        or type(attempts) is not int
    ):
        raise _Fallback
    esc = encode_basestring
    try:
        return (
            f'"command":{_dumps(cmd)},"priority":{esc(f["priority"])},"created":{created!r},'
            f'"not_before":{not_before!r},"expires":{"null" if expires is None else repr(expires)},'
            f'"idempotent":{"true" if idem else "false"},"verify":{"true" if verify else "false"},'
            f'"max_attempts":{attempts},"who":{esc(f["who"])},"origin":{esc(f["origin"])},'
            f'"step":{esc(f["step"])},"playbook":{"null" if playbook is None else esc(playbook)}}}'
        )
    except TypeError as err:
        raise _Fallback from err


def _encode_generic(event: Event, head: str) -> str:
    fields = event.fields
    if not fields:
        return head + "}"
    bad = RESERVED.intersection(fields)
    if bad:
        raise ValueError(f"event fields may not use reserved keys {sorted(bad)}")
    body = _dumps(dict(fields))
    return f"{head},{body[1:]}"


def encode(event: Event) -> str:
    """The event as one JSON line (no newline)."""
    return encode_many([event])[0]


def encode_many(events: Iterable[Event]) -> Sequence[str]:
    """Encode a batch; a command shared by many entries is encoded once per batch.

    A list, except for `QueuedRuns`: lines made as they are read (`QueuedRuns.lines`).
    """
    if type(events) is QueuedRuns:
        return events.lines()
    cache: dict[Any, str] = {}
    out = []
    for event in events:
        if event.type == QUEUED:
            try:
                out.append(_encode_queued(event, cache))
                continue
            except _Fallback:
                pass
        out.append(_encode_generic(event, _head(event)))
    return out


def decode(line: str | bytes) -> Event:
    """Parse one line; raises EventDecodeError when it is not an event record."""
    try:
        obj = json.loads(line)
    except (ValueError, UnicodeDecodeError) as err:
        raise EventDecodeError(f"not JSON: {err}") from err
    return event_of(obj)


def event_of(obj: Any) -> Event:
    """The event a line's parsed JSON describes (`obj` is taken apart); EventDecodeError."""
    if not isinstance(obj, dict):
        raise EventDecodeError("not a JSON object")
    kind = obj.pop("t", None)
    ident = obj.pop("id", None)
    ts = obj.pop("ts", None)
    version = obj.pop("v", None)
    obj.pop("m", None)
    obj.pop("c", None)
    if not isinstance(kind, str) or not kind:
        raise EventDecodeError("missing event type")
    if not isinstance(ident, str) or not ident:
        raise EventDecodeError("missing entry id")
    if isinstance(ts, bool) or not isinstance(ts, int | float):
        raise EventDecodeError("missing event time")
    if isinstance(version, bool) or not isinstance(version, int):
        raise EventDecodeError("missing record version")
    return Event(kind, ident, float(ts), obj, version)


#: The fixed head of a line: type, id and, for `queued`, batch and device (no JSON escapes).
HEAD = re.compile(
    rb'\{"t":"([^"\\]*)","id":"([^"\\]*)"'
    rb'(?:,"ts":[-+.eE0-9]+,"v":[0-9]+,"batch":"([^"\\]*)","device":"([^"\\]*)")?'
)


def peek(line: bytes) -> tuple[bytes, str, tuple[str, str] | None] | None:
    """(type, id, (batch, device) for `queued`) from a line's fixed head; None if not canonical."""
    match = HEAD.match(line)
    if match is None:
        return None
    kind, raw_id, batch, device = match.groups()
    if kind != b"queued":
        return kind, raw_id.decode(), None
    if batch is None:
        return None
    return kind, raw_id.decode(), (batch.decode(), device.decode())


def peek_schedule(line: bytes) -> tuple[float, float, float | None] | None:
    """(created, not_before, expires) of a canonical `queued` line, or None if not canonical."""
    at = line.rfind(b',"created":')
    end = line.find(b',"idempotent":', at)
    if at < 0 or end < 0:
        return None
    parts = line[at + 11 : end].split(b",")
    if (
        len(parts) != 3
        or not parts[1].startswith(b'"not_before":')
        or not parts[2].startswith(b'"expires":')
    ):
        return None
    try:
        expires = parts[2][10:]
        return (
            float(parts[0]),
            float(parts[1][13:]),
            None if expires == b"null" else float(expires),
        )
    except ValueError:
        return None


# -- constructors ------------------------------------------------------------------------------


_PRIORITY_TEXT = {level: level.value for level in Priority}


def queued(entry: Entry, ts: float | None = None) -> Event:
    """The event that puts `entry` in the journal.

    Its fields are read from `entry` when asked (`QueuedFields`): a bulk of 100,000 entries
    would otherwise build 100,000 dicts only to encode them.
    """
    return Event(QUEUED, entry.id, entry.created if ts is None else ts, QueuedFields(entry))


def queued_fields(entry: Entry) -> dict[str, Any]:
    """The fields of `entry`'s `queued` event, as a dict."""
    cmd = entry.command
    args = cmd.args if type(cmd.args) is dict else dict(cmd.args)
    fields: dict[str, Any] = {
        "batch": entry.batch,
        "device": entry.device,
        "command": {"domain": cmd.domain, "target": cmd.target, "args": args},
        "priority": _PRIORITY_TEXT[entry.priority],  # `.value` of an enum is slow in bulk
        "created": entry.created,
        "not_before": entry.not_before,
        "expires": entry.expires,
        "idempotent": entry.idempotent,
        "verify": entry.verify,
        "max_attempts": entry.max_attempts,
        "who": entry.who,
        "origin": entry.origin,
        "step": entry.step,
        "playbook": entry.playbook,
    }
    if entry.coordination is not NO_COORDINATION and entry.coordination:
        fields.update(coordination_fields(entry.coordination))
    if entry.extra:
        fields.update((k, v) for k, v in entry.extra.items() if k not in fields)
    return fields


class QueuedFields(Mapping[str, JSONValue]):
    """The fields of a `queued` event, read from its entry: the dict `queued_fields` gives,
    built only when a reader asks for more than the four every append's delta reads."""

    __slots__ = ("_dict", "entry")

    def __init__(self, entry: Entry) -> None:
        self.entry = entry
        self._dict: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """The fields as a dict (built once)."""
        if self._dict is None:
            self._dict = queued_fields(self.entry)
        return self._dict

    def __getitem__(self, key: str) -> JSONValue:
        entry = self.entry
        if key == "batch":
            return entry.batch
        if key == "device":
            return entry.device
        if key == "created":
            return entry.created
        if key == "not_before":
            return entry.not_before
        return self.as_dict()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.as_dict())

    def __len__(self) -> int:
        return len(self.as_dict())

    def __repr__(self) -> str:
        return repr(self.as_dict())


# -- runs: the `queued` events of a bulk, encoded from what its entries share -----------------


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


class QueuedRuns(Sequence[Event]):
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
            mid = f',"ts":{_ts(like.created)},"v":{VERSION},"batch":{batch},"device":'
            head = f'{{"t":"queued","id":{encode_basestring(run.ids[0])}{mid}' \
                f'{encode_basestring(run.devices[0])},'
            if first.startswith(head):
                parts = mid, first[len(head):]
        self._made[k] = parts
        return parts


def started(entry_id: str, ts: float, *, attempt: int, run: str) -> Event:
    """A drain (run `run`) began attempt number `attempt`."""
    return Event(STARTED, entry_id, ts, {"attempt": attempt, "run": run})


def attempt_failed(
    entry_id: str, ts: float, *, error: str, kind: str, retry_at: float | None
) -> Event:
    """One attempt failed; a `rescheduled` or `failed` event follows in the same append."""
    return Event(ATTEMPT_FAILED, entry_id, ts, {"error": error, "kind": kind, "retry_at": retry_at})


def rescheduled(entry_id: str, ts: float, *, not_before: float, attempts: int) -> Event:
    """Back to pending, not due before `not_before`."""
    return Event(RESCHEDULED, entry_id, ts, {"not_before": not_before, "attempts": attempts})


def done(
    entry_id: str,
    ts: float,
    *,
    outcome: str,
    duration: float,
    ran_on: str | None = None,
    waited: float | None = None,
) -> Event:
    """Finished: `outcome` is "confirmed" or "delivered"; `waited`: seconds its `wait_until:`
    state took to show, after the command."""
    fields: dict[str, JSONValue] = {"outcome": outcome, "duration": duration}
    if ran_on is not None:
        fields["ran_on"] = ran_on
    if waited is not None:
        fields["waited"] = waited
    return Event(DONE, entry_id, ts, fields)


def failed(
    entry_id: str, ts: float, *, error: str, kind: str, attempts: int | None = None
) -> Event:
    """Failed for good; `attempts`: the attempts it used, when the failure counts one that
    has no `started` event (the device could not be reached before it was sent)."""
    fields: dict[str, JSONValue] = {"error": error, "kind": kind}
    if attempts is not None:
        fields["attempts"] = attempts
    return Event(FAILED, entry_id, ts, fields)


def cancelled(entry_id: str, ts: float, *, who: str, reason: str = "") -> Event:
    """A person cancelled it."""
    return Event(CANCELLED, entry_id, ts, {"who": who, "reason": reason})


def expired(entry_id: str, ts: float, *, reason: str = "") -> Event:
    """Not executed before its `expires` time."""
    return Event(EXPIRED, entry_id, ts, {"reason": reason})


def superseded(entry_id: str, ts: float, *, by: str) -> Event:
    """A newer entry (`by`) sets the same entity."""
    return Event(SUPERSEDED, entry_id, ts, {"by": by})


def skipped(entry_id: str, ts: float, *, reason: str) -> Event:
    """A prerequisite failed."""
    return Event(SKIPPED, entry_id, ts, {"reason": reason})


def held(entry_id: str, ts: float, *, reason: str) -> Event:
    """Left pending on purpose by a drain (a failure threshold); `reason` says why."""
    return Event(HELD, entry_id, ts, {"reason": reason})


def unknown(entry_id: str, ts: float, *, reason: str) -> Event:
    """Interrupted mid-flight and not safe to repeat: a person must decide."""
    return Event(UNKNOWN, entry_id, ts, {"reason": reason})


def reprioritised(entry_id: str, ts: float, *, priority: Priority) -> Event:
    """New priority."""
    return Event(REPRIORITISED, entry_id, ts, {"priority": priority.value})


def retried(entry_id: str, ts: float, *, who: str) -> Event:
    """A person asked to run it again: back to pending with fresh attempts."""
    return Event(RETRIED, entry_id, ts, {"who": who})
