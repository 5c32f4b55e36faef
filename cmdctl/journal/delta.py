"""`journal.delta`: what each append wrote, pre-read for the fold, so big journals read fast.

A cache beside the journal, like the snapshot: never the source of truth, always safe to delete.
Every successful append (under the journal lock, after its fsync) adds one record here that
describes its own lines: their event types, ids, positions in the journal, and for `queued`
events the batch, device, created and not_before. A reader that finds a chain of records
continuing from its snapshot (or from the start of the journal) folds them, one at a time, with
`Ledger.apply_heads`, which skips reading, checksumming and parsing those lines, and reads the
journal itself only past the chain's end. Only the first status after a burst of appends pays
for this fold; it then writes a new snapshot and prunes the records the snapshot covers.

A record: a fixed header (magic, the journal's st_dev and st_ino, the byte range it covers, its
number of lines, the CRC-32 of the last `CHECK` bytes of that range, and the payload's length
and CRC-32), then the payload (marshal). A reader uses the longest run of intact records that
start exactly where the previous one ended, each only if the journal still holds the bytes it
describes (its CRC check). A torn record (a crash while writing it), a damaged one
or a gap ends the run; the rest is read from the journal as usual. Writes are not fsynced and
races with a concurrent prune can lose a record: either only costs speed.
"""

from __future__ import annotations

import contextlib
import marshal
import operator
import os
import struct
import sys
import zlib
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import reduce
from itertools import accumulate
from pathlib import Path

from cmdctl.core import durable
from cmdctl.journal import events as ev
from cmdctl.journal.events import Event
from cmdctl.journal.layout import DELTA_FILE as DELTA_FILE
from cmdctl.journal.layout import FILE_MODE
from cmdctl.journal.runs import QueuedRuns

#: Event types in code order (a record stores one byte per event).
KINDS: tuple[str, ...] = tuple(sorted(ev.KNOWN_TYPES))
QUEUED_CODE = KINDS.index(ev.QUEUED)
_CODES = {kind: code for code, kind in enumerate(KINDS)}

_HEAD = struct.Struct("<8sQQQQQIII")  # magic dev ino start end lines check_len check payload_len
_PAYLOAD_CRC = struct.Struct("<I")
_MAGIC = b"cmdlt-1\n"
#: Bytes at the end of a record's range whose CRC it keeps (proof the journal still holds them).
CHECK = 4096


@dataclass(frozen=True, slots=True)
class Heads:
    """Pre-read lines of one append: parallel sequences, one item per line."""

    kinds: bytes  # codes into KINDS
    ids: list[str]
    places: Sequence[int]  # offset << 32 | length (without the newline), as the ledger keeps
    #: (batches, devices, created, not_before): one item per `queued` line, in order
    queued: tuple[list[str], list[str], Sequence[float], Sequence[float]]


@dataclass(frozen=True, slots=True)
class Chain:
    """How far the records continuing from a reader's starting offset went."""

    end: int  # byte offset the last record folded ends at (the start offset if there are none)
    lines: int  # lines they cover


def record(
    file_id: tuple[int, int], start: int, lines: Sequence[bytes], events: Sequence[Event]
) -> bytes | None:
    """The delta record of one append of `events`, framed as `lines`, at offset `start`.

    None when an event cannot be described (an unusual queued event): the reader then reads
    that append from the journal. Built with C-level maps over references the events already
    hold: a 10,000-event append pays a few milliseconds.
    """
    n = len(events)
    if len(lines) != n:
        return None
    if n and type(events) is QueuedRuns:  # a bulk: its columns, and no event per command
        ids, batches, devices, created_at, due_at = events.columns()
        kinds = bytes([QUEUED_CODE]) * n
        try:
            created, not_before = array("d", created_at), array("d", due_at)
        except TypeError:  # not a number
            return None
        if n and not set(map(type, batches)) == set(map(type, devices)) == {str}:
            return None
        body_in = (kinds, ids, (batches, devices, created.tobytes(), not_before.tobytes()))
        return _framed(file_id, start, lines, *body_in)
    types = set(map(_TYPE, events))
    if not types <= _CODES.keys():
        return None
    if len(types) == 1:
        kinds = bytes([_CODES[types.pop()]]) * n
    else:
        kinds = bytes(map(_CODES.__getitem__, map(_TYPE, events)))
    queued: tuple[list[str], list[str], bytes, bytes] = ([], [], b"", b"")
    n_queued = kinds.count(QUEUED_CODE)
    if n_queued:
        chosen = events if n_queued == n else [
            e for e, k in zip(events, kinds, strict=True) if k == QUEUED_CODE]
        fields = list(map(_FIELDS, chosen))
        try:
            batches, devices = list(map(_BATCH, fields)), list(map(_DEVICE, fields))
            created = array("d", map(_CREATED, fields))
            not_before = array("d", map(_NOT_BEFORE, fields))
        except (KeyError, TypeError):  # missing, or not a number
            return None
        if not set(map(type, batches)) == set(map(type, devices)) == {str}:
            return None
        queued = (batches, devices, created.tobytes(), not_before.tobytes())
    return _framed(file_id, start, lines, kinds, list(map(_ID, events)), queued)


