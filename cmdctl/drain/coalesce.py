"""Coalescing: of several entries that set the same entity to a state, only the newest runs.

A device that was away for an hour should not replay forty stale volume changes. Among due
entries for the same (device, domain, target) whose command sets a state, the newest (the one
queued last in the journal: never by id, which carries a process's clock) wins, and every older
pending entry for that entity is superseded by it, due or not (an older command waiting out its
backoff must not land after the newer one), when:

* the older entry belongs to another batch than the winner: within one batch (one playbook run,
  one `send`) the steps are a deliberate sequence (a blink, a ramp) and all of them run;
* the winner's command sets at least every field the older one sets (a light's brightness-only
  change does not swallow an older "off").

Never for buttons, actions, `idempotent: false` entries, media_player commands (volume_up,
toggle…; only a volume level coalesces), lock `open`, cover/valve `stop`, or entries with
`when:` (they may not run) or `wait_until:` (the wait is part of what they do). Only a due entry
wins: one still waiting for its `not_before` supersedes nothing yet, and one waiting for its
barrier neither supersedes nor is superseded.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from cmdctl.core.model import Entry

#: Domains whose commands set a state (rather than trigger something).
STATEFUL = frozenset(
    {"switch", "select", "number", "text", "light", "cover", "valve", "fan", "climate", "lock",
     "media_player"}
)


def coalescible(entry: Entry) -> bool:
    """True when running `entry` only sets its entity to a state a newer command may replace."""
    cmd = entry.command
    if not entry.idempotent or cmd.domain not in STATEFUL:
        return False
    if entry.coordination.pick is not None:
        return False  # its device is only the first candidate
    if entry.coordination.when is not None or entry.coordination.wait_until is not None:
        return False  # it may not run (`when:`), or its wait is part of what it does
    args = cmd.args
    if cmd.domain in ("cover", "valve"):
        return "stop" not in args
    if cmd.domain == "media_player":
        return "command" not in args  # a volume level; commands are relative or one-shot
    if cmd.domain == "lock":
        return args.get("command") != "open"  # opening the latch is an action, not a state
    return True


def coalesce(
    due: Sequence[Entry], later: Sequence[Entry], position: Mapping[str, int]
) -> tuple[list[Entry], list[tuple[Entry, Entry]]]:
    """(entries of `due` to run, in the given order; (superseded, winner) pairs).

    `later`: pending entries not due yet, which an older-than-the-winner one joins the losers;
    `position`: every entry's place in the journal (larger: queued later).
    """
    if not later and all(e.batch == due[0].batch for e in due):
        return list(due), []  # one batch (a bulk's usual pass) and none waiting: no loser
    # String keys and no spare lists: 10,000 due entries must not feed the cyclic GC.
    groups: dict[str, list[Entry]] = {}
    for entry in due:
        if coalescible(entry):
            cmd = entry.command
            key = f"{entry.device}\0{cmd.domain}\0{cmd.target}"
            members = groups.get(key)
            if members is None:
                groups[key] = [entry]
            else:
                members.append(entry)
    waiting: dict[str, list[Entry]] = {}
    for entry in later:
        if coalescible(entry):
            cmd = entry.command
            key = f"{entry.device}\0{cmd.domain}\0{cmd.target}"
            if key in groups:
                waiting.setdefault(key, []).append(entry)
    losers: list[tuple[Entry, Entry]] = []
    for key, members in groups.items():
        behind = waiting.get(key, ())
        if len(members) < 2 and not behind:
            continue
        winner = max(members, key=lambda e: position[e.id])
        keys = winner.command.args.keys()
        at = position[winner.id]
        for entry in (*members, *behind):
            if (
                entry.batch != winner.batch
                and position[entry.id] < at
                and entry.command.args.keys() <= keys
            ):
                losers.append((entry, winner))
    if not losers:
        return list(due), []
    gone = {loser.id for loser, _ in losers}  # may include entries of `later`
    return [e for e in due if e.id not in gone], losers
