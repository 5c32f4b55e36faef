"""The journal's line framing: each line's place in its append and its CRC, and the scan that
splits journal bytes into committed lines, damage and an uncommitted tail (see journal.store).

`scan_bytes` splits bytes held in memory (what `load` and `compact` read); `sweep` decides the
same for a journal fed a block at a time and keeps one byte per line (what `verify` reads).
"""

from __future__ import annotations

import gc
import operator
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from cmdctl.journal import events as ev
from cmdctl.journal.events import Event, EventDecodeError
from cmdctl.journal.runs import RunLines

_CRC_KEY = b',"c":"'
_SUFFIX_LEN = 16  # len(',"c":"xxxxxxxx"}')


@dataclass(frozen=True, slots=True)
class Damage:
    """A line readers skip: its 1-based number and what is wrong with it."""

    line: int
    reason: str
    raw: bytes = field(default=b"", repr=False)


@dataclass(slots=True)
class Scan:
    """One read of the journal: committed lines (framing intact) and what was skipped.

    A read that starts from a snapshot holds only the lines after it (`start` > 0); `committed`
    and `damaged` still cover the whole journal.
    """

    lines: list[bytes]
    offsets: list[int]  # byte offset of each line in the file
    numbers: list[int]  # 1-based line number of each line
    damaged: list[Damage]
    uncommitted: int  # complete lines of an append whose last line is not there yet
    torn: int  # bytes after the last newline
    size: int  # bytes of the file seen
    start: int = 0  # byte offset the read began at
    end: int = 0  # byte offset just after the last committed line
    committed: int = 0  # committed lines in the whole journal
    last_line: int = 0  # line number of the line ending at `end`
    file: tuple[int, int] = (0, 0)  # (st_dev, st_ino) of the file read, when `load` read it
    check: int = 0  # `tail_check` of the bytes before `end`, when `load` read it

    def mark(self) -> Mark:
        """Where this read ended: the position `Journal.append_since` looks past."""
        return Mark(self.file, self.end, self.check)

    def events(self) -> Iterator[Event]:
        """Decode the committed lines (lines that fail to decode are added to `damaged`)."""
        for number, line in zip(self.numbers, self.lines, strict=True):
            try:
                yield ev.decode(line)
            except EventDecodeError as err:
                self.damaged.append(Damage(number, str(err), line))


@dataclass(frozen=True, slots=True)
class Mark:
    """A position in one journal file: everything before `offset` has been seen.

    `file` alone does not name a file for good: a compaction renames a new file into place and
    the filesystem reuses the freed inode for the next one (ext4 alternates between two). So a
    mark also keeps `check`, the CRC-32 of the bytes just before `offset`: a file that does not
    hold them there is not the one that was read.
    """

    file: tuple[int, int]  # (st_dev, st_ino)
    offset: int
    check: int = 0  # tail_check at offset


#: How many bytes before an offset `tail_check` covers (marks and the snapshot).
TAIL_CHECK = 4096


def tail_check(read: Callable[[int, int], bytes], offset: int) -> int:
    """CRC-32 of the (up to) TAIL_CHECK bytes of a file that end at `offset`.

    `read(offset, size)` reads the file. Proof that a file still holds what was seen there.
    """
    low = max(0, offset - TAIL_CHECK)
    return zlib.crc32(read(low, offset - low))


# -- framing ---------------------------------------------------------------------------------


def frame(lines: Sequence[str]) -> bytes:
    """The bytes of one append: each event line with its `m` and `c` keys and a newline."""
    return b"".join(frame_lines(lines))


def frame_lines(lines: Sequence[str]) -> list[bytes]:
    """`frame`, line by line (each with its newline)."""
    n = len(lines)
    if n == 1:
        body = b'%s,"m":0' % lines[0][:-1].encode()
        return [b'%s,"c":"%08x"}\n' % (body, zlib.crc32(body))]
    # each line without its closing brace: the framing keys go there
    opened = lines.opened() if isinstance(lines, RunLines) else map(_OPEN_LINE, lines)
    out: list[bytes] = []
    add, crc32, k, of_n = out.append, zlib.crc32, n, f'/{n}"'
    for text in opened:
        k -= 1
        body = f'{text},"m":"{k}{of_n}'.encode()
        add(b'%s,"c":"%08x"}\n' % (body, crc32(body)))
    return out


_OPEN_LINE = operator.itemgetter(slice(None, -1))