def _framed(
    file_id: tuple[int, int], start: int, lines: Sequence[bytes], kinds: bytes, ids: list[str],
    queued: tuple[list[str], list[str], bytes, bytes],
) -> bytes:
    lengths = array("I", map(len, lines))  # newline included
    body = marshal.dumps((kinds, ids, lengths.tobytes(), queued))
    check = b"".join(lines[-64:])[-CHECK:]
    head = _HEAD.pack(
        _MAGIC, file_id[0], file_id[1], start, start + sum(lengths), len(ids), len(check),
        zlib.crc32(check), len(body),
    )
    return head + _PAYLOAD_CRC.pack(zlib.crc32(body)) + body


_TYPE = operator.attrgetter("type")
_ID = operator.attrgetter("id")
_FIELDS = operator.attrgetter("fields")
_BATCH, _DEVICE, _CREATED, _NOT_BEFORE = map(
    operator.itemgetter, ("batch", "device", "created", "not_before"))


def append(directory: Path, blob: bytes) -> None:
    """Add a record (best effort: a cache; the caller holds the journal lock)."""
    with contextlib.suppress(OSError):
        durable.append_file(directory / DELTA_FILE, blob, mode=FILE_MODE, sync=False)


def fold(directory: Path, journal_fd: int, file_id: tuple[int, int], start: int, size: int,
         apply: Callable[[Heads], None]) -> Chain:
    """Hand `apply` each record continuing from `start` that the journal (`journal_fd`, `size`
    bytes) holds, in order, one at a time; how far they went.

    A record is read (pread), checked and decoded only when its turn comes, and dropped once
    folded: the delta file of a million `queued` events is never in memory whole. A record is
    used only if the journal still holds the last bytes it describes (its CHECK); the first
    that fails any check ends the run.
    """
    try:
        fd = os.open(directory / DELTA_FILE, os.O_RDONLY | durable.NOFOLLOW)
    except OSError:
        return Chain(start, 0)
    try:
        return _fold(fd, journal_fd, file_id, start, size, apply)
    finally:
        os.close(fd)


def _fold(fd: int, journal_fd: int, file_id: tuple[int, int], start: int, size: int,
          apply: Callable[[Heads], None]) -> Chain:
    end, lines, pos = start, 0, 0
    fixed = _HEAD.size + _PAYLOAD_CRC.size
    total = os.fstat(fd).st_size
    while pos + fixed <= total:
        header = os.pread(fd, fixed, pos)
        if len(header) != fixed:
            break
        magic, dev, ino, r_start, r_end, r_lines, check_len, check, body_len = _HEAD.unpack_from(
            header)
        body_at = pos + fixed
        if magic != _MAGIC or body_at + body_len > total:
            break  # torn or foreign: nothing after it can be trusted to be framed
        (body_crc,) = _PAYLOAD_CRC.unpack_from(header, _HEAD.size)
        pos = body_at + body_len
        if (dev, ino) != file_id or r_start != end or r_end > size:
            continue  # another file's, already covered, or past what this reader sees
        body = os.pread(fd, body_len, body_at)
        if len(body) != body_len or zlib.crc32(body) != body_crc:
            break
        heads = _heads(body, r_start, r_end, r_lines)
        if heads is None:
            break
        try:
            held = os.pread(journal_fd, check_len, r_end - check_len)
        except OSError:
            held = b""
        if len(held) != check_len or zlib.crc32(held) != check:
            break  # the journal no longer holds what this record describes
        del body
        apply(heads)
        end, lines = r_end, lines + r_lines
    return Chain(end, lines)


