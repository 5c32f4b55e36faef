"""`cmdctl queue ls / show / cancel / retry / priority`: see and manage queued entries."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from cmdctl.cli import options, views
from cmdctl.cli.common import finish, open_fleet
from cmdctl.cli.options import JournalOpt, JsonOpt, QuietOpt
from cmdctl.core.errors import ExitCode

if TYPE_CHECKING:
    from cmdctl.core.model import Entry
    from cmdctl.journal.queueops import Change

queue_app = typer.Typer(
    name="queue",
    help="See and manage queued entries.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

DeviceOpt = Annotated[
    str | None, typer.Option("--device", "-d", help="Only this device.", show_default=False)
]
BatchOpt = Annotated[
    str | None,
    typer.Option(
        "--batch", "-b", help="Only this batch (id or unique prefix).", show_default=False
    ),
]
IdArg = Annotated[str | None, typer.Argument(help="Entry id or unique prefix.", show_default=False)]


@queue_app.command("ls")
def ls(
    device: DeviceOpt = None,
    batch: BatchOpt = None,
    state: Annotated[
        str | None,
        typer.Option(
            "--state",
            "-s",
            help="Only this state (pending, running, done, failed, cancelled, expired, "
            "superseded, skipped, unknown) [default: everything not finished].",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--last", "-n", help="At most this many rows.")] = 200,
    journal: JournalOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List entries, in the order they were queued (the journal's order).

    Example: cmdctl queue ls --device bar-tv-3 --state failed
    """
    from cmdctl.cli import render

    options.rows(limit)
    page = open_fleet(None, journal).entries(device=device, batch=batch, state=state, last=limit)
    rows, total = list(page.rows), page.total
    if json_out:
        render.emit_json([e.as_json() for e in rows])
        finish(ExitCode.OK)
    if not rows:
        render.line(
            "no entries" + ("" if state else " waiting (use --state done to see finished ones)")
        )
        finish(ExitCode.OK)
    _table(rows)
    if total > len(rows):
        render.line(f"({len(rows)} of {total} shown; --last N for more)")
    finish(ExitCode.OK)


def _table(rows: list[Entry]) -> None:
    from rich.table import Table

    from cmdctl.cli import render, views
    from cmdctl.core.timespec import format_time

    out = render.stdout()
    table = Table(box=None, pad_edge=False)
    if out.width < views.NARROW:
        # 80 columns: the id (to act on), device, command, and state with its note wrapped.
        table.add_column("id", no_wrap=True)
        table.add_column("device", no_wrap=True, overflow="fold", max_width=20)
        table.add_column("command", overflow="fold", ratio=1)
        table.add_column("state: note", overflow="fold", ratio=2)
        for e in rows:
            note = (e.reason or e.last_error or _waits(e)).removeprefix(f"{e.device}: ")
            state = f"{e.state.value}: {note}" if note else e.state.value
            table.add_row(e.id, e.device, views.command_text(e), state)
        out.print(table)
        return
    for col in ("id", "device", "command", "state", "prio", "due", "tries", "note"):
        wrap = col in ("command", "note")
        table.add_column(col, no_wrap=not wrap, overflow="fold" if wrap else "ellipsis")
    for e in rows:
        table.add_row(
            e.id,
            e.device,
            views.command_text(e),
            e.state.value,
            e.priority.value,
            format_time(e.not_before),
            f"{e.attempts}/{e.max_attempts}",
            # why it waits (held, unknown) before an old error, then what it waits for
            e.reason or e.last_error or _waits(e),
        )
    out.print(table)


def _waits(e: Entry) -> str:
    """The barrier a pending entry waits behind (`after "power on" (whole batch)`), or ""."""
    from cmdctl.core.model import State

    return views.barrier_text(e.coordination) if e.state is State.PENDING else ""


