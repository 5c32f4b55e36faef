"""`cmdctl queue ls / show / cancel / retry / priority`: see and manage queued entries."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated

import typer

from cmdctl.cli import options, views
from cmdctl.cli.common import finish, now, open_journal, who
from cmdctl.cli.options import JournalOpt, JsonOpt, QuietOpt
from cmdctl.core.errors import ExitCode, InputError

if TYPE_CHECKING:
    from cmdctl.core.model import Entry
    from cmdctl.journal.ledger import Ledger
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


def _state(text: str | None) -> object:
    from cmdctl.core.model import State

    if text is None:
        return None
    try:
        return State(text.lower())
    except ValueError:
        names = ", ".join(s.value for s in State)
        raise InputError(f"unknown state {text!r}", hint=f"one of: {names}") from None


def _batch(ledger: Ledger, text: str | None) -> str | None:
    if text is None:
        return None
    from cmdctl.cli import views

    return views.batch_id(ledger, text)


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
    from cmdctl.core.model import State

    ledger = open_journal(journal).ledger()
    wanted = _state(state)
    # Counted without decoding, and only the rows shown are decoded: a journal may hold a
    # million pending entries, and `queue ls -n 10` must not build a million of them.
    ids = ledger.ids_where(
        device=device,
        batch=_batch(ledger, batch),
        state=wanted if isinstance(wanted, State) else None,
        unfinished=wanted is None,
    )
    total = len(ids)
    rows = [ledger.get(i) for i in ids[:limit]]
    if json_out:
        render.emit_json([e.as_json() for e in rows])
        finish(ExitCode.OK)
    if not rows:
        render.line(
            "no entries" + ("" if wanted else " waiting (use --state done to see finished ones)")
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
            note = (e.reason or e.last_error or "").removeprefix(f"{e.device}: ")
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
            e.reason or e.last_error or "",  # why it waits (held, unknown) before an old error
        )
    out.print(table)


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

    ledger = open_journal(journal).ledger()
    entry = ledger.lookup(entry_id)
    history = [r if isinstance(r, ev.Event) else ev.decode(r) for r in ledger.records(entry.id)]
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


def _select(
    ledger: Ledger,
    entry_id: str | None,
    *,
    device: str | None,
    batch: str | None,
    extra: bool = False,
) -> list[Entry]:
    given = sum(x is not None for x in (entry_id, device, batch)) + int(extra)
    if given != 1:
        raise InputError(
            "say which entries: give one ID, or --batch B, or --device D",
            hint="see `cmdctl queue ls`",
        )
    if entry_id is not None:
        return [ledger.lookup(entry_id)]
    return ledger.entries(device=device, batch=_batch(ledger, batch))


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


def _transact(journal: JournalOpt, decide: Callable[[Ledger], Change]) -> Change:
    """Decide and append under the journal lock, so no writer slips in between."""
    return open_journal(journal).transact(decide)[0]


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
    import contextlib

    from cmdctl.core.errors import BusyError
    from cmdctl.core.model import State
    from cmdctl.drain import recovery
    from cmdctl.journal import queueops

    jr = open_journal(journal)
    with contextlib.ExitStack() as stack:
        try:  # no drain can start (and take an orphaned entry) while we decide
            stack.enter_context(jr.try_drain_lock())
            holding = True
        except BusyError:
            holding = False

        def decide(ledger: Ledger) -> Change:
            chosen = _select(ledger, entry_id, device=device, batch=batch)
            if entry_id is None:
                chosen = [e for e in chosen if not e.finished]
                if not chosen:
                    raise InputError("nothing to cancel: no unfinished entries match")
            orphans: set[str] = set()
            if any(e.state is State.RUNNING for e in chosen):
                orphans = recovery.orphaned(ledger, now(), holding_drain_lock=holding)
            return queueops.cancel(chosen, who=who(), now=now(), orphaned=orphans)

        change = decide(jr.ledger()) if dry_run else jr.transact(decide)[0]
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
    from cmdctl.core.model import State
    from cmdctl.journal import queueops

    def decide(ledger: Ledger) -> Change:
        if failed:
            if entry_id is not None:
                raise InputError("give an ID or --failed, not both")
            chosen = ledger.entries(state=State.FAILED, device=device, batch=_batch(ledger, batch))
            if not chosen:
                raise InputError("nothing to retry: no failed entries match")
        else:
            chosen = _select(ledger, entry_id, device=device, batch=batch)
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
        return queueops.retry(chosen, who=who(), now=t)

    t = now()

    change = _transact(journal, decide)
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
    from cmdctl.journal import queueops

    prio = Priority.parse(level)

    def decide(ledger: Ledger) -> Change:
        return queueops.reprioritise([ledger.lookup(entry_id)], prio, now=now())

    change = _transact(journal, decide)
    _report(change, f"set to {prio.value}", json_out=json_out, quiet=quiet, listed=False)


def register(app: typer.Typer) -> None:
    """Add the `queue` group to the app."""
    app.add_typer(queue_app, name="queue")
