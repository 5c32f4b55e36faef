"""Which entries a pass works on, and in what order: the drain's one run-order algorithm.

Run order is priority rank, then age, except that a device's entries keep their queue order:
each device's slots in the (rank, age) order are filled with its due entries in queue order, so
a later high-priority entry pulls earlier ones of its device forward rather than overtaking
them. Entries not yet due (or expired) do not hold others back.

Age and queue order are the order of the entries' `queued` records in the journal, never their
ids: ids carry the clock of the process that made them, and two processes' clocks may differ.
`Work.position` gives that order to coalescing, which decides "newer" the same way.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field

from cmdctl.core.model import Entry, State
from cmdctl.journal import events as ev
from cmdctl.journal import heads
from cmdctl.journal.entry import entry_of
from cmdctl.journal.ledger import Ledger


@dataclass(slots=True)
class Work:
    """What one pass found in the ledger."""

    due: list[Entry]  # in run order
    expired: list[Entry]
    next_due: float | None  # earliest not_before of a pending entry not yet due
    # Pending entries not due yet on the devices of `due` (coalescing may supersede them).
    later: list[Entry] = field(default_factory=list)
    # id → place in the journal of `due` and `later` entries (larger: queued later).
    position: dict[str, int] = field(default_factory=dict)


def select(
    ledger: Ledger,
    now: float,
    *,
    only: Collection[str] | None = None,
    batch: str | None = None,
) -> Work:
    """Due entries in run order, expired ones, and when the next falls due.

    A drain may face 100,000 pending entries: each is decoded once, its repeated strings are
    interned and nothing is cached in the ledger, so the entries cost a fraction of the memory
    and the ledger's raw lines can be freed while the work goes on.
    """
    ready: list[Entry] = []
    expired: list[Entry] = []
    next_due: float | None = None
    position: dict[str, int] = {}
    waiting: list[tuple[int, str]] = []  # (position, id) of pending entries not due yet
    for n, entry_id, records in ledger.rows_in(State.PENDING):
        head = records[0]
        if isinstance(head, bytes):
            if only is not None or batch is not None:
                peeked = heads.peek(head)
                if peeked is not None and peeked[2] is not None:
                    b, d = peeked[2]
                    if (only is not None and d not in only) or (
                        batch is not None and b != batch
                    ):
                        continue
            if len(records) == 1 and not ((due := ledger.due_at(n)) is not None and due <= now):
                # Not due yet (a batch scheduled for later): skip it without decoding. (A row
                # the ledger knows to be due is decoded at once: its expiry is checked below.)
                times = heads.peek_schedule(head)
                if times is not None and times[1] > now and (times[2] is None or times[2] > now):
                    if next_due is None or times[1] < next_due:
                        next_due = times[1]
                    waiting.append((n, entry_id))
                    continue
        entry = entry_of(records, intern=True, ident=entry_id)
        if (only is not None and entry.device not in only) or (
            batch is not None and entry.batch != batch
        ):
            continue
        if entry.expires is not None and entry.expires <= now:
            expired.append(entry)
        elif entry.not_before <= now:
            position[entry_id] = n
            ready.append(entry)
        else:
            waiting.append((n, entry_id))
            if next_due is None or entry.not_before < next_due:
                next_due = entry.not_before
    later = _later(ledger, waiting, ready, position)
    return Work(run_order(ready, position), expired, next_due, later, position)


def _later(
    ledger: Ledger, waiting: list[tuple[int, str]], ready: list[Entry], position: dict[str, int]
) -> list[Entry]:
    """The waiting entries that set an entity a due entry sets on the same device, decoded.

    Only those can be superseded (`cmdctl.drain.coalesce`). Others are never decoded: a journal
    may hold 100,000 entries scheduled for tonight, and `cmdctl run` selects every few moments,
    so a raw line is first checked for the device and the `"command":{"domain":…,"target":…`
    it would have to carry.
    """
    if not waiting:
        return []
    wanted: dict[str, set[bytes]] = {}
    for entry in ready:
        cmd = entry.command
        sets = f'"command":{{"domain":{ev.json_str(cmd.domain)},"target":{ev.json_str(cmd.target)},'
        wanted.setdefault(entry.device, set()).add(sets.encode())
    out = []
    for n, entry_id in waiting:
        records = ledger.records(entry_id)
        head = records[0]
        if isinstance(head, bytes):
            peeked = heads.peek(head)
            if peeked is not None and peeked[2] is not None:
                patterns = wanted.get(peeked[2][1])
                if patterns is None or not any(p in head for p in patterns):
                    continue
        entry = entry_of(records, intern=True, ident=entry_id)
        if entry.device in wanted:
            position[entry_id] = n
            out.append(entry)
    return out


def run_order(ready: list[Entry], position: dict[str, int]) -> list[Entry]:
    """`ready` (due entries in journal order) in run order (see the module docstring)."""
    if ready and all(e.priority is ready[0].priority for e in ready):
        return list(ready)  # one rank: run order is journal order (a bulk's usual case)
    slots = sorted(ready, key=lambda e: (e.priority.rank, position[e.id]))
    by_device: dict[str, list[Entry]] = {}
    for entry in ready:
        by_device.setdefault(entry.device, []).append(entry)
    taken: dict[str, int] = {}
    due = []
    for slot in slots:
        n = taken.get(slot.device, 0)
        due.append(by_device[slot.device][n])
        taken[slot.device] = n + 1
    return due


def tagged(
    entry: Entry, tags: frozenset[str] | None, skip_tags: frozenset[str] | None
) -> bool:
    """True when `entry`'s tags pass --tags (one of them; untagged entries do not) and
    --skip-tags (none of them)."""
    mine = frozenset(entry.coordination.tags)
    if tags is not None and not (mine & tags):
        return False
    return not (skip_tags is not None and mine & skip_tags)
