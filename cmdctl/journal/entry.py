"""One entry: the `Entry` a `queued` event describes, and each later event folded into it.

Fold rules (`fold`):
  queued → PENDING · started → RUNNING, attempts = the attempt number (else +1)
  attempt_failed → stays RUNNING, records the error; the drain appends `rescheduled` or `failed`
  in the same append, so the pair is atomic · rescheduled → PENDING with the new not_before
  done → DONE (outcome) · failed → FAILED (outcome = error kind) · cancelled / expired /
  superseded / skipped → that state · unknown → UNKNOWN (a person decides) · reprioritised →
  new priority, same state · held → same state (PENDING), reason set (why a drain left it) ·
  started clears the reason of a PENDING entry · retried → PENDING with attempts reset to 0
  (a person asked for a fresh run) and the outcome cleared · any other type → kept, state unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from cmdctl.core.model import NO_COORDINATION, Command, Entry, Priority, State, queued_entry
from cmdctl.journal import events as ev
from cmdctl.journal import fleetkeys
from cmdctl.journal.events import Event, EventDecodeError

#: The state each event type moves an entry to (types not listed leave the state alone).
TRANSITIONS: dict[str, State] = {
    ev.QUEUED: State.PENDING,
    ev.STARTED: State.RUNNING,
    ev.RESCHEDULED: State.PENDING,
    ev.DONE: State.DONE,
    ev.FAILED: State.FAILED,
    ev.CANCELLED: State.CANCELLED,
    ev.EXPIRED: State.EXPIRED,
    ev.SUPERSEDED: State.SUPERSEDED,
    ev.SKIPPED: State.SKIPPED,
    ev.UNKNOWN: State.UNKNOWN,
    ev.RETRIED: State.PENDING,
}
FINISHED_STATES = frozenset(state for state in State if state.finished)
_TERMINAL = frozenset({ev.DONE, ev.FAILED, ev.CANCELLED, ev.EXPIRED, ev.SUPERSEDED, ev.SKIPPED})

_NO_EXTRA: Mapping[str, Any] = MappingProxyType({})  # read-only: shared by every entry


def _f(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EventDecodeError(f"expected a number, got {value!r}")
    return float(value)


def _s(value: Any) -> str:
    if not isinstance(value, str):
        raise EventDecodeError(f"expected a string, got {value!r}")
    return value


def entry_from_queued(event: Event) -> Entry:
    """The fresh `Entry` a `queued` event describes; EventDecodeError if fields are missing."""
    f = dict(event.fields)
    try:
        cmd = f.pop("command")
        if not isinstance(cmd, dict) or not isinstance(cmd.get("args", {}), dict):
            raise EventDecodeError("bad command")
        expires = f.pop("expires")
        playbook = f.pop("playbook")
        coordination = fleetkeys.pop_coordination(f)
        entry = Entry(
            id=event.id,
            batch=_s(f.pop("batch")),
            device=_s(f.pop("device")),
            command=Command(_s(cmd["domain"]), _s(cmd["target"]), cmd.get("args", {})),
            priority=Priority(f.pop("priority")),
            created=_f(f.pop("created")),
            not_before=_f(f.pop("not_before")),
            expires=None if expires is None else _f(expires),
            idempotent=bool(f.pop("idempotent")),
            verify=bool(f.pop("verify")),
            max_attempts=int(f.pop("max_attempts")),
            who=_s(f.pop("who")),
            origin=_s(f.pop("origin")),
            step=_s(f.pop("step")),
            playbook=None if playbook is None else _s(playbook),
            updated=event.ts,
            coordination=coordination,
            extra=f if f else _NO_EXTRA,  # the popped dict keeps its size: share one empty
        )
    except (KeyError, ValueError, TypeError) as err:
        raise EventDecodeError(f"queued record for {event.id} is incomplete: {err}") from err
    return entry


#: Strings that thousands of entries share (a batch's id, a device's name, the step...).
_INTERNED = ("batch", "device", "who", "origin", "step", "playbook")


def entry_of(
    records: Sequence[Any],
    *,
    decode: Callable[[Any], Event] = ev.decode,
    intern: bool = False,
    ident: str | None = None,
) -> Entry:
    """The one fold: an entry from its records, the `queued` event first, then each later event
    in journal order. A record is an `Event`, or what `decode` takes (a raw line).
    EventDecodeError or ValueError if they do not describe an entry. `intern`: share the strings
    thousands of entries repeat (a drain may hold 100,000 entries). `ident`: the entry's id as
    the caller holds it already (the ledger's), kept instead of an equal copy when it matches.
    """
    if records and decode is ev.decode and type(records[0]) is bytes:
        quick = _quick(records[0], intern, ident)
        if quick is not None:
            if len(records) == 1:  # a pending entry, as a drain selects it
                return quick
            # Every record decoded before any is folded, as below: the same error comes first.
            later = [r if isinstance(r, Event) else decode(r) for r in records[1:]]
            entry = quick
            for event in later:
                entry = fold(entry, event)
            return entry
    events = [r if isinstance(r, Event) else decode(r) for r in records]
    if not events:
        raise EventDecodeError("no records")
    first = events[0]
    if intern:
        fields = dict(first.fields)
        for key in _INTERNED:
            value = fields.get(key)
            if type(value) is str:
                fields[key] = sys.intern(value)
        command = fields.get("command")
        if isinstance(command, dict):
            for key in ("domain", "target"):
                if type(command.get(key)) is str:
                    command[key] = sys.intern(command[key])
        first = Event(first.type, first.id, first.ts, fields, first.v)
    entry = entry_from_queued(first)
    for event in events[1:]:
        entry = fold(entry, event)
    return entry


#: Every key of a `queued` line as the journal's encoder writes it for an entry without fleet
#: keys or fields of a newer version (the framing's `m` and `c` may follow).
_PLAIN = frozenset({"t", "id", "ts", "v", *ev.QUEUED_KEYS})
_FRAMING = ("m", "c")
_FLEET = frozenset(fleetkeys.COORDINATION_KEYS)
_PRIORITIES = {p.value: p for p in Priority}
#: What `json.loads` runs once it has the text: a line's JSON without the per-call wrapping
#: (`loads` first guesses the encoding and checks for trailing data: `_quick` does both).
_scan: Callable[[str, int], tuple[Any, int]]
_scan = json.JSONDecoder().scan_once  # type: ignore[attr-defined]


def _quick(line: bytes, intern: bool, known: str | None = None) -> Entry | None:
    """The `Entry` of a plain `queued` line, built straight from its JSON; None for anything
    else (another event, fleet keys, unknown fields, a value of an unexpected type), which the
    general path (`ev.decode`, `entry_from_queued`) decides, errors included.

    A drain decodes every due entry of a pass: this skips the `Event` and the dict copies. It
    must give exactly what the general path gives (tests/journal/test_entry_quick.py).
    """
    if intern:
        fast = _from_tail(line, known)
        if fast is not None:
            return fast
    return _decoded(line, intern, known)


def _decoded(line: bytes, intern: bool, known: str | None) -> Entry | None:
    """`_quick` by decoding the whole line."""
    try:
        text = line.decode()
        obj, end = _scan(text, 0)
    except (ValueError, StopIteration):  # UnicodeDecodeError is a ValueError
        return None
    if end != len(text):  # whitespace or more after the object: the general path decides
        return None
    if type(obj) is not dict or obj.get("t") != ev.QUEUED:
        return None
    for key in _FRAMING:
        obj.pop(key, None)
    coordination = NO_COORDINATION
    if len(obj) != len(_PLAIN) or not _PLAIN.issuperset(obj):
        # Fleet keys (`after:`, `tags:`...) are taken out as the general path takes them;
        # any other key (a newer version's field) is for the general path to keep.
        if not _PLAIN.issubset(obj) or not _FLEET.issuperset(obj.keys() - _PLAIN):
            return None
        try:
            coordination = fleetkeys.pop_coordination(obj)
        except (KeyError, ValueError, TypeError):
            return None
    ident, ts, cmd = obj["id"], obj["ts"], obj["command"]
    created, not_before, expires = obj["created"], obj["not_before"], obj["expires"]
    batch, device, who, origin, step = (
        obj["batch"], obj["device"], obj["who"], obj["origin"], obj["step"]
    )
    playbook, idempotent, verify = obj["playbook"], obj["idempotent"], obj["verify"]
    max_attempts, version = obj["max_attempts"], obj["v"]
    priority = _PRIORITIES.get(obj["priority"]) if type(obj["priority"]) is str else None
    if (
        priority is None
        or type(ident) is not str or not ident
        or type(version) is not int
        or type(cmd) is not dict or len(cmd) != 3
        or type(cmd.get("args")) is not dict
        or type(cmd.get("domain")) is not str or type(cmd.get("target")) is not str
        or type(batch) is not str or type(device) is not str or type(who) is not str
        or type(origin) is not str or type(step) is not str
        or (playbook is not None and type(playbook) is not str)
        or type(idempotent) is not bool or type(verify) is not bool
        or type(max_attempts) is not int
        or type(ts) not in _NUMBERS or type(created) not in _NUMBERS
        or type(not_before) not in _NUMBERS
        or (expires is not None and type(expires) not in _NUMBERS)
    ):
        return None
    domain, target = cmd["domain"], cmd["target"]
    created, not_before, ts = float(created), float(not_before), float(ts)
    if known is not None and ident == known:
        ident = known
    if intern:
        batch, device, who = sys.intern(batch), sys.intern(device), sys.intern(who)
        origin, step = sys.intern(origin), sys.intern(step)
        if playbook is not None:
            playbook = sys.intern(playbook)
        command = _shared_command(domain, target, cmd["args"])
        # One float object for equal times (a bulk's entries are due when queued, and
        # were all queued at the same moment).
        recent = _recent[0]  # read once: another thread's drain may set it meanwhile
        if created == recent and created:
            created = recent
        else:
            _recent[0] = created
        if not_before == created and created:
            not_before = created
        if ts == created and created:
            ts = created
    else:
        command = Command(domain, target, cmd["args"])
    return queued_entry(
        ident, batch, device, command, priority, created, not_before,
        None if expires is None else float(expires), idempotent, verify, max_attempts,
        who, origin, step, playbook, ts, coordination, _NO_EXTRA,
    )  # fmt: skip


#: The head of a `queued` line as the encoder writes it, up to its `"command":` (JSON strings
#: without escapes or control characters, JSON numbers), and the framing at its end.
_HEAD = re.compile(
    rb'\{"t":"queued","id":"([^"\\\x00-\x1f]+)",'
    rb'"ts":(-?(?:0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?),"v":(?:0|[1-9][0-9]{0,8}),'
    rb'"batch":"([^"\\\x00-\x1f]*)","device":"([^"\\\x00-\x1f]*)"(?=,"command":)'
)
_FRAMED_END = re.compile(rb',"m":(?:0|"[0-9]+/[0-9]+"),"c":"[0-9a-f]{8}"\}\Z')
_HEAD_KEYS = frozenset({"t", "id", "ts", "v", "batch", "device", *_FRAMING})
#: tail → the entry `_quick` made of it under a stand-in head, for its tail's fields.
_TAILS: dict[bytes, Entry] = {}
_TAILS_MAX = 4096


def split_queued(line: bytes) -> tuple[re.Match[bytes], bytes] | None:
    """A `queued` line's head, matched by `_HEAD` (canonical JSON: strings without escapes or
    control characters, numbers as JSON writes them), and its tail: the bytes after the device,
    up to the framing (`_FRAMED_END`) or the closing brace. None when the line is not so."""
    head = _HEAD.match(line)
    if head is None or line[-1:] != b"}":
        return None
    start, end = head.end(), len(line) - 1
    framing = line.rfind(b',"m":', start)
    if framing >= 0 and _FRAMED_END.match(line, framing):
        end = framing
    return head, line[start:end]


def plain_tail(tail: bytes) -> bool:
    """True when every line `split_queued` splits into some head and `tail` is a valid
    `queued` record of a plain entry: the tail is JSON object members, holds no key of the
    head or the framing, and gives an entry under a stand-in head (`_tail_entry`). The entry
    then differs from line to line only by what the head says."""
    made = _TAILS.get(tail)
    return made is not None or _tail_entry(tail) is not None


def _from_tail(line: bytes, known: str | None) -> Entry | None:
    """`_quick(line, intern=True)` for a line whose tail (everything after the device, up to
    the framing) was seen before; None when the line is not of that form or its tail is
    unusable, and `_quick` then decodes it in full.

    A bulk's entries of one step differ only in id and device, and the encoder writes
    everything after those once per step (`events._encode_queued`): here those bytes are parsed
    and checked once, by `_quick` itself, and each next line only reads its head. That is
    exactly the whole line's decode when the tail holds none of the head's keys (checked when
    it is first seen: JSON's last duplicate would win) and the head is canonical JSON.
    """
    split = split_queued(line)
    if split is None:
        return None
    head, tail = split
    made = _TAILS.get(tail)
    if made is None:
        made = _tail_entry(tail)
        if made is None:
            return None
        if len(_TAILS) >= _TAILS_MAX:
            _TAILS.clear()
        _TAILS[tail] = made
    raw_id, raw_ts, frac, exp, raw_batch, raw_device = head.groups()
    try:
        ident, batch, device = raw_id.decode(), raw_batch.decode(), raw_device.decode()
    except UnicodeDecodeError:
        return None
    # JSON's number: an int unless it has a fraction or an exponent (-0 is 0, not -0.0).
    if frac is not None or exp is not None:
        ts = float(raw_ts)
    elif len(raw_ts) <= 18:
        ts = float(int(raw_ts))
    else:  # a huge int: the whole decode says what it makes of it
        return None
    if known is not None and ident == known:
        ident = known
    created = made.created
    if ts == created and created:
        ts = created
    return queued_entry(
        ident, sys.intern(batch), sys.intern(device), made.command, made.priority, created,
        made.not_before, made.expires, made.idempotent, made.verify, made.max_attempts,
        made.who, made.origin, made.step, made.playbook, ts, made.coordination, _NO_EXTRA,
    )  # fmt: skip


def _tail_entry(tail: bytes) -> Entry | None:
    """The entry `_quick` makes of `tail` under a stand-in head; None when the tail is not a
    JSON object's members or holds a key of the head (which would override it)."""
    try:
        obj, stop = _scan(text := "{" + tail[1:].decode() + "}", 0)
    except (ValueError, StopIteration):
        return None
    if stop != len(text) or type(obj) is not dict or not _HEAD_KEYS.isdisjoint(obj):
        return None
    return _decoded(b'{"t":"queued","id":"-","ts":0,"v":1,"batch":"","device":""' + tail + b"}",
                    True, None)


_NUMBERS = (int, float)
_recent = [0.0]  # the last `created` an interned entry was given (equal ones share it)
_SCALARS = frozenset({str, int, float, bool, type(None)})
_COMMANDS: dict[tuple[Any, ...], Command] = {}
_COMMANDS_MAX = 4096


def _shared_command(domain: str, target: str, args: dict[str, Any]) -> Command:
    """`Command(domain, target, args)`, one instance per distinct value when every argument is
    a scalar: a drain of 100,000 entries holds a few hundred distinct commands. Nothing changes
    a `Command`'s args once decoded. The key tells `True`, `1` and `1.0` apart, and -0.0 from
    0.0; arguments in another order make another key (never a wrong match)."""
    parts: list[Any] = [domain, target]
    for name, value in args.items():
        kind = type(value)
        if kind not in _SCALARS:
            return Command(sys.intern(domain), sys.intern(target), args)
        parts += (name, kind, value.hex() if kind is float else value)
    key = tuple(parts)
    shared = _COMMANDS.get(key)
    if shared is None:
        if len(_COMMANDS) >= _COMMANDS_MAX:
            _COMMANDS.clear()
        shared = _COMMANDS[key] = Command(sys.intern(domain), sys.intern(target), args)
    return shared


def fold(entry: Entry, event: Event) -> Entry:
    """`entry` after `event` (see the module docstring for the rules)."""
    changed = changes_of(entry, event)
    return entry if changed is None else dataclasses.replace(entry, **changed)


def state_after(state: State, events: Sequence[Event]) -> State:
    """The state `fold` leaves an entry in `state` after `events`, without building entries
    (a drain asks this of every outcome it records). Events of the drain's own making only:
    their fields are not checked, as `fold` would check them."""
    for event in events:
        t = event.type
        if state in FINISHED_STATES and t != ev.RETRIED and t != ev.REPRIORITISED:
            continue
        state = TRANSITIONS.get(t, state)
    return state


def changes_of(entry: Entry, event: Event) -> dict[str, Any] | None:
    """The fields `event` changes in `entry` (None: none); EventDecodeError, ValueError or
    KeyError if its fields are bad. What it raises depends on `entry.state` and `event` only
    (`journal verify` relies on that to check a million entries without holding them)."""
    t = event.type
    f = event.fields
    if entry.state in FINISHED_STATES and t != ev.RETRIED and t != ev.REPRIORITISED:
        # Finished is final until a person asks again (`retried`): a writer that decided on a
        # stale view (a drain that planned an entry just before it was cancelled) cannot
        # reopen or rewrite it. Its events stay in the journal, for `queue show`.
        return None
    changes: dict[str, Any] = {"updated": event.ts}
    state = TRANSITIONS.get(t)
    if state is not None:
        changes["state"] = state
    if t in _TERMINAL:
        changes["finished_at"] = event.ts
    if t == ev.STARTED:
        attempt = f.get("attempt")
        changes["attempts"] = attempt if isinstance(attempt, int) else entry.attempts + 1
        changes["started"] = event.ts
        changes["finished_at"] = None
        if entry.state is State.PENDING and entry.reason is not None:
            changes["reason"] = None  # a `held` note no longer applies
        if isinstance(f.get("ran_on"), str):
            changes["ran_on"] = f["ran_on"]
    elif t == ev.ATTEMPT_FAILED:
        changes["last_error"] = f.get("error")
        changes["outcome"] = f.get("kind")
    elif t == ev.RESCHEDULED:
        if "not_before" in f:
            changes["not_before"] = _f(f["not_before"])
        if isinstance(f.get("attempts"), int):
            changes["attempts"] = f["attempts"]
        if "expires" in f:  # `queue retry` of an expired entry lifts its expiry
            expires = f["expires"]
            changes["expires"] = None if expires is None else _f(expires)
    elif t == ev.DONE:
        changes["outcome"] = f.get("outcome")
        if isinstance(f.get("ran_on"), str):
            changes["ran_on"] = f["ran_on"]
    elif t == ev.FAILED:
        changes["outcome"] = f.get("kind")
        changes["last_error"] = f.get("error")
        if isinstance(f.get("attempts"), int):
            changes["attempts"] = f["attempts"]
    elif t in (ev.CANCELLED, ev.EXPIRED, ev.SKIPPED, ev.UNKNOWN, ev.HELD):
        changes["reason"] = f.get("reason") or None
    elif t == ev.SUPERSEDED:
        changes["superseded_by"] = f.get("by")
        changes["reason"] = f"superseded by {f.get('by')}"
    elif t == ev.REPRIORITISED:
        changes["priority"] = Priority(f["priority"])
    elif t == ev.RETRIED:
        changes.update(attempts=0, outcome=None, reason=None, finished_at=None)
        if "not_before" in f:
            changes["not_before"] = _f(f["not_before"])
    return changes
