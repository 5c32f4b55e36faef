"""`journal verify`: every line's framing, every event's JSON, every entry's fold, streamed.

Two passes over the journal, a block at a time. The first (`framing.sweep`) checks each line's
CRC and its place in its append, and keeps one status byte a line. The second decodes every
committed line and checks it as the fold would (`Ledger.apply`, then `entry_of` per entry),
keeping of each entry only its state: a million-event journal is verified in bounded memory
(about a hundred bytes an entry) instead of holding every decoded event.

A stable view without holding the lock for the whole check: under the lock, the size and the
uncommitted tail (`quarantine.uncommitted_tail`) are taken; bytes before that tail never change
in this file (writers append after it, a repair cuts only the tail, compaction renames a new
file in), so they are read afterwards, unlocked, and the tail from memory.
"""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from cmdctl.core import durable
from cmdctl.core.model import Command, Entry, Priority, State
from cmdctl.journal import events as ev
from cmdctl.journal import heads, quarantine
from cmdctl.journal.entry import changes_of, entry_from_queued, plain_tail, split_queued
from cmdctl.journal.events import EventDecodeError
from cmdctl.journal.framing import COMMITTED, DAMAGED, Damage, sweep

#: Bytes read at a time: big enough that the per-block cost vanishes, small beside the target.
BLOCK = 1 << 22

_STATES = tuple(State)
_INDEX = {state: i for i, state in enumerate(_STATES)}
_PENDING = _INDEX[State.PENDING]
_BROKEN = -1  # an entry whose fold already failed: its later events need no check

# A `queued` line's entry checks out or not by its fields alone, and its batch and device are
# checked before (strings); so a line whose bytes after the fixed head (`heads.HEAD`: type,
# id, time, version, batch, device) equal those of a line that passed, passes too. Entries of
# one bulk step share those bytes: most lines skip building the entry. Bounded, for journals
# where no two lines share them.
#
# Most skip decoding too: when that tail holds no key of the head or the framing and makes a
# plain entry (`entry.plain_tail`), a line with a canonical head (`entry.split_queued`: JSON
# strings without escapes, JSON numbers) and UTF-8 strings before it is valid JSON and a valid
# entry, whose id is its head's; a million-event journal of bulks is then read by its heads
# (15.7 s -> 6.5 s). tests/journal/test_verify.py holds it to a whole read.
_PASSED_MAX = 4096

# What `changes_of` raises depends on the entry's state and the event only (its docstring), so
# one stand-in entry per state checks every entry in that state.
_STAND_IN = tuple(
    Entry(
        id="",
        batch="",
        device="",
        command=Command("", "", {}),
        priority=Priority.NORMAL,
        created=0.0,
        not_before=0.0,
        expires=None,
        idempotent=True,
        verify=True,
        max_attempts=1,
        who="",
        origin="",
        step="",
        state=state,
    )
    for state in _STATES
)


@dataclass(frozen=True, slots=True)
class Checked:
    """What the two passes found (the parts of `VerifyReport` read from the journal)."""

    events: int  # committed lines
    entries: int
    damaged: tuple[Damage, ...]
    problems: tuple[str, ...]
    torn: int
    uncommitted: int


