"""`cmdctl status` and `cmdctl history`: what is queued, running, stuck, done and failed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from cmdctl.cli import options, views
from cmdctl.cli.common import finish, open_fleet
from cmdctl.cli.options import InventoryOpt, JournalOpt, JsonOpt, LimitOpt, QuietOpt
from cmdctl.core.errors import ExitCode

if TYPE_CHECKING:
    from cmdctl.core.model import Entry
    from cmdctl.journal.summary import Status


def status(
    batch: Annotated[
        str | None,
        typer.Argument(help="Only this batch (id or unique prefix).", show_default=False),
    ] = None,
    journal: JournalOpt = None,
    json_out: JsonOpt = False,
    health: Annotated[
        bool,
        typer.Option(
            "--health",
            help="Monitoring check: one line, exit 0 OK / 1 WARNING / 2 CRITICAL (Nagios style).",
        ),
    ] = False,
    max_age: Annotated[
        str, typer.Option("--max-age", help="--health: due work older than this is critical.")
    ] = "15m",
    max_failure_rate: Annotated[
        float,
        typer.Option(
            "--max-failure-rate",
            help="--health: failed/finished in the last hour above this is critical.",
        ),
    ] = 0.2,
    quiet: QuietOpt = False,
) -> None:
    """Counts by state, per-batch progress, oldest pending, next due time, anything stuck.

    Example: cmdctl status --json
    """
    from cmdctl.cli.exec_cmds import seconds

    if health:  # checked before the journal is read: bad flags are bad input, not a verdict
        max_age_s = seconds(max_age, "--max-age")
        max_failure_rate = options.fraction(max_failure_rate, "--max-failure-rate")
    fleet = open_fleet(None, journal)
    if health:
        report, st = fleet.health(batch, max_age=max_age_s, max_failure_rate=max_failure_rate)
        if json_out:
            from cmdctl.cli import render

            render.emit_json(
                {
                    "health": report.health.name,
                    "code": int(report.health),
                    "message": report.line,
                    "failure_rate": report.failure_rate,
                    **_status_json(st),
                }
            )
        else:
            typer.echo(f"CMDCTL {report.line}")
        raise typer.Exit(int(report.health))
    st = fleet.status(batch)
    if json_out:
        from cmdctl.cli import render

        render.emit_json(_status_json(st))
    elif not quiet:
        views.print_status(st, events=st.events, path=str(fleet.journal.path))
    finish(ExitCode.JOURNAL if st.damaged_lines else ExitCode.OK)


def _status_json(st: Status) -> dict[str, Any]:
    from cmdctl.journal import summary

    return summary.status_json(st)


def history(
    device: Annotated[
        str | None, typer.Option("--device", "-d", help="Only this device.", show_default=False)
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="Only entries finished within this long: 1h, 2d.", show_default=False
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--last", "-n", help="At most this many rows.")] = 50,
    archive: Annotated[
        bool,
        typer.Option("--archive", help="Also the archive (entries `journal compact` moved out)."),
    ] = False,
    pattern: LimitOpt = None,
    inventory: InventoryOpt = None,
    journal: JournalOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Finished entries with outcome and timing, newest first.

    --limit takes the inventory's names, groups and globs (the inventory is read only then);
    --archive reads the archive's day files too, newest first, and with --since only those
    of days within it; --quiet prints the rows alone: no header, nothing when there are none.

    Example: cmdctl history --limit bar --since 1h; cmdctl history --archive --since 30d
    """
    options.rows(limit)
    rows = open_fleet(inventory, journal).history(
        device=device, since=since or None, limit=pattern, last=limit, archive=archive
    )
    if json_out:
        from cmdctl.cli import render

        render.emit_json([e.as_json() for e in rows])
        finish(ExitCode.OK)
    _print_history(rows, quiet=quiet)
    finish(ExitCode.OK)


def _print_history(rows: list[Entry], *, quiet: bool = False) -> None:
    from rich.table import Table

    from cmdctl.cli import render
    from cmdctl.core.timespec import format_time

    if not rows:
        if not quiet:
            render.line("no finished entries")
        return
    out = render.stdout()
    table = Table(box=None, pad_edge=False, show_header=not quiet)
    if out.width < views.NARROW:
        # 80 columns: when, device, command and the outcome wrapped; ids are in --json.
        table.add_column("finished", no_wrap=True)
        table.add_column("device", no_wrap=True, overflow="fold", max_width=20)
        table.add_column("command", overflow="fold", ratio=1)
        table.add_column("outcome", overflow="fold", ratio=2)
        for e in rows:
            outcome = views.finished_why(e)
            if e.state.value != "done" and not outcome.startswith(e.state.value):
                outcome = f"{e.state.value}: {outcome or '-'}"
            table.add_row(
                views.short_time(e.finished_at or e.updated),
                _device_text(e),
                views.command_text(e),
                outcome,
            )
        out.print(table)
        return
    for col in ("finished", "device", "command", "state", "outcome", "tries", "took", "id"):
        wrap = col == "command" or col == "outcome"
        table.add_column(col, no_wrap=not wrap, overflow="fold" if wrap else "ellipsis")
    for e in rows:
        took = "-"
        if e.finished_at is not None and e.started is not None:
            took = f"{max(0.0, e.finished_at - e.started):.2f}s"
        table.add_row(
            format_time(e.finished_at or e.updated),
            _device_text(e),
            views.command_text(e),
            e.state.value,
            (e.outcome if e.state.value in ("done", "failed") else None)
            or views.finished_why(e) or "-",
            f"{e.attempts}/{e.max_attempts}",
            took,
            e.id,
        )
    out.print(table)


def _device_text(e: Entry) -> str:
    return e.device if not e.ran_on or e.ran_on == e.device else f"{e.device}→{e.ran_on}"


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("status")(status)
    app.command("history")(history)