@queue_app.command("show")
def show(
    entry_id: Annotated[str, typer.Argument(help="Entry id or unique prefix.")],
    journal: JournalOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show one entry and its event history.

    Example: cmdctl queue show 01JDA3
    """
    from cmdctl.cli import render
    from cmdctl.core.timespec import format_time
    from cmdctl.journal import events as ev

    entry, history = open_fleet(None, journal).entry_events(entry_id)
    if json_out:
        render.emit_json(
            {
                **entry.as_json(),
                "events": [{"type": e.type, "ts": e.ts, **dict(e.fields)} for e in history],
            }
        )
        finish(ExitCode.OK)
    data = entry.as_json()
    for key in (
        "id",
        "batch",
        "device",
        "selector",
        "args",
        "state",
        "outcome",
        "priority",
        "attempts",
        "max_attempts",
        "idempotent",
        "step",
        "playbook",
        "origin",
        "who",
        "last_error",
        "reason",
        "ran_on",
    ):
        value = data[key]
        if value is not None and value != "":
            render.line(f"{key:>13}: {views.value_text(value, key)}")
    for key, text in views.flow_texts(entry.coordination):
        render.line(f"{key:>13}: {text}")
    for key in ("created", "not_before", "expires", "started", "finished"):
        value = data[key]
        if value is not None:
            render.line(f"{key:>13}: {format_time(value)}")
    render.line("       events:")
    for e in history:
        detail = ", ".join(
            f"{k}={v}" for k, v in e.fields.items() if e.type != ev.QUEUED and k not in ("run",)
        )
        render.line(f"  {format_time(e.ts)}  {e.type}{'  ' + detail if detail else ''}")
    finish(ExitCode.OK)


#: Entries named one per line after a change at most (the count and a way to see the rest follow).
SHOWN_CHANGED = 20


def _report(
    change: Change, verb: str, *, json_out: bool, quiet: bool, listed: bool = True,
    dry_run: bool = False,
) -> None:
    """What changed (each entry, up to SHOWN_CHANGED), what was left alone and why; the exit."""
    from cmdctl.cli import render, views

    if json_out:
        render.emit_json(
            {
                verb.replace(" ", "_"): [e.id for e in change.changed],
                "refused": [{"id": e.id, "reason": why} for e, why in change.refused],
            }
            | ({"dry_run": True} if dry_run else {})
        )
    else:
        if not quiet:
            n = len(change.changed)
            note = " (dry run: nothing changed)" if dry_run else ""
            colon = ":" if listed and n else ""
            render.line(f"{verb} {n} entr{'y' if n == 1 else 'ies'}{note}{colon}")
            if listed:
                for e in change.changed[:SHOWN_CHANGED]:
                    render.line(f"  {e.id}  {e.device}  {views.command_text(e)}")
                if n > SHOWN_CHANGED:
                    render.line(f"  … and {n - SHOWN_CHANGED} more (`cmdctl queue ls` shows them)")
        for e, why in change.refused[:20]:
            render.warn(f"{e.id} ({e.device} {e.command.selector}) left alone: {why}")
        if len(change.refused) > 20:
            render.warn(f"… and {len(change.refused) - 20} more left alone")
    if not change.changed and change.refused:
        finish(ExitCode.FAILED)
    finish(ExitCode.OK)


@queue_app.command("cancel")
def cancel(
    entry_id: IdArg = None,
    batch: BatchOpt = None,
    device: DeviceOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would be cancelled; change nothing.")
    ] = False,
    journal: JournalOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Cancel pending entries: one ID, a whole --batch, or everything for a --device.

    Prints each entry cancelled (id, device, command) and the count. An entry shown as running
    is cancelled too when the process running it is gone (no drain holds the drain lock, or the
    `send` that started it has exited).

    Example: cmdctl queue cancel --device patio-tv-2 --dry-run
    """
    fleet = open_fleet(None, journal)
    change = fleet.cancel(entry_id, batch=batch, device=device, dry_run=dry_run)
    verb = "would cancel" if dry_run else "cancelled"
    _report(change, verb, json_out=json_out, quiet=quiet, dry_run=dry_run)


@queue_app.command("retry")
def retry(
    entry_id: IdArg = None,
    failed: Annotated[
        bool, typer.Option("--failed", help="Every failed entry (add --batch/--device to narrow).")
    ] = False,
    batch: BatchOpt = None,
    device: DeviceOpt = None,
    journal: JournalOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Run failed, unknown, expired or cancelled entries again, and backed-off ones, now.

    This is how a person re-runs an `idempotent: false` entry left `unknown` by a crash, and
    how entries waiting out a retry backoff (a device that was away is back) become due now
    for the next drain; they keep their attempts count.

    Example: cmdctl queue retry --failed --batch 01JDA3
    """
    change = open_fleet(None, journal).retry(entry_id, failed=failed, batch=batch, device=device)
    _report(change, "requeued", json_out=json_out, quiet=quiet)


@queue_app.command("priority")
def priority(
    entry_id: Annotated[str, typer.Argument(help="Entry id or unique prefix.")],
    level: Annotated[str, typer.Argument(help="high, normal or low.")],
    journal: JournalOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Change an unfinished entry's priority.

    Example: cmdctl queue priority 01JDA3 high
    """
    from cmdctl.core.model import Priority

    prio = Priority.parse(level)
    change = open_fleet(None, journal).priority(entry_id, prio)
    _report(change, f"set to {prio.value}", json_out=json_out, quiet=quiet, listed=False)


def register(app: typer.Typer) -> None:
    """Add the `queue` group to the app."""
    app.add_typer(queue_app, name="queue")
