"""Entries left RUNNING by a process that died, and pending entries past their `expires`.

Every `started` event names its owner: the run id, what kind of process (`drain` or `send`), its
pid and host, and a lease (the time by which it will have recorded an outcome). An entry is
abandoned when its owner is gone:

* owner a drain: only one drain runs at a time (the drain lock), so a drain that finds RUNNING
  entries of another drain run knows that run is dead;
* owner a `send` (which does not take the drain lock): dead when its pid is gone (same host) or
  its lease has passed (any host).

Abandoned idempotent entries go back to pending (at-least-once; the interrupted attempt is not
counted against them). Abandoned `idempotent: false` entries become `unknown`: the command may or
may not have reached the device, and only a person may decide to run it again.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cmdctl.core.model import Entry, State
from cmdctl.drain import outcomes
from cmdctl.drain.outcomes import Verdict
from cmdctl.journal import events as ev
from cmdctl.journal.events import Event, EventDecodeError, new_event
from cmdctl.journal.ledger import Ledger

DRAIN = "drain"
SEND = "send"
#: An idempotent entry whose process died this many times while running it is failed, not
#: tried again: a command that crashes every drain must not block its device forever.
MAX_INTERRUPTIONS = 3


@dataclass(frozen=True, slots=True)
class Owner:
    """Who started an entry, and until when it promised to finish it."""

    run: str
    kind: str  # DRAIN | SEND
    pid: int
    host: str
    lease: float  # epoch seconds

    def describe(self) -> str:
        """`drain run 01J… (pid 4242 on box)`."""
        return f"{self.kind} run {self.run} (pid {self.pid} on {self.host})"


def this_host() -> str:
    """The host name recorded in `started` events."""
    return socket.gethostname()


def me(run: str, kind: str, lease: float) -> Owner:
    """This process as an owner."""
    return Owner(run=run, kind=kind, pid=os.getpid(), host=this_host(), lease=lease)


def started(entry: Entry, ts: float, owner: Owner, *, attempt: int | None = None) -> Event:
    """The `started` event for the next attempt of `entry`, carrying its owner."""
    # `ev.started`'s fields, then the owner's: they ride along as forward-compatible data; the
    # fold ignores what it does not know. Built in one go (a drain writes one per command).
    return Event(ev.STARTED, entry.id, ts, {
        "attempt": entry.attempts + 1 if attempt is None else attempt, "run": owner.run,
        "by": owner.kind, "pid": owner.pid, "host": owner.host, "lease": owner.lease,
    })


def starts(entries: Sequence[Entry], ts: float, owner: Owner) -> list[Event]:
    """The `started` events of a chunk about to be sent, as `started` gives them one by one.

    Entries on their same attempt share one fields mapping (nothing changes an event's fields
    once made): a drain holds 64 devices × 512 started events while they wait for the disk,
    and one dict each was most of their memory.
    """
    shared: dict[int, Event] = {}
    out = []
    for entry in entries:
        first = shared.get(entry.attempts)
        if first is None:
            first = shared[entry.attempts] = started(entry, ts, owner)
            out.append(first)
        else:
            out.append(new_event(ev.STARTED, entry.id, ts, first.fields, ev.VERSION))
    return out


def owner_of(ledger: Ledger, entry_id: str) -> Owner | None:
    """The owner named by the entry's last `started` event, or None if there is none."""
    for record in reversed(ledger.records(entry_id)):
        if isinstance(record, Event):
            event = record
        else:
            if not record.startswith(b'{"t":"started"'):
                continue
            try:
                event = ev.decode(record)
            except EventDecodeError:
                continue
        if event.type != ev.STARTED:
            continue
        return _owner(event.fields)
    return None


def _owner(fields: Any) -> Owner:
    def num(key: str) -> float:
        value = fields.get(key)
        return float(value) if isinstance(value, int | float) else 0.0

    run = fields.get("run")
    kind = fields.get("by")
    host = fields.get("host")
    return Owner(
        run=run if isinstance(run, str) else "?",
        # A `started` event without owner fields was written by a drain (older format).
        kind=kind if isinstance(kind, str) else DRAIN,
        pid=int(num("pid")),
        host=host if isinstance(host, str) else "",
        lease=num("lease"),
    )


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def abandoned(owner: Owner | None, now: float, *, run: str, holding_drain_lock: bool) -> bool:
    """True when nobody will ever record an outcome for an entry started by `owner`."""
    if owner is None:
        return holding_drain_lock
    if owner.run == run:
        return False
    if owner.kind == DRAIN and holding_drain_lock:
        return True
    if owner.host == this_host():
        return not pid_alive(owner.pid) or owner.lease < now
    return owner.lease < now


def interruptions(ledger: Ledger, entry_id: str) -> int:
    """How often a process died while running this entry (its `interrupted` attempts)."""
    count = 0
    for record in ledger.records(entry_id):
        if isinstance(record, Event):
            count += record.type == ev.ATTEMPT_FAILED and record.get("kind") == "interrupted"
        elif record.startswith(b'{"t":"attempt_failed"') and b'"kind":"interrupted"' in record:
            count += 1
    return count


def orphaned(ledger: Ledger, now: float, *, holding_drain_lock: bool) -> set[str]:
    """Running entries no live process will record an outcome for (`queue cancel` may take
    them): with the drain lock held, every drain's; a `send`'s once its pid or lease is gone."""
    return {
        entry.id
        for entry in ledger.entries(state=State.RUNNING)
        if abandoned(owner_of(ledger, entry.id), now, run="", holding_drain_lock=holding_drain_lock)
    }


def recover(
    ledger: Ledger, now: float, *, run: str, holding_drain_lock: bool
) -> list[tuple[Entry, Verdict]]:
    """Every abandoned RUNNING entry with its verdict (`outcomes.abandoned`): idempotent ones
    back to pending, the others unknown."""
    out: list[tuple[Entry, Verdict]] = []
    for entry in ledger.entries(state=State.RUNNING):
        owner = owner_of(ledger, entry.id)
        if not abandoned(owner, now, run=run, holding_drain_lock=holding_drain_lock):
            continue
        who = owner.describe() if owner is not None else "an unknown process"
        times = interruptions(ledger, entry.id) + 1
        out.append((entry, outcomes.abandoned(entry, now, who, times=times,
                                              limit=MAX_INTERRUPTIONS)))
    return out
