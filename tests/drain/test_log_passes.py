"""Loops over many entries read the ledger's log once, not once per entry.

A ledger read from the journal keeps each entry's later records (`started`, `done`...) as one
log of positions, and `records` / `get` of one entry pass over the whole log to find its own. A
loop calling them per entry is quadratic: 16,000 finished entries of a gated step made each
drain pass spend 80 s deciding its barriers, and `--metrics-file` waited seconds per pass for
outcomes it had already written. These count the passes over the log.
"""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from cmdctl.core.model import Coordination, Entry, State
from cmdctl.drain import gates, metrics
from cmdctl.journal import events as ev
from cmdctl.journal.ledger import Ledger
from cmdctl.journal.store import Journal
from cmdctl.serve.ops import Ops

from .conftest import make_entry

N = 300


def finished(
    journal: Journal, n: int, *, step: str, ts: float, failing: int | None = None
) -> list[Entry]:
    """`n` entries of `step` queued, started and done (at `ts`; number `failing` failed),
    each kind its own append."""
    entries = [make_entry(f"tv-{i % 7}", "number", "volume", {"value": 1.0}, step=step)
               for i in range(n)]
    journal.append([ev.queued(e) for e in entries])
    journal.append([ev.started(e.id, ts - 1, attempt=1, run="r") for e in entries])
    journal.append([
        ev.failed(e.id, ts, error="refused", kind="rejected") if i == failing
        else ev.done(e.id, ts, outcome="delivered", duration=0.1)
        for i, e in enumerate(entries)
    ])
    return entries


@pytest.fixture
def passes(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of rows each pass over a ledger's log looked for, as passes happen."""
    seen: list[int] = []
    real = Ledger._gather

    def counted(self: Ledger, rows: Any) -> dict[int, list[int]]:
        rows = list(rows)
        wanted = set(rows).difference(self._logged)
        if wanted and self._log_rows:
            seen.append(len(wanted))
        return real(self, rows)

    monkeypatch.setattr(Ledger, "_gather", counted)
    return seen


def test_barriers_over_a_long_history_read_the_log_once(
    journal: Journal, passes: list[int]
) -> None:
    before = finished(journal, N, step="input", ts=time.time() - 60)
    after = Coordination(after="input")
    dependents = [replace(make_entry(e.device, "number", "volume", {"value": 2.0}, step="volume"),
                          coordination=after) for e in before]
    journal.append([ev.queued(e) for e in dependents])
    ledger = journal.ledger()
    due = ledger.entries(state=State.PENDING)
    passes.clear()
    barriers = gates.check(ledger, due)
    assert [e.id for e in barriers.ready] == [e.id for e in dependents]  # the step ended done
    assert len(passes) <= 1, passes


def test_a_barrier_still_sees_a_failed_prerequisite_among_many(journal: Journal) -> None:
    before = finished(journal, N, step="input", ts=time.time() - 60, failing=N - 17)
    dependents = [replace(make_entry(e.device, "number", "volume", {"value": 2.0}, step="volume"),
                          coordination=Coordination(after="input")) for e in before[:3]]
    journal.append([ev.queued(e) for e in dependents])
    ledger = journal.ledger()
    barriers = gates.check(ledger, ledger.entries(state=State.PENDING))
    assert not barriers.ready and len(barriers.skipped) == 3  # skip: on every device


def test_the_metrics_wait_for_outcomes_reads_the_log_once(
    journal: Journal, passes: list[int]
) -> None:
    now = time.time()
    entries = finished(journal, N, step="volume", ts=now)
    ledger = journal.ledger()
    marks = {e.id: now - 0.5 for e in entries} | {"GONE": now}  # gone: archived, recorded
    passes.clear()
    assert metrics._recorded(ledger, marks)
    assert len(passes) <= 1, passes
    assert not metrics._recorded(ledger, marks | {entries[5].id: now + 1})  # not newer yet


def test_the_metrics_wait_for_a_running_entry(journal: Journal) -> None:
    now = time.time()
    entries = finished(journal, 3, step="volume", ts=now)
    running = make_entry("tv-1", "number", "volume", {"value": 1.0})
    journal.append([ev.queued(running), ev.started(running.id, now, attempt=1, run="r")])
    marks = {e.id: now - 0.5 for e in entries}
    assert metrics._recorded(journal.ledger(), marks)
    assert not metrics._recorded(journal.ledger(), marks | {running.id: now - 0.5})


def test_the_api_queue_listing_reads_the_log_once(tmp_path: Path, passes: list[int]) -> None:
    journal = Journal(tmp_path / "journal")
    entries = finished(journal, N, step="volume", ts=time.time())
    ops = Ops(journal, inventory=lambda: None, who="tester@localhost")  # type: ignore[arg-type,return-value]
    passes.clear()
    listed = ops.entries(state="done", limit=N)
    assert [e["id"] for e in listed] == [e.id for e in entries]
    assert len(passes) <= 1, passes