def reframe(line: bytes) -> bytes:
    """A committed line as a one-line append of its own (`m: 0`, fresh CRC), newline included."""
    body = line[:-_SUFFIX_LEN]
    cut = body.rfind(b',"m":')
    body = body[:cut] + b',"m":0'
    return b'%s,"c":"%08x"}\n' % (body, zlib.crc32(body))


_SINGLE = (0, 1)


def _more(line: bytes) -> tuple[int, int] | None:
    """The line's place in its append, (lines after it, lines in the append); None if damaged."""
    n = len(line)
    if n < 24 or line[n - 16 : n - 10] != _CRC_KEY or line[n - 2 :] != b'"}':
        return None
    try:
        if zlib.crc32(line[: n - 16]) != int(line[n - 10 : n - 2], 16):
            return None
    except ValueError:
        return None
    return _place(line)


def _place(line: bytes) -> tuple[int, int] | None:
    """(k, n) from the `m` of a line whose CRC checked out: `0` or `"k/n"`; None if malformed."""
    n = len(line)
    cut = line.rfind(b',"m":', 0, n - 16)
    if cut < 0:
        return None
    value = line[cut + 5 : n - 16]
    if value == b"0":
        return _SINGLE
    if value[:1] != b'"' or value[-1:] != b'"':
        return None
    k, slash, total = value[1:-1].partition(b"/")
    if not (slash and k.isdigit() and total.isdigit()):
        return None
    place = int(k), int(total)
    return place if place[1] > 1 and place[0] < place[1] else None


def scan_bytes(data: bytes, start: int = 0, first_line: int = 1) -> Scan:
    """Split journal bytes (found at file offset `start`) into committed lines and the rest."""
    parts = data.split(b"\n")
    torn = len(parts.pop())
    lines: list[bytes] = []
    offsets: list[int] = []
    numbers: list[int] = []
    damaged: list[Damage] = []
    # The append being read, not committed yet: indexes into `parts` and file offsets.
    g_index: list[int] = []
    g_offset: list[int] = []
    group_n = expect = run = 0  # run: damaged lines right before this one
    end = pos = start
    last = first_line - 1

    def commit() -> None:
        lines.extend(map(parts.__getitem__, g_index))
        offsets.extend(g_offset)
        numbers.extend(map(first_line.__add__, g_index))
        g_index.clear()
        g_offset.clear()

    crc32 = zlib.crc32
    gc_was_on = gc.isenabled()
    gc.disable()  # a million small acyclic objects: collections would only cost time
    try:
        for index, line in enumerate(parts):
            at = pos
            n = len(line)
            pos += n + 1
            place = None
            if line[n - 16 : n - 10] == b',"c":"' and line[n - 2 :] == b'"}':
                try:
                    ok = crc32(line[: n - 16]) == int(line[n - 10 : n - 2], 16)
                except ValueError:
                    ok = False
                if ok:
                    # Fast path: the next line of the append being read.
                    if g_index and line.endswith(b',"m":"%d/%d"' % (expect, group_n), 0, n - 16):
                        g_index.append(index)
                        g_offset.append(at)
                        expect -= 1
                        if expect < 0:  # the append's last line: commit it whole
                            end, last = pos, first_line + index
                            commit()
                        run = 0
                        continue
                    place = _SINGLE if line[n - 22 : n - 16] == b',"m":0' else _place(line)
            if place is None:
                damaged.append(
                    Damage(first_line + index, "damaged line (bad framing or checksum)", line)
                )
                run += 1
                if g_index:  # a hole in an append: the rest of it can still prove it committed
                    expect -= 1
                    if expect < 0:
                        end, last = pos, first_line + index
                        commit()
                continue
            if g_index:  # this line does not continue the append: it was broken off
                damaged.extend(
                    Damage(first_line + k, "append broken off (its last line is missing)", parts[k])
                    for k in g_index
                )
                g_index.clear()
                g_offset.clear()
            if place is _SINGLE:  # the common case: a committed line of its own
                lines.append(line)
                offsets.append(at)
                numbers.append(first_line + index)
                end, last = pos, first_line + index
            elif place[1] - 1 - place[0] <= run:  # an append's first line (or one after holes)
                g_index.append(index)
                g_offset.append(at)
                group_n, expect = place[1], place[0] - 1
                if expect < 0:
                    end, last = pos, first_line + index
                    commit()
            else:
                damaged.append(
                    Damage(first_line + index, "line of an append whose start is missing", line)
                )
            run = 0
    finally:
        if gc_was_on:
            gc.enable()
    return Scan(
        lines=lines,
        offsets=offsets,
        numbers=numbers,
        damaged=damaged,
        uncommitted=len(g_index),
        torn=torn,
        size=start + len(data),
        start=start,
        end=end,
        committed=len(lines),
        last_line=last,
    )


