"""The live feed: the journal's events in order as they land, across compactions.

A `Feed` keeps the journal file it is reading open and remembers the end of the committed lines
it has seen there. Each `poll` reads only what was committed since (an uncommitted tail waits
for its last line), then looks at the path: if a compaction renamed a new file into place, the
old file is read to its end (writers append under the lock, and after the rename every append
goes to the new file), and the new file is read from its start, skipping the lines the old
file held (compaction copies kept lines, reframed, in order). Nothing is repeated and nothing
appended to the old file is lost. One case loses events: two compactions between two polls,
the second archiving lines appended in between (they are in `archive.jsonl`).

Between polls `follow` sleeps POLL_S: two `stat` calls per wait, no reads while nothing changes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from cmdctl.core import durable
from cmdctl.core.errors import JournalError
from cmdctl.core.model import Entry
from cmdctl.journal import events as ev
from cmdctl.journal import layout
from cmdctl.journal.entry import entry_from_queued
from cmdctl.journal.events import Event, EventDecodeError
from cmdctl.journal.framing import scan_bytes

#: Wait between looks at the journal while following: an event shows within this, and an idle
#: follower costs two stat() calls per wait.
POLL_S = 0.05


@dataclass(frozen=True, slots=True)
class FeedEvent:
    """One event of the journal with the entry it is about (None if its `queued` is unreadable)."""

    event: Event
    entry: Entry | None

    def as_json(self) -> dict[str, object]:
        """`events --json`: the entry's id, batch, device, selector, the type, ts, the fields."""
        e = self.entry
        out: dict[str, object] = {
            "id": self.event.id,
            "batch": e.batch if e else None,
            "device": e.device if e else None,
            "selector": e.command.selector if e else None,
            "type": self.event.type,
            "ts": self.event.ts,
        }
        for key, value in self.event.fields.items():
            out.setdefault(key, value)
        return out


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events to show: at or after `since` (epoch s), of one batch, of one device."""

    since: float | None = None
    batch: str | None = None
    device: str | None = None

    def __call__(self, item: FeedEvent) -> bool:
        if self.since is not None and item.event.ts < self.since:
            return False
        e = item.entry
        if self.batch is not None and (e is None or e.batch != self.batch):
            return False
        return self.device is None or (e is not None and self.device in (e.device, e.ran_on))


def _body(line: bytes) -> bytes:
    """A committed line without its framing keys: the same event after compaction reframed it."""
    cut = line.rfind(b',"m":')
    return line[:cut] if cut > 0 else line


class Feed:
    """The events of the journal in `directory`, read incrementally (see the module doc)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.path = directory / layout.JOURNAL_FILE
        self._fd: int | None = None
        self._file: tuple[int, int] = (0, 0)
        self._offset = 0  # end of the committed lines seen in the open file
        self._line = 0  # line number of the last line scanned
        self._entries: dict[str, Entry | None] = {}
        self._skip: Counter[bytes] | None = None  # the replaced file's lines, while re-reading

    def close(self) -> None:
        """Let go of the open journal file."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def __enter__(self) -> Feed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def poll(self) -> list[FeedEvent]:
        """The events committed since the last poll (at the first, the whole journal)."""
        if self._fd is None and not self._open():
            return []
        out = self._read()
        try:
            st = os.stat(self.path, follow_symlinks=False)
            current = (st.st_dev, st.st_ino)
        except FileNotFoundError:
            current = None
        except OSError as err:
            raise JournalError(f"cannot read {self.path}: {err}") from err
        if current is not None and current != self._file:
            out += self._read()  # appends to the old file all landed before the rename
            self._skip = self._lines_of_old_file()
            self.close()
            self._entries.clear()  # the new file holds the queued event of each entry it keeps
            if self._open():
                out += self._read()
            self._skip = None  # the new file's copy of the old lines was all read
        return out

    def follow(
        self, stop: Callable[[], bool] = lambda: False, wait: float = POLL_S
    ) -> Iterator[FeedEvent]:
        """Every event, then each new one as it lands, until `stop()` is true between polls."""
        while True:
            yield from self.poll()
            if stop():
                return
            time.sleep(wait)
            if stop():
                return

    async def afollow(self, wait: float = POLL_S) -> AsyncIterator[FeedEvent]:
        """`follow` for an event loop: ends when the consumer stops iterating."""
        while True:
            for item in self.poll():
                yield item
            await asyncio.sleep(wait)

    # -- internals -------------------------------------------------------------------------

    def _open(self) -> bool:
        if not layout.check_dir(self.directory):
            return False
        try:
            fd = os.open(self.path, os.O_RDONLY | durable.NOFOLLOW)
        except FileNotFoundError:
            return False
        except OSError as err:
            raise JournalError(f"cannot read {self.path}: {err}") from err
        st = os.fstat(fd)
        self._fd, self._file, self._offset, self._line = fd, (st.st_dev, st.st_ino), 0, 0
        return True

    def _read(self) -> list[FeedEvent]:
        fd = self._fd
        assert fd is not None
        if os.fstat(fd).st_size <= self._offset:
            return []
        data = _pread_all(fd, self._offset)
        scan = scan_bytes(data, self._offset, self._line + 1)
        self._offset = scan.end
        self._line = scan.last_line if scan.lines else self._line
        out: list[FeedEvent] = []
        skip = self._skip
        for line in scan.lines:
            try:
                event = ev.decode(line)
            except EventDecodeError:
                continue  # `journal verify` reports it
            if event.type == ev.QUEUED:
                try:
                    self._entries[event.id] = entry_from_queued(event)
                except EventDecodeError:
                    self._entries[event.id] = None
            if skip is not None:
                body = _body(line)
                if skip[body] > 0:
                    skip[body] -= 1
                    continue
            out.append(FeedEvent(event, self._entries.get(event.id)))
        return out

    def _lines_of_old_file(self) -> Counter[bytes]:
        assert self._fd is not None
        scan = scan_bytes(_pread_all(self._fd, 0)[: self._offset])
        return Counter(_body(line) for line in scan.lines)


def _pread_all(fd: int, start: int) -> bytes:
    chunks = []
    offset = start
    while chunk := os.pread(fd, 1 << 24, offset):
        chunks.append(chunk)
        offset += len(chunk)
    return b"".join(chunks)
