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
from typing import TYPE_CHECKING

from cmdctl.cli.render import safe
from cmdctl.cli.views import plural
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

if TYPE_CHECKING:  # rich is imported where it draws: a cron drain or a `send` never needs it
    from rich.console import Console, Group
    from rich.progress import TaskID
    from rich.table import Table
    from rich.text import Text

#: Characters of a batch id shown on its bar: `cmdctl status ID` takes a prefix, and ids start
#: with their creation time (10 characters, to the millisecond) then randomness.
BATCH_PREFIX = 12

#: Devices shown in the in-flight list at most (the rest are summarised as "+N more").
SHOWN_IN_FLIGHT = 12


class LiveView:
    """Observer that draws progress on a terminal; use as a context manager around the run."""

    def __init__(self, console: Console, *, title: str = "drain") -> None:
        # Only a terminal shows bars: a cron drain does not pay for importing them.
        from rich.live import Live
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

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
        from rich.console import Group
        from rich.table import Table

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
        from rich.markup import escape

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
                    f"  {escape(safe(label))} {batch[:BATCH_PREFIX]}", total=count, note=""
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


#: Column headers of the recap on a terminal narrower than `NARROW` columns.
_SHORT = {CONFIRMED: "conf", DELIVERED: "deliv", FAILED: "fail", UNKNOWN: "unkn",
          UNREACHABLE: "unreach", SKIPPED: "skip", EXPIRED: "exp", "retried": "retry"}
NARROW = 100


def recap_table(totals: Totals, width: int | None = None) -> Table:
    """Per device: its outcomes, retries and last error; made for 80 columns first.

    Only the outcomes that happened get a column, and the error (without the device name the
    first column already shows) takes the rest of the width and wraps, so device and error stay
    readable on a narrow terminal.
    """
    from rich.table import Table

    tallies = sorted_tallies(totals.devices.values())
    shown = [name for name in _COLUMNS if totals.count(name)]
    narrow = width is not None and width < NARROW

    def header(name: str) -> str:
        return _SHORT[name] if narrow else name

    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("device", overflow="fold", max_width=24)
    for name in shown:
        table.add_column(header(name), justify="right", no_wrap=True)
    if totals.retried:
        table.add_column(header("retried"), justify="right", no_wrap=True)
    if not all(t.ok for t in tallies):
        table.add_column("last error", overflow="fold", ratio=1)
    for tally in tallies:
        row: list[str | Text] = [tally.device, *(_cell(tally.get(name), name) for name in shown)]
        if totals.retried:
            row.append(str(tally.retried or ""))
        if not all(t.ok for t in tallies):
            error = "" if tally.ok else (tally.error or "")
            row.append(error.removeprefix(f"{tally.device}: "))
        table.add_row(*row)
    return table


def _cell(count: int, name: str) -> Text:
    from rich.text import Text

    if not count:
        return Text("·")
    if name in (FAILED, UNKNOWN, UNREACHABLE):
        return Text(str(count), style="red")
    if name in (CONFIRMED, DELIVERED):
        return Text(str(count), style="green")
    return Text(str(count))


def summary_line(verb: str, totals: Totals) -> str:
    """One line for the whole run (what cron mails)."""
    why = "interrupted" if totals.interrupted else "out of time" if totals.timed_out else ""
    parts = []
    for name in _COLUMNS:
        count = totals.count(name)
        if name == SKIPPED:
            # Skipped in the recap is "not run"; only `left` and `held` entries are still queued,
            # the rest are finished (a prerequisite failed, or cancelled while this run held them).
            queued = min(count, totals.left + totals.held)
            if queued:
                parts.append(f"{queued:,} left queued{': ' + why if why else ''}")
            if count - queued:
                parts.append(f"{count - queued:,} skipped")
        elif count:
            parts.append(f"{count:,} {name}")
    if totals.superseded:
        parts.append(f"{totals.superseded:,} superseded by a newer command")
    if totals.retried:
        parts.append(f"{totals.retried} retried")
    if totals.recovered:
        parts.append(f"{totals.recovered} recovered from a dead run")
    body = ", ".join(parts) if parts else "nothing to do"
    return (
        f"cmdctl {verb}: {plural(totals.entries, 'command')} on "
        f"{plural(len(totals.devices), 'device')} in {totals.seconds:.1f}s: {body}"
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
