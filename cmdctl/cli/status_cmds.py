"""`cmdctl status` and `cmdctl history`: what is queued, running, stuck, done and failed."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from cmdctl.cli.common import finish, now, open_journal
from cmdctl.cli.options import JournalOpt, JsonOpt, QuietOpt
from cmdctl.core.errors import ExitCode

if TYPE_CHECKING:
    from cmdctl.core.model import Entry
    from cmdctl.journal.ledger import Ledger
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
    from cmdctl.core.timespec import parse_duration
    from cmdctl.journal import summary

    jr = open_journal(journal)
    scan, ledger = jr.load()
    t = now()
    batch_id = _batch_id(ledger, batch) if batch else None
    st = summary.status(
        ledger,
        now=t,
        batch=batch_id,
        damaged_lines=len(scan.damaged),
        problems=[f"line {d.line}: {d.reason}" for d in scan.damaged],
    )
    if health:
        report = summary.health(
            ledger,
            st,
            max_age_s=parse_duration(max_age),
            max_failure_rate=max_failure_rate,
        )
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
    if json_out:
        from cmdctl.cli import render

        render.emit_json(_status_json(st))
    elif not quiet:
        _print_status(st, events=len(scan.lines), path=str(jr.path))
    finish(ExitCode.JOURNAL if st.damaged_lines else ExitCode.OK)


def _batch_id(ledger: Ledger, text: str) -> str:
    from cmdctl.core.errors import InputError

    batches: list[str] = list(ledger.batches())
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


def _status_json(st: Status) -> dict[str, Any]:
    return {
        "now": st.now,
        "total": st.total,
        "counts": {s.value: n for s, n in st.counts.items()},
        "oldest_pending": st.oldest_pending,
        "next_due": st.next_due,
        "overdue_s": st.overdue_s,
        "running": st.running,
        "stuck": [_entry_json(e) for e in st.stuck],
        "needs_person": [_entry_json(e) for e in st.needs_person],
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


def _entry_json(e: Entry) -> dict[str, Any]:
    return {
        "id": e.id,
        "batch": e.batch,
        "device": e.device,
        "selector": e.command.selector,
        "args": dict(e.command.args),
        "state": e.state.value,
        "outcome": e.outcome,
        "priority": e.priority.value,
        "attempts": e.attempts,
        "max_attempts": e.max_attempts,
        "created": e.created,
        "not_before": e.not_before,
        "expires": e.expires,
        "started": e.started,
        "finished": e.finished_at,
        "idempotent": e.idempotent,
        "step": e.step,
        "playbook": e.playbook,
        "origin": e.origin,
        "who": e.who,
        "last_error": e.last_error,
        "reason": e.reason,
        "ran_on": e.ran_on,
    }


def _print_status(st: Status, *, events: int, path: str) -> None:
    from rich.table import Table

    from cmdctl.cli import render
    from cmdctl.core.model import State
    from cmdctl.core.timespec import format_duration

    out = render.stdout()
    if not st.total:
        render.line(f"the journal is empty ({path})")
        return
    parts = [f"{s.value} {st.counts[s]:,}" for s in State if st.counts.get(s)]
    render.line(f"{st.total:,} entries ({events:,} events): " + " · ".join(parts))
    pending = st.counts.get(State.PENDING, 0)
    if pending:
        bits = []
        if st.next_due is not None:
            if st.next_due <= st.now:
                bits.append(f"due now, overdue by {format_duration(st.now - st.next_due)}")
            else:
                bits.append(f"next due in {format_duration(st.next_due - st.now)}")
        if st.oldest_pending is not None:
            bits.append(f"oldest queued {format_duration(st.now - st.oldest_pending)} ago")
        render.line(f"pending: {', '.join(bits)}")
    if st.batches:
        table = Table(title=None, box=None, pad_edge=False)
        for col in (
            "batch",
            "playbook",
            "origin",
            "done/total",
            "pending",
            "running",
            "failed",
            "other",
        ):
            table.add_column(
                col, justify="right" if col not in ("batch", "playbook", "origin") else "left"
            )
        shown = st.batches[-20:]
        for b in shown:
            c = b.counts
            other = b.total - sum(
                c.get(s, 0) for s in (State.DONE, State.PENDING, State.RUNNING, State.FAILED)
            )
            table.add_row(
                b.batch,
                b.playbook or "-",
                b.origin,
                f"{c.get(State.DONE, 0):,}/{b.total:,}",
                f"{c.get(State.PENDING, 0):,}",
                f"{c.get(State.RUNNING, 0):,}",
                f"{c.get(State.FAILED, 0):,}",
                f"{other:,}",
            )
        if len(st.batches) > len(shown):
            render.line(f"(last {len(shown)} of {len(st.batches)} batches)")
        out.print(table)
    if st.stuck:
        render.line(
            f"stuck: {len(st.stuck)} entries started over 15m ago with no outcome "
            "(the drain running them died?); the next `cmdctl drain` recovers them"
        )
    if st.needs_person:
        render.line(
            f"needs a person: {len(st.needs_person)} non-idempotent entries were interrupted "
            "mid-flight and will not be repeated automatically:"
        )
        for e in st.needs_person[:20]:
            render.line(
                f"  {e.id}  {e.device}  {e.command.selector}  ({e.reason or 'interrupted'})"
            )
        render.line("  decide with `cmdctl queue retry ID` or `cmdctl queue cancel ID`")
    if st.damaged_lines:
        render.warn(
            f"{st.damaged_lines} damaged journal lines were skipped; run `cmdctl journal verify`"
        )


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
    journal: JournalOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Finished entries with outcome and timing, newest first.

    Example: cmdctl history --device bar-tv-3 --since 1h
    """
    from cmdctl.core.timespec import parse_duration
    from cmdctl.journal import summary

    jr = open_journal(journal)
    ledger = jr.ledger()
    t = now()
    cutoff = t - parse_duration(since) if since else None
    rows = summary.history(
        ledger.entries(device=device) if device else ledger.entries(),
        device=device,
        since=cutoff,
    )[:limit]
    if json_out:
        from cmdctl.cli import render

        render.emit_json([_entry_json(e) for e in rows])
        finish(ExitCode.OK)
    _print_history(rows)
    finish(ExitCode.OK)