class Source:
    """The journal's bytes as of one moment: the stable part from the file, the tail in memory."""

    def __init__(self, fd: int | None, stable: int, tail: bytes) -> None:
        self._fd = fd
        self._stable = stable
        self._tail = tail

    @classmethod
    def empty(cls) -> Source:
        """No journal."""
        return cls(None, 0, b"")

    @classmethod
    def open(cls, path: Path) -> Source:
        """Open `path` (the caller holds the journal lock); OSError if it cannot be read."""
        try:
            fd = os.open(path, os.O_RDONLY | durable.NOFOLLOW)
        except FileNotFoundError:
            return cls.empty()
        try:
            stable, tail = quarantine.uncommitted_tail(fd, os.fstat(fd).st_size)
        except OSError:
            os.close(fd)
            raise
        return cls(fd, stable, tail)

    def blocks(self) -> Iterator[bytes]:
        """The bytes, from the start, a block at a time; OSError if the file cannot be read."""
        offset = 0
        while self._fd is not None and offset < self._stable:
            block = os.pread(self._fd, min(BLOCK, self._stable - offset), offset)
            if not block:  # cannot happen: nothing shortens this part of the file
                raise OSError(f"journal ended at byte {offset}, expected {self._stable}")
            offset += len(block)
            yield block
        if self._tail:
            yield self._tail

    def close(self) -> None:
        """Close the file."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


_parse = json.JSONDecoder().raw_decode


def _decode(line: bytes) -> ev.Event:
    """`events.decode`, without `json.loads`'s per-call overhead (a third of the check).

    `json.loads` of bytes detects the encoding (UTF-8 for any line `raw_decode` can take
    whole from its first byte), decodes with "surrogatepass" and parses from the first
    non-blank character to the end, trailing blanks allowed. A line taken whole from its
    first character is parsed the same; any other goes to `events.decode`, for its message.
    """
    try:
        text = line.decode("utf-8", "surrogatepass")
        obj, end = _parse(text)
    except ValueError:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        return ev.decode(line)
    if end != len(text):
        return ev.decode(line)
    return ev.event_of(obj)


def check(source: Source) -> Checked:
    """Check every line and entry of `source`; OSError if it cannot be read."""
    swept = sweep(source.blocks())
    status = swept.status
    raw: dict[int, bytes] = {}  # damaged lines' bytes, by line number
    undecodable: list[Damage] = []
    problems: list[str] = []
    states: dict[str, int] = {}  # entry id -> index of its state in _STATES, or _BROKEN
    broken: dict[str, str] = {}  # entry id -> why its fold failed
    queued, head = ev.QUEUED, heads.HEAD.match
    passed: set[bytes] = set()  # tails of `queued` lines whose entry checked out
    plain: set[bytes] = set()  # those of them that vouch for a whole line (`plain_tail`)
    split = split_queued
    decode = _decode
    carry = b""
    number = 0
    gc_was_on = gc.isenabled()
    gc.disable()  # a million short-lived acyclic objects: collections would only cost time
    try:
        for block in source.blocks():
            parts = (carry + block).split(b"\n") if carry else block.split(b"\n")
            carry = parts.pop()
            for line in parts:
                code = status[number]
                number += 1
                if code != COMMITTED:
                    if code == DAMAGED:
                        raw[number] = line
                    continue
                cut = split(line)
                if cut is not None and cut[1] in plain:
                    # A canonical head before a tail that vouches for the line: a valid `queued`
                    # record of a valid entry (see _PASSED_MAX), if its strings are UTF-8.
                    found = cut[0]
                    try:
                        ident = found[1].decode()
                        found[5].decode()
                        found[6].decode()
                    except UnicodeDecodeError:
                        pass  # decoded below, for its message
                    else:
                        if ident in states:
                            problems.append(f"{queued} {ident}: queued twice")
                        else:
                            states[ident] = _PENDING
                        continue
                try:
                    event = decode(line)
                except EventDecodeError as err:
                    undecodable.append(Damage(number, str(err), line))
                    continue
                ident, kind = event.id, event.type
                state = states.get(ident)
                if kind == queued:  # as `Ledger.apply`, then `entry_of`'s first step
                    if state is not None:
                        problems.append(f"{kind} {ident}: queued twice")
                        continue
                    if not isinstance(event.get("batch"), str) or not isinstance(
                        event.get("device"), str
                    ):
                        problems.append(f"{kind} {ident}: queued without batch/device")
                        continue
                    states[ident] = _PENDING
                    match = head(line)
                    tail = None if match is None else line[match.end() : line.rfind(b',"m":')]
                    if tail is not None and tail in passed:
                        continue
                    try:
                        entry_from_queued(event)
                    except (EventDecodeError, ValueError, KeyError) as err:
                        states[ident] = _BROKEN
                        broken[ident] = str(err)
                        continue
                    if tail is not None:
                        if len(passed) >= _PASSED_MAX:
                            passed.clear()
                        passed.add(tail)
                    if cut is not None and plain_tail(cut[1]):
                        if len(plain) >= _PASSED_MAX:
                            plain.clear()
                        plain.add(cut[1])
                    continue
                if state is None:
                    problems.append(f"{kind} {ident}: event for an unknown id")
                    continue
                if state == _BROKEN:
                    continue
                try:
                    changed = changes_of(_STAND_IN[state], event)
                except (EventDecodeError, ValueError, KeyError) as err:
                    states[ident] = _BROKEN
                    broken[ident] = str(err)
                    continue
                if changed is not None and "state" in changed:
                    states[ident] = _INDEX[changed["state"]]
    except IndexError as err:  # more lines than the first pass saw: not a cmdctl write
        raise OSError("its committed lines changed while verify read them") from err
    finally:
        if gc_was_on:
            gc.enable()
    if broken:  # in the order of the entries' `queued` lines, as the fold lists them
        problems.extend(f"entry {i}: {broken[i]}" for i in states if i in broken)
    damaged = [Damage(n, why, raw[n]) for n, why in swept.damaged]
    return Checked(
        events=status.count(COMMITTED),
        entries=len(states),
        damaged=(*damaged, *undecodable),
        problems=tuple(problems),
        torn=swept.torn,
        uncommitted=swept.uncommitted,
    )