def _heads(body: bytes, r_start: int, r_end: int, r_lines: int) -> Heads | None:
    """A record's payload decoded, or None if it does not describe its range."""
    try:
        kinds, ids, packed, (batches, devices, created_b, not_before_b) = marshal.loads(body)
        lengths = array("I")
        lengths.frombytes(packed)
        created, not_before = array("d"), array("d")
        created.frombytes(created_b)
        not_before.frombytes(not_before_b)
    except (ValueError, EOFError, TypeError):
        return None
    if not (len(kinds) == len(ids) == len(lengths) == r_lines
            and len(batches) == len(devices) == len(created) == len(not_before)
            and sum(lengths) == r_end - r_start):
        return None
    places = _places(lengths, r_start)
    if places is None:  # past 4 GiB: the reader reads these lines from the journal
        return None
    return Heads(kinds, ids, places, (batches, devices, created, not_before))


#: Where the low and the high 32 bits of a native 64-bit word are, in 32-bit words.
_LOW, _HIGH = (0, 1) if sys.byteorder == "little" else (1, 0)


def _places(lengths: array[int], start: int) -> array[int] | None:
    """Each line's `offset << 32 | length without the newline`, as the ledger packs a line's
    position, for lines of these lengths from `start`: the two halves of each word are written
    as two 32-bit arrays, which is half the time of the shifts and ors one by one (a million
    lines' first `status`). None past 4 GiB, or for an empty line."""
    places = array("Q", bytes(8 * len(lengths)))
    if not lengths:
        return places
    try:
        offsets = array("I", accumulate(lengths[:-1], initial=start))
    except OverflowError:
        return None
    sizes = _less_one(lengths)
    if sizes is None:
        return None
    with memoryview(places).cast("B").cast("I") as words:
        words[_LOW::2] = sizes
        words[_HIGH::2] = offsets
    return places


def _less_one(lengths: array[int]) -> memoryview | None:
    """Each length less one, None if one is 0. With none 0, one subtraction of two big
    integers takes 1 from every 32-bit word at once (no borrow crosses a word): 5 times the
    pace of a `map`, zero check included."""
    packed, n = lengths.tobytes(), len(lengths)
    # One byte per length, the OR of its four bytes: 0 only where the length is 0.
    nonzero = reduce(operator.or_, (int.from_bytes(packed[i::4]) for i in range(4)))
    if b"\0" in nonzero.to_bytes(n):
        return None
    order = sys.byteorder
    less = int.from_bytes(packed, order) - int.from_bytes((array("I", [1]) * n).tobytes(), order)
    return memoryview(less.to_bytes(4 * n, order)).cast("I")


def prune(directory: Path, covered: int, file_id: tuple[int, int]) -> None:
    """Drop records a snapshot now covers (best effort; a cache). Reads the headers, and only
    the records it keeps."""
    path = directory / DELTA_FILE
    keep: list[bytes] = []
    fixed = _HEAD.size + _PAYLOAD_CRC.size
    try:
        fd = os.open(path, os.O_RDONLY | durable.NOFOLLOW)
    except OSError:
        return
    try:
        total, pos = os.fstat(fd).st_size, 0
        while pos + fixed <= total:
            header = os.pread(fd, fixed, pos)
            if len(header) != fixed:
                break
            magic, dev, ino, _start, r_end, _l, _cl, _c, body_len = _HEAD.unpack_from(header)
            nxt = pos + fixed + body_len
            if magic != _MAGIC or nxt > total:
                break
            if (dev, ino) == file_id and r_end > covered:
                keep.append(os.pread(fd, nxt - pos, pos))
            pos = nxt
    except OSError:
        return
    finally:
        os.close(fd)
    with contextlib.suppress(OSError):
        if keep:
            durable.replace_file(path, b"".join(keep), mode=FILE_MODE, sync=False)
        else:
            path.unlink()


def remove(directory: Path) -> None:
    """Forget every record (compaction wrote a new journal)."""
    with contextlib.suppress(FileNotFoundError):
        (directory / DELTA_FILE).unlink()