def _print_history(rows: list[Entry]) -> None:
    from rich.table import Table

    from cmdctl.cli import render
    from cmdctl.core.timespec import format_time

    if not rows:
        render.line("no finished entries")
        return
    table = Table(box=None, pad_edge=False)
    for col in ("finished", "device", "command", "state", "outcome", "tries", "took", "id"):
        wrap = col == "command" or col == "outcome"
        table.add_column(col, no_wrap=not wrap, overflow="fold" if wrap else "ellipsis")
    for e in rows:
        took = "-"
        if e.finished_at is not None and e.started is not None:
            took = f"{max(0.0, e.finished_at - e.started):.2f}s"
        table.add_row(
            format_time(e.finished_at or e.updated),
            e.device if not e.ran_on or e.ran_on == e.device else f"{e.device}→{e.ran_on}",
            _command_text(e),
            e.state.value,
            e.outcome or e.last_error or e.reason or "-",
            f"{e.attempts}/{e.max_attempts}",
            took,
            e.id,
        )
    render.stdout().print(table)


def _command_text(e: Entry) -> str:
    import json

    args = dict(e.command.args)
    if e.command.domain == "action":
        data = args.get("data", {})
        inner = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(dict(data).items()))
        return f"action.{e.command.target}({inner})"
    if not args:
        return e.command.selector
    if len(args) == 1:
        (value,) = args.values()
        text = value if isinstance(value, str) else json.dumps(value)
        return f"{e.command.selector}: {text}"
    return f"{e.command.selector}: {json.dumps(args, sort_keys=True)}"


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("status")(status)
    app.command("history")(history)
