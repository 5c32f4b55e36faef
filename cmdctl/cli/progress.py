"""How runs look: a live rich view on a terminal, plain lines elsewhere, and the recap table.

On a terminal: an overall bar, one bar per batch, the devices in flight with their current step
and retry counts, and an ETA. Off a terminal (cron, pipes): nothing while running, no control
codes, and nothing at all when there was nothing to do; except `run`, which never ends on its
own, so under systemd it says one plain line per batch it worked through and per failure
(journald stamps each line).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from types import TracebackType

from rich.console import Console, Group
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from cmdctl.core.model import Entry
from cmdctl.drain.observer import Finished
from cmdctl.drain.totals import (
    CONFIRMED,
    DELIVERED,
    EXPIRED,
    FAILED,
    SKIPPED,
    UNKNOWN,
    UNREACHABLE,
    Tally,
    Totals,
    sorted_tallies,
)

#: Devices shown in the in-flight list at most (the rest are summarised as "+N more").
SHOWN_IN_FLIGHT = 12


class LiveView:
    """Observer that draws progress on a terminal; use as a context manager around the run."""

    def __init__(self, console: Console, *, title: str = "drain") -> None:
        self.console = console
        self.progress = Progress(
            TextColumn("{task.description}", justify="left"),
            BarColumn(bar_width=None),
            MofNCompleteColumn(),
            TextColumn("{task.fields[note]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=console,
            expand=True,
        )
        self.overall = self.progress.add_task(title, total=0, note="")
        self.batches: dict[str, TaskID] = {}
        self.in_flight: dict[str, str] = {}
        self.retries: dict[str, int] = {}
        self.failures = 0
        self.live = Live(
            self._render(),
            console=console,
            refresh_per_second=8,
            transient=False,
            get_renderable=self._render,
        )

    def __enter__(self) -> LiveView:
        self.live.__enter__()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.in_flight.clear()
        self.live.__exit__(exc_type, exc, tb)

    def _render(self) -> Group:
        table = Table.grid(padding=(0, 2))
        shown = list(self.in_flight.items())[:SHOWN_IN_FLIGHT]
        for device, step in shown:
            retries = self.retries.get(device, 0)
            table.add_row(device, step, f"retries {retries}" if retries else "")
        more = len(self.in_flight) - len(shown)
        if more > 0:
            table.add_row(f"+{more} more", "", "")
        return Group(self.progress, table)

    # -- Observer ------------------------------------------------------------------------------

    def planned(self, entries: Sequence[Entry]) -> None:
        """Grow the overall bar and add (or grow) one bar per batch."""
        task = self.progress.tasks[self.overall]
        self.progress.update(self.overall, total=(task.total or 0) + len(entries))
        per_batch: dict[str, tuple[int, str]] = {}
        for entry in entries:
            count, label = per_batch.get(entry.batch, (0, entry.playbook or entry.origin))
            per_batch[entry.batch] = (count + 1, label)
        for batch, (count, label) in per_batch.items():
            found = self.batches.get(batch)
            if found is None:
                self.batches[batch] = self.progress.add_task(
                    f"  {label} {batch[-6:]}", total=count, note=""
                )
            else:
                total = self.progress.tasks[found].total or 0
                self.progress.update(found, total=total + count)

    def step(self, device: str, text: str) -> None:
        """Show what a device is doing; count its retries."""
        self.in_flight[device] = text
        if text.startswith("retry"):
            self.retries[device] = self.retries.get(device, 0) + 1

    def finished(self, done: Finished) -> None:
        """Advance the bars."""
        if done.outcome in (FAILED, UNKNOWN, UNREACHABLE):
            self.failures += 1
            self.progress.update(self.overall, note=f"[red]{self.failures} not ok[/]")
        self.progress.advance(self.overall)
        task = self.batches.get(done.entry.batch)
        if task is not None:
            self.progress.advance(task)

    def device_done(self, tally: Tally) -> None:
        """Drop the device from the in-flight list."""
        self.in_flight.pop(tally.device, None)


class Silent:
    """Observer for non-terminals and --quiet: shows nothing while running."""

    def planned(self, entries: Sequence[Entry]) -> None:
        """Ignore."""

    def step(self, device: str, text: str) -> None:
        """Ignore."""

    def finished(self, done: Finished) -> None:
        """Ignore."""

    def device_done(self, tally: Tally) -> None:
        """Ignore."""


class Lines:
    """Observer for `run` off a terminal: one plain line per batch worked through (what each
    of its commands came to) and per failure, as it happens; failures only when `quiet`."""

    def __init__(self, say: Callable[[str], None], *, quiet: bool = False) -> None:
        self.say = say
        self.quiet = quiet
        self.waiting: dict[str, int] = {}  # batch -> entries planned without an outcome yet
        self.counts: dict[str, dict[str, int]] = {}  # batch -> outcome -> entries
        self.labels: dict[str, str] = {}  # batch -> playbook name or origin
        self.away: dict[str, tuple[int, int, str]] = {}  # device -> (unreachable, queued, why)

    def planned(self, entries: Sequence[Entry]) -> None:
        """Count what each batch has to come."""
        for entry in entries:
            self.waiting[entry.batch] = self.waiting.get(entry.batch, 0) + 1
            self.labels[entry.batch] = entry.playbook or entry.origin

    def step(self, device: str, text: str) -> None:
        """Ignore: retries in flight are not outcomes."""

    def finished(self, done: Finished) -> None:
        """A line for a failure; a line for a batch once all its planned entries are through."""
        from cmdctl.cli.views import command_text
        from cmdctl.core.model import State

        entry = done.entry
        if done.outcome in (FAILED, UNKNOWN, EXPIRED):
            prefix = f"{entry.device}: "
            detail = done.detail.removeprefix(prefix)
            self.say(
                f"{prefix}{command_text(entry)}: {done.outcome}: {detail} [{entry.id}]"
            )
        elif done.outcome == UNREACHABLE:
            n, queued, _ = self.away.get(entry.device, (0, 0, ""))
            queued += done.after.state is State.PENDING
            self.away[entry.device] = (n + 1, queued, done.detail.removeprefix(f"{entry.device}: "))
        left = self.waiting.get(entry.batch)
        if left is None:
            return  # settled without being planned (expired, recovered): its own line above
        counts = self.counts.setdefault(entry.batch, {})
        counts[done.outcome] = counts.get(done.outcome, 0) + 1
        if left > 1:
            self.waiting[entry.batch] = left - 1
            return
        del self.waiting[entry.batch]
        del self.counts[entry.batch]
        if not self.quiet:
            total = sum(counts.values())
            parts = ", ".join(f"{counts[name]} {name}" for name in _COLUMNS if counts.get(name))
            self.say(
                f"batch {entry.batch} ({self.labels.pop(entry.batch)}): {total} "
                f"command{'s' if total != 1 else ''}: {parts}"
            )

    def device_done(self, tally: Tally) -> None:
        """One line for a device that could not be reached, however many entries it held."""
        found = self.away.pop(tally.device, None)
        if found is None:
            return
        n, queued, why = found
        what = f"{n} command{'s' if n != 1 else ''}"
        verb = "stays" if queued == 1 else "stay"
        kept = f" ({queued} {verb} queued for retry)" if queued else ""
        self.say(f"{tally.device}: unreachable: {why}: {what}{kept}")


_COLUMNS = (CONFIRMED, DELIVERED, FAILED, UNKNOWN, UNREACHABLE, SKIPPED, EXPIRED)


def recap_table(totals: Totals) -> Table:
    """Per device: confirmed / delivered / failed / unknown / unreachable / skipped / retried."""
    table = Table(title=None, show_edge=False, header_style="bold")
    table.add_column("device")
    for name in _COLUMNS:
        table.add_column(name, justify="right")
    table.add_column("retried", justify="right")
    table.add_column("last error", overflow="fold")
    for tally in sorted_tallies(totals.devices.values()):
        counts = [_cell(tally.get(name), name) for name in _COLUMNS]
        error = "" if tally.ok else (tally.error or "")
        table.add_row(tally.device, *counts, str(tally.retried or ""), error)
    return table


def _cell(count: int, name: str) -> str:
    if not count:
        return "·"
    if name in (FAILED, UNKNOWN, UNREACHABLE):
        return f"[red]{count}[/]"
    if name in (CONFIRMED, DELIVERED):
        return f"[green]{count}[/]"
    return str(count)


def summary_line(verb: str, totals: Totals) -> str:
    """One line for the whole run (what cron mails)."""
    why = "interrupted" if totals.interrupted else "out of time" if totals.timed_out else ""
    parts = []
    for name in _COLUMNS:
        count = totals.count(name)
        if count and name == SKIPPED:
            parts.append(f"{count} skipped (left queued{': ' + why if why else ''})")
        elif count:
            parts.append(f"{count} {name}")
    if totals.retried:
        parts.append(f"{totals.retried} retried")
    if totals.recovered:
        parts.append(f"{totals.recovered} recovered from a dead run")
    devices = len(totals.devices)
    body = ", ".join(parts) if parts else "nothing to do"
    return (
        f"cmdctl {verb}: {totals.entries} commands on {devices} "
        f"device{'s' if devices != 1 else ''} in {totals.seconds:.1f}s: {body}"
    )


def failure_lines(totals: Totals) -> list[str]:
    """One line per device with something failed, unknown, unreachable or expired."""
    out = []
    for tally in totals.failed_devices():
        bad = (FAILED, UNKNOWN, UNREACHABLE, EXPIRED)
        counts = ", ".join(f"{tally.get(name)} {name}" for name in bad if tally.get(name))
        error = tally.error or "failed"
        if not error.startswith(f"{tally.device}:"):
            error = f"{tally.device}: {error}"
        out.append(f"{error} [{counts}]")
    return out
