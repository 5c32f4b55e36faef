"""What `status`, `status --health` and `history` report, computed from the ledger (no printing)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, overload

from cmdctl.core.model import Entry, State
from cmdctl.journal.ledger import Ledger

#: A RUNNING entry whose last start is older than this is reported as stuck: a drain records an
#: outcome within its device job timeout, far below this.
STUCK_AFTER_S = 15 * 60


@dataclass(frozen=True, slots=True)
class BatchLine:
    """One batch's progress."""

    batch: str
    playbook: str | None
    origin: str
    created: float
    counts: dict[State, int]

    @property
    def total(self) -> int:
        """Entries in the batch."""
        return sum(self.counts.values())

    @property
    def finished(self) -> int:
        """Entries no drain will touch again."""
        return sum(n for state, n in self.counts.items() if state.finished)


@dataclass(frozen=True, slots=True)
class Status:
    """The queue at a glance."""

    now: float
    total: int
    counts: dict[State, int]
    batches: tuple[BatchLine, ...]
    oldest_pending: float | None  # `created` of the oldest pending entry
    next_due: float | None  # earliest `not_before` among pending entries
    stuck: Sequence[Entry]  # running for longer than STUCK_AFTER_S (decoded when read)
    running: int
    needs_person: tuple[Entry, ...]  # state unknown: interrupted, not safe to repeat
    damaged_lines: int = 0
    problems: tuple[str, ...] = field(default=())
    events: int = 0  # committed events in the journal file

    @property
    def overdue_s(self) -> float:
        """How long the most overdue pending entry has been due (0 when none is due)."""
        if self.next_due is None or self.next_due > self.now:
            return 0.0
        return self.now - self.next_due


def status(
    ledger: Ledger,
    *,
    now: float,
    batch: str | None = None,
    damaged_lines: int = 0,
    problems: Iterable[str] = (),
) -> Status:
    """Counts by state, per-batch progress, oldest pending, next due, stuck and unknown entries."""
    progress = ledger.batches()
    if batch is not None:
        progress = {batch: progress[batch]} if batch in progress else {}
        counts = dict(progress[batch].counts) if progress else {}
        summary = ledger.summary(batch)
        oldest, next_due = summary.oldest_pending, summary.next_due
    else:
        summary = ledger.summary()
        counts = dict(summary.counts)
        oldest, next_due = summary.oldest_pending, summary.next_due
    heads = ledger.batch_queued(progress)
    lines = []
    for b, p in progress.items():
        head = heads[b]
        lines.append(
            BatchLine(
                batch=b,
                playbook=head.playbook,
                origin=head.origin,
                created=head.created,
                counts=dict(p.counts),
            )
        )
    running = ledger.running_since(batch)
    stuck = Stuck(ledger, sorted(i for i, since in running if now - since > STUCK_AFTER_S))
    unknown = tuple(ledger.entries(state=State.UNKNOWN, batch=batch))
    return Status(
        now=now,
        total=sum(counts.values()),
        counts=counts,
        batches=tuple(lines),
        oldest_pending=oldest,
        next_due=next_due,
        stuck=stuck,
        running=len(running),
        needs_person=unknown,
        damaged_lines=damaged_lines,
        problems=tuple(problems),
    )


class Stuck(Sequence[Entry]):
    """Stuck entries in id order, counted without decoding them; decoded (all at once) when
    one is read: `status` prints how many, `status --json` every one."""

    def __init__(self, ledger: Ledger, ids: list[str]) -> None:
        self._ledger, self._ids = ledger, ids
        self._entries: tuple[Entry, ...] | None = None

    def _all(self) -> tuple[Entry, ...]:
        if self._entries is None:
            self._entries = tuple(self._ledger.entries_of(self._ids))
        return self._entries

    def __len__(self) -> int:
        return len(self._ids)

    @overload
    def __getitem__(self, index: int) -> Entry: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Entry]: ...
    def __getitem__(self, index: int | slice) -> Entry | Sequence[Entry]:
        return self._all()[index]

    def __iter__(self) -> Iterator[Entry]:
        return iter(self._all())

    def __eq__(self, other: object) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, Sequence) else other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Stuck({self._ids!r})"


class Health(IntEnum):
    """Nagios plugin states; `status --health` exits with these."""

    OK = 0
    WARNING = 1
    CRITICAL = 2


@dataclass(frozen=True, slots=True)
class HealthReport:
    """One monitoring verdict and the one line that says why."""

    health: Health
    line: str
    failure_rate: float
    recent_finished: int


def health(
    ledger: Ledger,
    st: Status,
    *,
    max_age_s: float,
    max_failure_rate: float,
    window_s: float = 3600.0,
) -> HealthReport:
    """OK / WARNING / CRITICAL for monitoring, from overdue work, failures, corruption."""
    since = st.now - window_s
    failed = sum(
        1 for e in ledger.entries(state=State.FAILED) if (e.finished_at or e.updated) >= since
    )
    finished = failed + sum(
        1 for e in ledger.entries(state=State.DONE) if (e.finished_at or e.updated) >= since
    )
    rate = failed / finished if finished else 0.0
    critical: list[str] = []
    warning: list[str] = []
    if st.damaged_lines:
        critical.append(f"{st.damaged_lines} damaged journal lines (run `cmdctl journal verify`)")
    if st.overdue_s > max_age_s:
        critical.append(f"work overdue by {st.overdue_s:.0f}s (is the drain running?)")
    if finished and rate > max_failure_rate:
        critical.append(f"{failed}/{finished} commands failed in the last {window_s / 3600:g}h")
    if st.stuck:
        warning.append(f"{len(st.stuck)} entries stuck running")
    if st.needs_person:
        warning.append(f"{len(st.needs_person)} entries need a person (state unknown)")
    pending = st.counts.get(State.PENDING, 0)
    tail = f"{pending} pending, {failed}/{finished} failed in the last {window_s / 3600:g}h"
    if critical:
        return HealthReport(
            Health.CRITICAL, f"CRITICAL - {'; '.join(critical + warning)}", rate, finished
        )
    if warning:
        return HealthReport(
            Health.WARNING, f"WARNING - {'; '.join(warning)}; {tail}", rate, finished
        )
    return HealthReport(Health.OK, f"OK - {tail}", rate, finished)


def history(
    entries: Iterable[Entry],
    *,
    device: str | None = None,
    since: float | None = None,
) -> list[Entry]:
    """Finished entries (and ones needing a person), newest first."""
    out = [
        e
        for e in entries
        if (e.finished or e.state is State.UNKNOWN)
        and (device is None or e.device == device or e.ran_on == device)
        and (since is None or (e.finished_at or e.updated) >= since)
    ]
    out.sort(key=lambda e: (e.finished_at or e.updated, e.id), reverse=True)
    return out


def status_json(st: Status) -> dict[str, Any]:
    """`status --json`: the counts, stuck entries, problems and per-batch progress."""
    return {
        "now": st.now,
        "total": st.total,
        "counts": {s.value: n for s, n in st.counts.items()},
        "oldest_pending": st.oldest_pending,
        "next_due": st.next_due,
        "overdue_s": st.overdue_s,
        "running": st.running,
        "stuck": [e.as_json() for e in st.stuck],
        "needs_person": [e.as_json() for e in st.needs_person],
        "damaged_lines": st.damaged_lines,
        "problems": list(st.problems),
        "batches": [
            {
                "batch": b.batch,
                "playbook": b.playbook,
                "origin": b.origin,
                "created": b.created,
                "total": b.total,
                "finished": b.finished,
                "counts": {s.value: n for s, n in b.counts.items()},
            }
            for b in st.batches
        ],
    }
