"""Journal event records (`"v": 1`) and their one-line JSON encoding.

A line is one JSON object whose first keys are always, in this order, `"t"` (event type), `"id"`
(entry id), `"ts"` (epoch seconds), `"v"` (record version), then the event's own fields in a
fixed order. The fixed head lets readers (`cmdctl.journal.heads`) learn the type, id and batch
of a line without decoding it. Keys `m` and `c` are reserved for the journal's framing and
dropped by `decode`.

Readers must tolerate event types they do not know (a newer cmdctl wrote them): `decode` returns
them like any other event and the ledger keeps them without changing state.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring
from typing import Any

from cmdctl.core import slots
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


#: `Event(type, id, ts, fields, v)`, every field given, built in half the time (a drain makes
#: two per command: `cmdctl.core.slots`).
new_event: Callable[[str, str, float, Mapping[str, JSONValue], int], Event]
new_event = slots.constructor(Event)


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


def _encode_generic(
    event: Event, head: str, bodies: dict[int, tuple[Any, str]] | None = None
) -> str:
    """`bodies`: for one batch, id(fields) → (those fields, their encoding), so that events
    sharing one fields object (a chunk's `started` events) encode it once."""
    fields = event.fields
    if not fields:
        return head + "}"
    if bodies is not None:
        known = bodies.get(id(fields))
        if known is not None and known[0] is fields:
            return f"{head},{known[1]}"
    bad = RESERVED.intersection(fields)
    if bad:
        raise ValueError(f"event fields may not use reserved keys {sorted(bad)}")
    body = _flat(fields)
    if body is None:
        body = _dumps(dict(fields))[1:]
    if bodies is not None:
        bodies[id(fields)] = (fields, body)
    return f"{head},{body}"


#: `"key":` of the field names seen, as `_dumps` writes them.
_KEYS: dict[str, str] = {}


def _flat(fields: Mapping[str, JSONValue]) -> str | None:
    """`fields` without the opening brace, byte for byte as `_dumps` writes them, when every
    key is a string and every value a plain scalar (a drain's `started` and `done` events);
    None otherwise. Skips the encoder's per-call set-up, which is most of a small event's cost."""
    parts = []
    for key, value in fields.items():
        if type(key) is not str:
            return None
        name = _KEYS.get(key)
        if name is None:
            if len(_KEYS) >= 4096:
                _KEYS.clear()
            name = _KEYS[key] = encode_basestring(key) + ":"
        kind = type(value)
        if kind is str:
            parts.append(name + encode_basestring(value))
        elif kind is float:
            if not math.isfinite(value):
                return None  # `_dumps` raises its own error
            parts.append(name + float.__repr__(value))
        elif kind is int:
            parts.append(name + int.__repr__(value))
        elif value is None:
            parts.append(name + "null")
        elif kind is bool:
            parts.append(name + ("true" if value else "false"))
        else:
            return None
    return ",".join(parts) + "}"


def encode(event: Event) -> str:
    """The event as one JSON line (no newline)."""
    return encode_many([event])[0]


def encode_many(events: Iterable[Event]) -> Sequence[str]:
    """Encode a batch; a command shared by many entries is encoded once per batch.

    A list, except for `PreEncoded` events: lines made as they are read (`lines()`).
    """
    if isinstance(events, PreEncoded):
        return events.lines()
    cache: dict[Any, str] = {}
    bodies: dict[int, tuple[Any, str]] = {}
    # (type, v, id(ts), id(fields)) → (ts, fields, the line's text before the id, after it):
    # a chunk's `started` (and `done`) events share their time and fields objects and differ
    # in id only, so each after the first is its id spliced into the first one's line.
    runs: dict[tuple[Any, ...], tuple[Any, Any, str, str]] = {}
    out = []
    esc = encode_basestring
    for event in events:
        kind, ts, fields = event.type, event.ts, event.fields
        if kind == QUEUED:
            try:
                out.append(_encode_queued(event, cache))
                continue
            except _Fallback:
                pass
        elif type(event.id) is str:
            key = (kind, event.v, id(ts), id(fields))
            run = runs.get(key)
            if run is not None and run[0] is ts and run[1] is fields:
                out.append(f"{run[2]}{esc(event.id)}{run[3]}")
                continue
            line = _encode_generic(event, _head(event), bodies)
            start = f'{{"t":{esc(kind)},"id":'
            runs[key] = (ts, fields, start, line[len(start) + len(esc(event.id)) :])
            out.append(line)
            continue
        out.append(_encode_generic(event, _head(event), bodies))
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


class PreEncoded(Sequence[Event]):
    """Events that make their own lines (`encode_many` returns `lines()`): a bulk's runs
    (`cmdctl.journal.runs.QueuedRuns`)."""

    __slots__ = ()

    def lines(self) -> Sequence[str]:
        """The events' lines, as `encode_many` would make them."""
        raise NotImplementedError


def format_ts(value: float) -> str:
    """A time as the encoder writes it (what `"ts"` holds)."""
    return _ts(value)


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
