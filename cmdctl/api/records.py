"""The journal side of a `Fleet`: status, health, history, entries, cancel / retry / priority
and the live events. Plain methods over the journal; nothing here talks to a device."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cmdctl.core.errors import BusyError, InputError

if TYPE_CHECKING:
    from cmdctl.core.model import Entry, Priority, State
    from cmdctl.journal.events import Event
    from cmdctl.journal.feed import EventFilter, FeedEvent
    from cmdctl.journal.ledger import Ledger
    from cmdctl.journal.queueops import Change
    from cmdctl.journal.store import Journal
    from cmdctl.journal.summary import HealthReport, Status


@dataclass(frozen=True, slots=True)
class Page:
    """Entries as `queue ls` lists them: the first rows, and how many matched in all."""

    rows: tuple[Entry, ...]
    total: int

    def __iter__(self) -> Iterator[Entry]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)


def batch_id(ledger: Ledger, text: str) -> str:
    """The batch whose id is `text` or starts with it; InputError if none or several."""
    batches = ledger.batch_names()
    if text in batches:
        return text
    matches = [b for b in batches if b.startswith(text.upper())]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise InputError(f"no batch {text!r}", hint="`cmdctl status` lists the batches")
    raise InputError(
        f"batch prefix {text!r} matches {len(matches)} batches", hint="give more of the id"
    )


def _seconds_ago(since: str | float | None, now: float) -> float | None:
    """`"10m"` or 600 (seconds) → the epoch time that long before `now`."""
    if since is None:
        return None
    if isinstance(since, str):
        from cmdctl.core.timespec import parse_duration

        return now - parse_duration(since)
    return now - float(since)


class Records:
    """What a fleet's journal says and what a person may change in it."""

    journal: Journal
    who: str
    clock: Callable[[], float]
    select: Callable[[str], frozenset[str]]  # device names of an inventory pattern

    # -- the journal -------------------------------------------------------------------------

    def _status(self, batch: str | None) -> tuple[Status, Ledger]:
        from cmdctl.journal import summary

        scan, ledger = self.journal.load()
        st = summary.status(
            ledger,
            now=self.clock(),
            batch=batch_id(ledger, batch) if batch else None,
            damaged_lines=len(scan.damaged),
            problems=[f"line {d.line}: {d.reason}" for d in scan.damaged],
        )
        return dataclasses.replace(st, events=scan.committed), ledger

    def status(self, batch: str | None = None) -> Status:
        """Counts by state, per-batch progress, oldest pending, next due, stuck entries
        (`batch`: an id or a unique prefix)."""
        return self._status(batch)[0]

    def health(
        self, batch: str | None = None, *, max_age: float = 15 * 60, max_failure_rate: float = 0.2
    ) -> tuple[HealthReport, Status]:
        """The `status --health` verdict (due work older than `max_age` seconds, or more
        failures than `max_failure_rate` in the last hour, is critical) and the status."""
        from cmdctl.journal import summary

        st, ledger = self._status(batch)
        report = summary.health(
            ledger, st, max_age_s=max_age, max_failure_rate=max_failure_rate
        )
        return report, st

    def history(
        self,
        *,
        device: str | None = None,
        since: str | float | None = None,
        limit: str | None = None,
        last: int = 50,
        archive: bool = False,
    ) -> list[Entry]:
        """Finished entries, newest first (`since`: "1h" or seconds; `limit`: an inventory
        pattern, which reads the inventory; `last`: at most this many; `archive`: the
        archive's too, read a day file at a time)."""
        from cmdctl.journal import summary

        names = None if limit is None else self.select(limit)
        scan, ledger = self.journal.load()
        cutoff = _seconds_ago(since, self.clock())
        rows = summary.history(
            ledger.entries(device=device) if device else ledger.entries(),
            device=device,
            since=cutoff,
        )

        def wanted(e: Entry) -> bool:  # a failover entry counts for the device it ran on too
            if device is not None and device not in (e.device, e.ran_on):
                return False
            return names is None or e.device in names or e.ran_on in names

        rows = [e for e in rows if wanted(e)]
        if archive:
            from cmdctl.journal.archive import View, history

            with View.open(self.journal.directory, scan.file) as view:
                rows = history(view, ledger, rows, wanted=wanted, since=cutoff, last=last)
        return rows[:last]

    def entries(
        self,
        *,
        device: str | None = None,
        batch: str | None = None,
        state: State | str | None = None,
        last: int = 200,
    ) -> Page:
        """Entries in journal order, filtered as `queue ls` (no `state`: every unfinished one)."""
        from cmdctl.core.model import State

        wanted = state if isinstance(state, State) else None
        if isinstance(state, str):
            try:
                wanted = State(state.lower())
            except ValueError:
                names = ", ".join(s.value for s in State)
                raise InputError(f"unknown state {state!r}", hint=f"one of: {names}") from None
        ledger = self.journal.ledger()
        # Counted without decoding, and only the rows shown are decoded: a journal may hold a
        # million pending entries, and `queue ls -n 10` must not build a million of them.
        rows, total = ledger.page(
            device=device,
            batch=batch_id(ledger, batch) if batch is not None else None,
            state=wanted,
            unfinished=wanted is None,
            first=last,
        )
        return Page(tuple(rows), total)

    def entry(self, entry_id: str) -> Entry:
        """One entry by id or unique prefix; InputError when there is none."""
        return self.journal.ledger().lookup(entry_id)

    def entry_events(self, entry_id: str) -> tuple[Entry, list[Event]]:
        """One entry (id or unique prefix) and its events, oldest first."""
        from cmdctl.journal import events as ev

        ledger = self.journal.ledger()
        entry = ledger.lookup(entry_id)
        records = ledger.records(entry.id)
        return entry, [r if isinstance(r, ev.Event) else ev.decode(r) for r in records]

    def _select(
        self, ledger: Ledger, entry_id: str | None, *, device: str | None, batch: str | None
    ) -> list[Entry]:
        if sum(x is not None for x in (entry_id, device, batch)) != 1:
            raise InputError(
                "say which entries: give one ID, or --batch B, or --device D",
                hint="see `cmdctl queue ls`",
            )
        if entry_id is not None:
            return [ledger.lookup(entry_id)]
        return ledger.entries(device=device, batch=batch_id(ledger, batch) if batch else None)

    def cancel(
        self,
        entry_id: str | None = None,
        *,
        batch: str | None = None,
        device: str | None = None,
        dry_run: bool = False,
    ) -> Change:
        """Cancel pending entries: one id, a whole batch, or everything for a device. Entries
        running now are refused (unless the process running them is gone), with why."""
        from cmdctl.core.model import State
        from cmdctl.drain import recovery
        from cmdctl.journal import queueops

        with contextlib.ExitStack() as stack:
            try:  # no drain can start (and take an orphaned entry) while we decide
                stack.enter_context(self.journal.try_drain_lock())
                holding = True
            except BusyError:
                holding = False

            def decide(ledger: Ledger) -> Change:
                chosen = self._select(ledger, entry_id, device=device, batch=batch)
                if entry_id is None:
                    chosen = [e for e in chosen if not e.finished]
                    if not chosen:
                        raise InputError("nothing to cancel: no unfinished entries match")
                now = self.clock()
                orphans: set[str] = set()
                if any(e.state is State.RUNNING for e in chosen):
                    orphans = recovery.orphaned(ledger, now, holding_drain_lock=holding)
                return queueops.cancel(chosen, who=self.who, now=now, orphaned=orphans)

            return decide(self.journal.ledger()) if dry_run else self.journal.transact(decide)[0]

    def retry(
        self,
        entry_id: str | None = None,
        *,
        failed: bool = False,
        batch: str | None = None,
        device: str | None = None,
    ) -> Change:
        """Run failed, unknown, expired or cancelled entries again, and backed-off ones now:
        one id, a batch, a device, or with `failed` every failed entry (narrowed by both)."""
        from cmdctl.core.model import State
        from cmdctl.journal import queueops

        t = self.clock()

        def decide(ledger: Ledger) -> Change:
            if failed:
                if entry_id is not None:
                    raise InputError("give an ID or --failed, not both")
                chosen = ledger.entries(
                    state=State.FAILED,
                    device=device,
                    batch=batch_id(ledger, batch) if batch else None,
                )
                if not chosen:
                    raise InputError("nothing to retry: no failed entries match")
            else:
                chosen = self._select(ledger, entry_id, device=device, batch=batch)
                if entry_id is None:
                    chosen = [
                        e for e in chosen
                        if e.state in queueops.RETRYABLE or queueops.in_backoff(e, t)
                    ]
                    if not chosen:
                        raise InputError(
                            "nothing to retry: no failed, unknown, expired, cancelled or "
                            "backed-off entries match"
                        )
            return queueops.retry(chosen, who=self.who, now=t)

        return self.journal.transact(decide)[0]

    def priority(self, entry_id: str, level: Priority | str) -> Change:
        """Change an unfinished entry's priority (high, normal or low)."""
        from cmdctl.core.model import Priority
        from cmdctl.journal import queueops

        prio = Priority.parse(level) if isinstance(level, str) else level

        def decide(ledger: Ledger) -> Change:
            return queueops.reprioritise([ledger.lookup(entry_id)], prio, now=self.clock())

        return self.journal.transact(decide)[0]

    def event_filter(
        self,
        *,
        since: str | float | None = None,
        batch: str | None = None,
        device: str | None = None,
    ) -> EventFilter:
        """Which events `events` yields: since "10m" (or seconds) ago, of a batch (id or unique
        prefix), of a device (or ran on it)."""
        from cmdctl.journal.feed import EventFilter

        return EventFilter(
            since=_seconds_ago(since, self.clock()),
            batch=None if batch is None else batch_id(self.journal.ledger(), batch),
            device=device,
        )

    async def events(
        self,
        *,
        since: str | float | None = None,
        batch: str | None = None,
        device: str | None = None,
        follow: bool = False,
        wait: float | None = None,
    ) -> AsyncIterator[FeedEvent]:
        """The journal's events in order (`since`: "10m" or seconds); with `follow`, then each
        new one as other processes append it, until the consumer stops iterating."""
        from cmdctl.journal.feed import POLL_S, Feed

        keep = self.event_filter(since=since, batch=batch, device=device)
        with Feed(self.journal.directory) as feed:
            if not follow:
                for item in feed.poll():
                    if keep(item):
                        yield item
                return
            async for item in feed.afollow(POLL_S if wait is None else wait):
                if keep(item):
                    yield item
