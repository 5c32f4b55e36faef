"""Group commit: many small journal events from concurrent device jobs, few appends and fsyncs.

A background task appends whatever accumulated in ONE `Journal.append` (one write, one fsync),
every `interval` seconds, sooner when `max_pending` events wait or someone needs an event on disk
(`durable`). The append runs in a thread so device I/O goes on meanwhile; whatever arrives during
one append goes into the next, which is what makes commits group under load.

If an append fails the journal did not accept those events: every waiter gets the error, and the
next `record` raises it, so the engine stops sending commands it could not account for.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Sequence
from types import TracebackType

from cmdctl.core.errors import JournalError
from cmdctl.journal.events import Event

Append = Callable[[Sequence[Event]], object]

#: How long an event that nobody waits for may sit in memory before it is appended.
DEFAULT_INTERVAL_S = 0.03
#: Append at once when this many events wait (bounds memory and the size of one write).
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
        self._pending: list[Event] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._wake = asyncio.Event()
        self._urgent = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._inflight: asyncio.Future[None] | None = None
        self.error: JournalError | None = None
        self.appends = 0  # how many appends (fsyncs) so far
        self.written = 0  # how many events they carried

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
        self._pending.extend(events)
        self._wake.set()
        if len(self._pending) >= self._max_pending:
            self._urgent.set()

    async def durable(self, *events: Event) -> None:
        """Queue events and return once they (and everything queued before) are on disk."""
        self.record_many(events)
        await self.flush()

    async def flush(self) -> None:
        """Return once everything queued so far is on disk; raises JournalError if it is not."""
        if self.error is not None:
            raise self.error
        if not self._pending:
            # Something may be in the middle of an append: wait for that one too.
            if self._inflight is None:
                return
            await asyncio.shield(self._inflight)
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
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
        if self._pending and self.error is None:
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

    async def _write_once(self) -> None:
        batch, self._pending = self._pending, []
        waiters, self._waiters = self._waiters, []
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._inflight = done
        try:
            await asyncio.to_thread(self._append, batch)
        except JournalError as err:
            self.error = err
        except OSError as err:  # the journal should wrap these; never lose one unreported
            self.error = JournalError(f"journal append failed: {err}")
        finally:
            self._inflight = None
        if self.error is None:
            self.appends += 1
            self.written += len(batch)
            result: JournalError | None = None
        else:
            result = self.error
            # Events queued after this batch cannot be accepted either.
            waiters.extend(self._waiters)
            self._waiters = []
        for waiter in waiters:
            if waiter.done():
                continue
            if result is None:
                waiter.set_result(None)
            else:
                waiter.set_exception(result)
        if result is None:
            done.set_result(None)
        else:
            done.set_exception(result)
            done.exception()  # mark retrieved: waiters already carry the error
