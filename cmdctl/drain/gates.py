"""Barriers: a step with `after: <step>` waits until that step has finished on every target.

An entry whose `coordination.after` names a step of its batch is held back (not due) while any entry
of that step in the batch is pending or running. Once all have finished, it runs if the step
ended done everywhere (confirmed / delivered, or superseded by a newer entry). Where it ended any
other way (failed, expired, cancelled, skipped, unknown), `on_failure` decides: `skip` (the
default) skips the dependent step on every device, `continue` only on the devices where the
prerequisite failed. A prerequisite that names no entry of the batch never holds anything back.

`scope: device` decides on the entry's own device only: it waits while that device's entry of
the step is pending or running, is skipped where that entry did not end done (whatever
`on_failure` says: the failure is this device's), and runs where it ended done, or where the
device has no entry of the step. One device's offline TV neither holds nor skips the others.
When that entry is due in the same pass, the dependent entry is ready too: the device job runs
them in order and decides on the spot (`cmdctl.drain.job`). A `gap` (the prerequisite's
`delay:`) holds a ready entry until that long after its device's prerequisite finished: the
time comes from the journal, so a drain started after a crash waits only what is left.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from json.encoder import encode_basestring

from cmdctl.core.model import Entry, State
from cmdctl.core.timespec import format_duration, format_time
from cmdctl.journal import events as ev
from cmdctl.journal import heads
from cmdctl.journal.ledger import Ledger

_WAIT = frozenset({State.PENDING, State.RUNNING})


@dataclass(slots=True)
class Barriers:
    """What the barrier check made of the due entries."""

    ready: list[Entry]  # may run now, in the given order
    skipped: list[tuple[Entry, str]] = field(default_factory=list)  # (entry, reason)
    waiting: int = 0  # held back until their prerequisite has finished everywhere
    # id → epoch before which a ready entry must not be sent (its prerequisite's `delay:`).
    hold: dict[str, float] = field(default_factory=dict)


#: How one device's entry of a prerequisite stands: due in this pass, waiting (pending, not due,
#: or running), failed, or done at a time (epoch float).
DUE = "due"
WAITS = "waits"
FAILED = "failed"
Mark = str | float


@dataclass(frozen=True, slots=True)
class _Step:
    """How a prerequisite step stands in its batch."""

    running: bool  # some entry of it is still pending or running
    failed_on: tuple[str, ...]  # devices where it did not end done, in queue order
    devices: dict[str, Mark] = field(default_factory=dict)  # device → how its entry stands


def _ok(entry: Entry) -> bool:
    if entry.state is State.DONE:
        return True
    return entry.state is State.SUPERSEDED and entry.superseded_by is not None


def _steps(
    ledger: Ledger, wanted: Mapping[str, set[str]], due: Sequence[Entry]
) -> dict[tuple[str, str], _Step]:
    """How each wanted (batch, step) stands, decoding only entries that may belong to one.

    A batch of 10,000 entries behind a barrier must not cost 10,000 decodes: due entries are
    decoded already, and any other raw `queued` line is matched on its batch (the fixed head)
    and its step (a byte search) before it is decoded.
    """
    needles = {
        batch: [b'"step":' + encode_basestring(name).encode() + b"," for name in names]
        for batch, names in wanted.items()
    }
    running: set[tuple[str, str]] = set()
    failed: dict[tuple[str, str], list[str]] = {}
    marks: dict[tuple[str, str], dict[str, Mark]] = {}
    seen = {entry.id for entry in due}
    for entry in due:  # pending: a prerequisite among them has not finished
        names = wanted.get(entry.batch)
        if names is not None and entry.step in names:
            running.add((entry.batch, entry.step))
            marks.setdefault((entry.batch, entry.step), {})[entry.device] = DUE
    # The wanted batches' entries by the batch column; those whose head may hold a wanted step
    # decoded together: one pass over the ledger's log, not one each (a week of history
    # before a gated playbook made that minutes).
    maybe: list[str] = []
    for batch, batch_needles in needles.items():
        for entry_id in ledger.ids_where(batch=batch):
            if entry_id in seen:
                continue
            head = ledger.first_record(entry_id)
            if isinstance(head, bytes):
                peeked = heads.peek(head)
                if peeked is not None and peeked[2] is not None and not any(
                        n in head for n in batch_needles):
                    continue
            maybe.append(entry_id)
    for entry in ledger.entries_of(maybe):
        if entry.step not in wanted.get(entry.batch, ()):
            continue
        key = (entry.batch, entry.step)
        mine = marks.setdefault(key, {})
        if entry.state in _WAIT:
            running.add(key)
            mine[entry.device] = WAITS
        elif not _ok(entry):
            failed.setdefault(key, []).append(entry.ran_on or entry.device)
            mine[entry.device] = FAILED
        elif mine.get(entry.device) is None:
            mine[entry.device] = entry.finished_at or entry.updated
    return {
        (batch, name): _Step((batch, name) in running,
                             tuple(dict.fromkeys(failed.get((batch, name), ()))),
                             marks.get((batch, name), {}))
        for batch, names in wanted.items()
        for name in names
    }


def check(ledger: Ledger, due: Sequence[Entry]) -> Barriers:
    """Split due entries into ready, skipped (with reasons) and waiting."""
    wanted: dict[str, set[str]] = {}
    for entry in due:
        after = entry.coordination.after
        if after is not None and after not in wanted.get(entry.batch, ()):
            wanted.setdefault(entry.batch, set()).add(after)
    if not wanted:
        return Barriers(list(due))
    steps = _steps(ledger, wanted, due)
    gaps = any(entry.coordination.gap for entry in due)
    if not gaps and not any(s.running or s.failed_on for s in steps.values()):
        return Barriers(list(due))  # every barrier is open
    out = Barriers([])
    for entry in due:
        after = entry.coordination.after
        if after is None:
            out.ready.append(entry)
            continue
        step = steps[(entry.batch, after)]
        mark = step.devices.get(entry.device)
        if entry.coordination.scope == "device":
            if mark == WAITS:
                out.waiting += 1
            elif mark == FAILED:
                out.skipped.append((entry, f"prerequisite {after!r} failed on {entry.device}"))
            else:
                _ready(out, entry, mark)
            continue
        if step.running:
            out.waiting += 1
            continue
        if not step.failed_on:
            _ready(out, entry, mark)
            continue
        if entry.coordination.on_failure == "continue":
            if entry.device not in step.failed_on:
                _ready(out, entry, mark)
                continue
            where = entry.device
        else:
            where = ", ".join(step.failed_on)
        out.skipped.append((entry, f"prerequisite {after!r} failed on {where}"))
    return out


def delay_note(entry: Entry, until: float) -> str:
    """The note of an entry waiting out its gap: `delay: 5s after 'power on', until ...`."""
    c = entry.coordination
    return f"delay: {format_duration(c.gap)} after {c.after!r}, until {format_time(until)}"


def due_then(entry: Entry, now: float, until: float) -> ev.Event:
    """`entry` pending again, due when its gap is over (attempts unchanged): a gap longer than
    a drain waits out (`options.GAP_WAIT_S`)."""
    return ev.rescheduled(entry.id, now, not_before=until, attempts=entry.attempts)


def _ready(out: Barriers, entry: Entry, mark: Mark | None) -> None:
    """`entry` may run; not before its gap after its device's prerequisite when it has one."""
    out.ready.append(entry)
    if entry.coordination.gap and isinstance(mark, float):
        out.hold[entry.id] = mark + entry.coordination.gap