#: `Sweep.status` codes: what a reader makes of each complete line.
COMMITTED, DAMAGED, UNCOMMITTED = 0, 1, 2
_OPEN = 3  # a line of the append being read, until its last line arrives (never left in a Sweep)
_OPEN_B, _COMMITTED_B = bytes([_OPEN]), bytes([COMMITTED])


@dataclass(slots=True)
class Sweep:
    """What `scan_bytes` would find in a journal, kept as one status code per line."""

    status: bytearray  # COMMITTED / DAMAGED / UNCOMMITTED, one per complete line, in order
    damaged: list[tuple[int, str]]  # (line number, reason), in the order `scan_bytes` reports
    uncommitted: int
    torn: int
    size: int


def sweep(blocks: Iterable[bytes]) -> Sweep:
    """`scan_bytes` of the concatenated `blocks`, holding one block and one byte a line.

    Line for line the same decisions, in the same order; `scan_bytes` is not built on it
    because `load` is the hot path and keeps its lines anyway.
    """
    status = bytearray()
    damaged: list[tuple[int, str]] = []
    carry = b""
    size = 0
    index = 0  # of the line being read, 0-based
    first = -1  # index of the first line of the append being read; -1: none
    group_n = expect = run = 0  # run: damaged lines right before this one
    crc32 = zlib.crc32
    mark = status.append

    def commit() -> None:
        status[first:] = status[first:].replace(_OPEN_B, _COMMITTED_B)

    for block in blocks:
        size += len(block)
        parts = (carry + block).split(b"\n") if carry else block.split(b"\n")
        carry = parts.pop()
        for line in parts:
            n = len(line)
            place = None
            if line[n - 16 : n - 10] == b',"c":"' and line[n - 2 :] == b'"}':
                try:
                    ok = crc32(line[: n - 16]) == int(line[n - 10 : n - 2], 16)
                except ValueError:
                    ok = False
                if ok:
                    if first >= 0 and line.endswith(b',"m":"%d/%d"' % (expect, group_n), 0, n - 16):
                        mark(_OPEN)
                        expect -= 1
                        if expect < 0:
                            commit()
                            first = -1
                        run = 0
                        index += 1
                        continue
                    place = _SINGLE if line[n - 22 : n - 16] == b',"m":0' else _place(line)
            if place is None:
                damaged.append((index + 1, "damaged line (bad framing or checksum)"))
                mark(DAMAGED)
                run += 1
                if first >= 0:  # a hole in an append: the rest of it can still prove it committed
                    expect -= 1
                    if expect < 0:
                        commit()
                        first = -1
                index += 1
                continue
            if first >= 0:  # this line does not continue the append: it was broken off
                for k in range(first, index):
                    if status[k] == _OPEN:
                        status[k] = DAMAGED
                        damaged.append((k + 1, "append broken off (its last line is missing)"))
                first = -1
            if place is _SINGLE:
                mark(COMMITTED)
            elif place[1] - 1 - place[0] <= run:  # an append's first line (or one after holes)
                first = index
                mark(_OPEN)
                group_n, expect = place[1], place[0] - 1
                if expect < 0:
                    commit()
                    first = -1
            else:
                damaged.append((index + 1, "line of an append whose start is missing"))
                mark(DAMAGED)
            run = 0
            index += 1
    uncommitted = 0
    if first >= 0:
        uncommitted = status.count(_OPEN_B, first)
        status[first:] = status[first:].replace(_OPEN_B, bytes([UNCOMMITTED]))
    return Sweep(status, damaged, uncommitted, len(carry), size)


def committed_end(buf: bytes, from_start: bool) -> int | None:
    """Offset in `buf` where the committed journal ends, or None if `buf` starts too late."""
    last_nl = buf.rfind(b"\n")
    if last_nl < 0:
        return 0 if from_start else None
    cut = last_nl + 1
    end = last_nl  # the newline ending the line under examination
    want: tuple[int, int] | None = None  # the place the previous line must have to belong
    while True:
        prev_nl = buf.rfind(b"\n", 0, end)
        if prev_nl < 0 and not from_start:
            return None
        place = _more(buf[prev_nl + 1 : end])
        if want is None:
            if place is None or place[0] == 0:  # committed, or damage readers report: keep
                return cut
        elif place != want:
            return cut
        assert place is not None
        cut = prev_nl + 1
        if place[0] == place[1] - 1 or prev_nl < 0:  # the start of the uncommitted append
            return cut
        want = (place[0] + 1, place[1])
        end = prev_nl
