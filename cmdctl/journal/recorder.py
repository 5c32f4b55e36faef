"""Group commit: many small journal events from concurrent device jobs, few appends and fsyncs.

A background task appends what accumulated in one `Journal.append` (one write, one fsync) every
`interval` seconds, sooner when `max_pending` events wait or someone needs an event on disk
(`durable`). The append runs in a thread so device I/O goes on meanwhile; whatever arrives during
one append goes into the next, which is what makes commits group under load.

One append carries at most `max_pending` events (more only when one `record` call brought more:
the events of one call always travel together). A backlog is written as several appends in
order, and a waiter is released by the append that carries the last event queued before it
asked: the first jobs of a drain wait for their own events, not behind 50,000 others, and one
append's encoded lines stay a few megabytes.

If an append fails the journal did not accept those events: every waiter gets the error, and the
next `record` raises it, so the engine stops sending commands it could not account for.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType

from cmdctl.core.errors import JournalError
from cmdctl.journal.events import Event

Append = Callable[[Sequence[Event]], object]

#: How long an event that nobody waits for may sit in memory before it is appended.
DEFAULT_INTERVAL_S = 0.03
#: Append at once when this many events wait; also the most one append carries (bounds
#: memory and the size of one write).
DEFAULT_MAX_PENDING = 4096


class Recorder:
    """Appends events in groups; use as `async with Recorder(journal.append) as rec:`."""

    def __init__(
        self,
        append: Append,
        *,
        interval: float = DEFAULT_INTERVAL_S,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> None:
        self._append = append
        self._interval = interval
        self._max_pending = max_pending
        # Events are numbered in the order they were queued, from 0.
        self._pending: list[Event] = []  # waiting for an append; the first is number `_taken`
        self._taken = 0  # events ever handed to an append
        self._groups: deque[tuple[int, int]] = deque()  # [first, end) of multi-event records
        self._queued = 0  # events ever queued
        self._stored = 0  # events ever appended (in order): numbers up to this are on disk
        # (number of the last event it waits for, its future), in increasing numbers
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()
        self._wake = asyncio.Event()
        self._urgent = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.error: JournalError | None = None
        self.appends = 0  # how many appends (fsyncs) so far
        self.written = 0  # how many events they carried
        self.largest = 0  # the most events one append carried

    async def __aenter__(self) -> Recorder:
        self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def start(self) -> None:
        """Start the background writer."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="recorder")

    def record(self, *events: Event) -> None:
        """Queue events for the next append; raises JournalError once an append has failed."""
        self.record_many(events)

    def record_many(self, events: Iterable[Event]) -> None:
        """Queue events for the next append."""
        if self.error is not None:
            raise self.error
        pending, first = self._pending, self._queued
        pending.extend(events)
        self._queued = self._taken + len(pending)
        if self._queued - first > 1:
            self._groups.append((first, self._queued))
        self._wake.set()
        if len(pending) >= self._max_pending:
            self._urgent.set()

    async def durable(self, *events: Event) -> None:
        """Queue events and return once they (and everything queued before) are on disk."""
        self.record_many(events)
        await self.flush()

    async def flush(self) -> None:
        """Return once everything queued so far is on disk; raises JournalError if it is not."""
        if self.error is not None:
            raise self.error
        if self._queued <= self._stored:  # nothing queued is still waiting or in flight
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((self._queued, waiter))
        self._urgent.set()
        self._wake.set()
        await waiter

    async def close(self) -> None:
        """Append what is left and stop; raises JournalError if that last append failed."""
        self._closing = True
        self._wake.set()
        self._urgent.set()
        task, self._task = self._task, None
        if task is not None:
            await asyncio.shield(task)
        while self._pending and self.error is None:
            await self._write_once()
        if self.error is not None:
            raise self.error

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            if not self._urgent.is_set() and not self._closing:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._urgent.wait(), self._interval)
            if self._pending:
                await self._write_once()
            if self.error is not None:
                return
            if not self._pending:
                self._wake.clear()
                self._urgent.clear()
                if self._closing:
                    return

    def _take(self) -> list[Event]:
        """The next append's events: up to `max_pending`, never part of one `record` call's
        (a call that brought more than `max_pending` goes whole, alone)."""
        start = self._taken
        cut = start + min(len(self._pending), self._max_pending)
        groups = self._groups
        while groups and groups[0][1] <= cut:
            groups.popleft()  # wholly in this append
        if groups and groups[0][0] < cut:  # the cut would split this call's events
            first, end = groups[0]
            if first > start:
                cut = first
            else:
                cut = end
                groups.popleft()
        batch = self._pending[: cut - start]
        del self._pending[: cut - start]
        self._taken = cut
        return batch

    async def _write_once(self) -> None:
        batch = self._take()
        try:
            await asyncio.to_thread(self._append, batch)
        except JournalError as err:
            self.error = err
        except OSError as err:  # the journal should wrap these; never lose one unreported
            self.error = JournalError(f"journal append failed: {err}")
        waiters = self._waiters
        if self.error is None:
            self.appends += 1
            self.written += len(batch)
            self.largest = max(self.largest, len(batch))
            self._stored += len(batch)
            while waiters and waiters[0][0] <= self._stored:
                _, waiter = waiters.popleft()
                if not waiter.done():
                    waiter.set_result(None)
            return
        # Neither these events nor any queued after them can be accepted.
        while waiters:
            _, waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_exception(self.error)
