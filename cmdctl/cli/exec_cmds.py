"""`cmdctl send`, `cmdctl drain` and `cmdctl run`: the commands that talk to devices.

aioesphomeapi (through the engine and the transport), asyncio and rich are imported inside the
commands only, so that `--help` and the commands that never talk to devices do not pay for them.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path  # at run time: typer reads the option annotations
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from cmdctl.cli import stdout, views
from cmdctl.cli.common import finish, open_fleet
from cmdctl.cli.options import InventoryOpt, JournalOpt, JsonOpt, LimitOpt, QuietOpt
from cmdctl.core.errors import BusyError, ExitCode, InputError

if TYPE_CHECKING:
    from cmdctl.api.fleet import Batch, Fleet
    from cmdctl.core.model import Entry
    from cmdctl.drain.metrics import Monitor
    from cmdctl.drain.notify import NotifyWatch
    from cmdctl.drain.observer import Observer
    from cmdctl.drain.options import DrainOptions
    from cmdctl.drain.totals import Totals
    from cmdctl.inputs.playbook import Plan
    from cmdctl.journal.store import Journal

T = TypeVar("T")

MaxTimeOpt = Annotated[
    str | None,
    typer.Option(
        "--max-time",
        help="Stop taking new work after this long (e.g. 50s, 10m); in-flight work finishes.",
        show_default=False,
    ),
]
ConcurrencyOpt = Annotated[
    int, typer.Option("--concurrency", "-c", min=1, max=1024, help="Devices worked on at once.")
]
MetricsFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--metrics-file",
        help="Write Prometheus textfile-collector metrics here (atomically) when done.",
        show_default=False,
        dir_okay=False,
    ),
]
LogFileOpt = Annotated[
    Path | None,
    typer.Option(
        "--log-file",
        help="Append one JSON line per outcome to this file (mode 0600).",
        show_default=False,
        dir_okay=False,
    ),
]
NotifyOpt = Annotated[
    str | None,
    typer.Option(
        "--notify",
        help="Run this shell command (/bin/sh -c) when a batch is through and when a command "
        "fails, with the event as JSON on stdin and CMDCTL_* variables (README: Notifications).",
        show_default=False,
    ),
]
NotifyTimeoutOpt = Annotated[
    str,
    typer.Option("--notify-timeout", help="Kill a --notify command running longer than this."),
]
BatchOpt = Annotated[
    str | None,
    typer.Option("--batch", "-b", help="Only entries of this batch id.", show_default=False),
]


WindowOpt = Annotated[
    str | None,
    typer.Option(
        "--window",
        help="At most N (or N%) devices of a batch in progress at once (rolling).",
        show_default=False,
    ),
]
MaxFailOpt = Annotated[
    str | None,
    typer.Option(
        "--max-fail",
        help="Stop taking new devices of a batch once N (or N%) of them have failed.",
        show_default=False,
    ),
]
FailFastOpt = Annotated[
    bool,
    typer.Option("--fail-fast", help="Stop taking new devices of a batch at its first failure."),
]
TagsOpt = Annotated[
    str | None,
    typer.Option(
        "--tags",
        "-t",
        help="Only entries with one of these tags: 'power,night'.",
        show_default=False,
    ),
]
SkipTagsOpt = Annotated[
    str | None,
    typer.Option(
        "--skip-tags", help="Leave entries with any of these tags queued.", show_default=False
    ),
]


# -- shared helpers ----------------------------------------------------------------------------


def seconds(text: str, option: str) -> float:
    """`90`, `90s`, `1m30s`, `200ms` → seconds (more than zero); InputError naming the option."""
    from cmdctl.core.timespec import parse_duration

    try:
        value = parse_duration(text)
    except InputError as err:
        raise InputError(f"{option}: {err.message}", hint=err.hint) from None
    if value <= 0:
        raise InputError(f"{option}: must be more than zero, got {text!r}")
    return value


def limit_value(text: str | None, option: str) -> int | str | None:
    """`5` or `20%` for --window / --max-fail (None when not given); InputError when malformed."""
    if text is None:
        return None
    from cmdctl.drain import rollout

    return rollout.parse(text, option)


def tag_set(text: str | None) -> frozenset[str] | None:
    """`power,night` → a set of tags (None when the option was not given)."""
    if text is None:
        return None
    from cmdctl.inputs.playbook import parse_tags

    return parse_tags(text)


def drain_options(
    concurrency: int,
    only: frozenset[str] | None,
    batch: str | None,
    window: str | None,
    max_fail: str | None,
    fail_fast: bool,
    tags: str | None,
    skip_tags: str | None,
    *,
    max_time: float | None,
) -> DrainOptions:
    """The engine's options from the flags `drain` and `run` share; InputError when malformed."""
    from cmdctl.drain.options import DrainOptions

    return DrainOptions(
        max_time=max_time,
        concurrency=concurrency,
        only=only,
        batch=batch,
        window=limit_value(window, "--window"),
        max_fail=limit_value(max_fail, "--max-fail"),
        fail_fast=fail_fast,
        tags=tag_set(tags),
        skip_tags=tag_set(skip_tags),
    )


def run_async(main: Coroutine[Any, Any, T], on_signal: Callable[[str], None] | None = None) -> T:
    """Run `main`, turning SIGINT/SIGTERM into `on_signal` calls (None: cancel `main`)."""
    import asyncio
    import signal

    async def wrapper() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def cancel(name: str) -> None:
            task.cancel(f"stopped by {name}")

        handler = on_signal or cancel
        # remove_signal_handler resets to the default, not to what was there: hand that back.
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
        for sig in previous:
            loop.add_signal_handler(sig, handler, signal.Signals(sig).name)
        try:
            return await main
        finally:
            for sig, before in previous.items():
                loop.remove_signal_handler(sig)
                signal.signal(sig, before)

    return asyncio.run(wrapper())


def report(verb: str, totals: Totals, *, json_out: bool, quiet: bool, tty: bool) -> None:
    """The end of a run: JSON on stdout if asked; recap / summary / failures on stderr."""
    from cmdctl.cli import progress, render

    stdout.effect(progress.summary_line(verb, totals))
    if json_out:
        render.emit_json(totals.as_dict())
    if totals.idle and not tty:
        return  # cron: nothing to do means no output at all
    if not quiet:
        if tty and totals.devices:
            err = render.stderr()
            err.print(progress.recap_table(totals, err.width))
        render.info(progress.summary_line(verb, totals))
    for line in progress.failure_lines(totals):
        render.info(line)


def _monitor(
    jr: Journal, metrics_file: Path | None, log_file: Path | None, *, each_pass: bool
) -> Monitor:
    """The `--metrics-file` / `--log-file` handler (input errors before any work starts)."""
    from cmdctl.cli import render
    from cmdctl.drain import metrics

    return metrics.Monitor(
        jr,
        metrics_file=metrics_file,
        log_file=log_file,
        warn=render.warn,
        each_pass=each_pass,
    )


def _notifier(
    command: str | None, timeout: str, inner: Observer, *, per_pass: bool, fleet: Fleet,
) -> tuple[Observer, NotifyWatch | None]:
    """(observer, the --notify watch or None); input errors before any work starts."""
    budget = seconds(timeout, "--notify-timeout")
    if command is None:
        return inner, None
    watch = fleet.notifier(command, timeout=budget, inner=inner, per_pass=per_pass)
    return watch, watch


def _observer(
    quiet: bool, json_out: bool, title: str, *, lines: bool = False
) -> tuple[Observer, Any]:
    """(observer, context manager around the run) for this terminal; `lines`: off a terminal,
    say each batch and failure as it happens (for `run` under systemd)."""
    import contextlib

    from cmdctl.cli import progress, render

    terminal = render.stderr_is_terminal()
    if terminal and not quiet and not json_out:
        view = progress.LiveView(render.stderr(), title=title)
        return view, view
    if lines and not terminal:
        return progress.Lines(render.info, quiet=quiet), contextlib.nullcontext()
    return progress.Silent(), contextlib.nullcontext()


# -- drain -------------------------------------------------------------------------------------


def drain(
    max_time: MaxTimeOpt = None,
    concurrency: ConcurrencyOpt = 64,
    limit: LimitOpt = None,
    batch: BatchOpt = None,
    journal: JournalOpt = None,
    inventory: InventoryOpt = None,
    window: WindowOpt = None,
    max_fail: MaxFailOpt = None,
    fail_fast: FailFastOpt = False,
    tags: TagsOpt = None,
    skip_tags: SkipTagsOpt = None,
    metrics_file: MetricsFileOpt = None,
    log_file: LogFileOpt = None,
    notify_cmd: NotifyOpt = None,
    notify_timeout: NotifyTimeoutOpt = "10s",
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Run every due command once, devices in parallel, then exit (for cron and timers).

    A second drain started while one runs exits at once, quietly, with code 6 (busy).
    Exit codes: 0 all done, 1 something failed for good or expired unrun, 4 a device was
    unreachable (its work stays queued), 3 journal problem, 6 busy, 130 interrupted.

    Example: cmdctl drain --max-time 50s --metrics-file /var/lib/node_exporter/cmdctl.prom
    """
    from cmdctl.cli import render
    from cmdctl.drain import engine as eng
    from cmdctl.drain import loops

    budget = seconds(max_time, "--max-time") if max_time is not None else None
    fleet = open_fleet(inventory, journal)
    jr = fleet.journal
    devices, only = fleet.lookup(limit)
    options = drain_options(
        concurrency, only, batch, window, max_fail, fail_fast, tags, skip_tags, max_time=budget
    )
    observer, view = _observer(quiet, json_out, "drain")
    monitor = _monitor(jr, metrics_file, log_file, each_pass=False)
    observer, notifier = _notifier(notify_cmd, notify_timeout, observer, per_pass=False,
                                   fleet=fleet)
    engine = eng.Engine(
        jr, devices, options, observer=monitor.watch(observer), secrets=fleet.secrets
    )
    if notifier is not None:
        notifier.run_id = engine.run_id

    def on_signal(name: str) -> None:
        engine.request_stop(f"stopped by {name}")

    try:
        with view, monitor:
            totals = run_async(loops.drain_with(engine), on_signal)
    except BusyError:
        if json_out:
            render.emit_json({"exit_code": int(ExitCode.BUSY), "busy": True})
        finish(ExitCode.BUSY)  # quietly: cron overlap is normal
    finally:
        if notifier is not None:
            notifier.close()  # the hooks already queued run before the recap
    monitor.finish(totals)
    report("drain", totals, json_out=json_out, quiet=quiet, tty=render.stderr_is_terminal())
    finish(totals.exit_code())


# -- run ---------------------------------------------------------------------------------------


def run(
    concurrency: ConcurrencyOpt = 64,
    limit: LimitOpt = None,
    batch: BatchOpt = None,
    journal: JournalOpt = None,
    inventory: InventoryOpt = None,
    window: WindowOpt = None,
    max_fail: MaxFailOpt = None,
    fail_fast: FailFastOpt = False,
    tags: TagsOpt = None,
    skip_tags: SkipTagsOpt = None,
    metrics_file: MetricsFileOpt = None,
    log_file: LogFileOpt = None,
    notify_cmd: NotifyOpt = None,
    notify_timeout: NotifyTimeoutOpt = "10s",
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Drain in the foreground: run commands as they are queued and as they fall due.

    Holds the drain lock until Ctrl-C (or SIGTERM), so cron drains exit busy meanwhile.
    Off a terminal (systemd, journald) it prints one plain line per batch it worked through
    and per failure as they happen (failures only with --quiet).

    Example: cmdctl run --limit bar
    """
    from cmdctl.cli import render
    from cmdctl.drain import engine as eng
    from cmdctl.drain import loops

    fleet = open_fleet(inventory, journal)
    jr = fleet.journal
    devices, only = fleet.lookup(limit)
    options = drain_options(
        concurrency, only, batch, window, max_fail, fail_fast, tags, skip_tags, max_time=None
    )
    observer, view = _observer(quiet, json_out, "run", lines=True)
    monitor = _monitor(jr, metrics_file, log_file, each_pass=True)  # metrics after every pass
    observer, notifier = _notifier(notify_cmd, notify_timeout, observer, per_pass=True,
                                   fleet=fleet)
    engine = eng.Engine(
        jr, devices, options, observer=monitor.watch(observer), secrets=fleet.secrets
    )
    if notifier is not None:
        notifier.run_id = engine.run_id
    tty = render.stderr_is_terminal()
    if tty and not quiet and not json_out:
        render.info("cmdctl run: waiting for work; Ctrl-C to stop")

    def on_signal(name: str) -> None:
        engine.request_stop(f"stopped by {name}")

    try:
        with view, monitor:
            totals = run_async(loops.serve(engine), on_signal)
    except BusyError as err:
        render.info(f"cmdctl: {err.one_line()}")
        finish(ExitCode.BUSY)
    finally:
        if notifier is not None:
            notifier.close()
    totals.interrupted = False  # Ctrl-C is how `run` ends, not a failure
    monitor.finish(totals)
    report("run", totals, json_out=json_out, quiet=quiet, tty=tty)
    finish(totals.exit_code())


# -- send --------------------------------------------------------------------------------------


def send(
    device: Annotated[str, typer.Argument(help="Device name from the inventory.")],
    entity: Annotated[
        str, typer.Argument(help="domain.object_id, e.g. switch.tv_power or action.send_cmd.")
    ],
    value: Annotated[
        str | None,
        typer.Argument(
            help="Value: on/off, an option, a number, YAML for mappings, !secret NAME.",
            show_default=False,
        ),
    ] = None,
    now_: Annotated[
        bool, typer.Option("--now", help="Direct only: never queue; fail if unreachable.")
    ] = False,
    queue_: Annotated[
        bool, typer.Option("--queue", help="Only queue it; the next drain runs it.")
    ] = False,
    timeout: Annotated[
        str, typer.Option("--timeout", help="How long to try directly before queueing.")
    ] = "5s",
    verify: Annotated[
        bool, typer.Option("--verify/--no-verify", help="Wait for the state to show the value.")
    ] = True,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            help="Due later: only queue it, for then: '+10m', '18:00' (the next one), "
            "'tomorrow 07:30', 'fri 18:00', ISO 8601 (local time).",
            show_default=False,
        ),
    ] = None,
    expires: Annotated[
        str | None,
        typer.Option(
            "--expires",
            help="Drop it as expired if not run by then ('+2h': from the start).",
            show_default=False,
        ),
    ] = None,
    attempts: Annotated[
        int | None,
        typer.Option(
            "--attempts", help="Tries in all, the direct one included [default: 5].",
            show_default=False,
        ),
    ] = None,
    journal: JournalOpt = None,
    inventory: InventoryOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Send one command to one device now; queue it if the device is away.

    With --at still ahead it is only queued, due then (the device is not contacted now);
    --expires and --attempts work as in a playbook.

    Exit codes: 0 done (or queued with --queue or --at), 1 failed (rejected, mismatch), 2 bad
    input, 4 unreachable with --now (or with no attempt left), 5 unreachable and queued for the
    next drain.

    VALUE is read as YAML, so a secret from secrets.yaml goes by name, never by value:
    cmdctl send door lock.front '{command: unlock, code: !secret front_door_pin}'

    Example: cmdctl send bar-tv-3 select.input "HDMI 1"

    Example: cmdctl send bar-tv-3 switch.tv_power off --at 'tomorrow 07:30' --expires +1h
    """
    import asyncio

    from cmdctl.cli import render

    if now_ and queue_:
        raise InputError("--now and --queue contradict each other", hint="give one of them")
    budget = seconds(timeout, "--timeout")
    from cmdctl.drain import direct

    fleet = open_fleet(inventory, journal)
    mode = direct.Mode.NOW if now_ else direct.Mode.QUEUE if queue_ else direct.Mode.AUTO
    entry = fleet.command(
        device,
        entity,
        value,
        verify=verify,
        check_cache=mode is direct.Mode.QUEUE,
        at=at,
        expires=expires,
        attempts=attempts,
    )
    try:
        # Ctrl-C or SIGTERM cancels the send, which records where it stopped first.
        result = run_async(fleet.deliver(entry, mode=mode, timeout=budget))
    except asyncio.CancelledError:
        what = "left queued" if entry.idempotent else "marked unknown (it may have run)"
        render.info(f"cmdctl: interrupted; {entry.id} {what}")
        finish(ExitCode.INTERRUPTED)
    _send_report(result, json_out=json_out, quiet=quiet)
    finish(result.exit_code)


def _send_report(result: Any, *, json_out: bool, quiet: bool) -> None:
    from cmdctl.cli import render

    entry: Entry = result.entry
    stdout.effect(f"{entry.device}: {entry.command.selector} {result.status} ({entry.id})")
    if json_out:
        render.emit_json(result.as_dict())
    where = f"{entry.device}: {entry.command.selector}"
    status = result.status
    if status in ("confirmed", "delivered"):
        if not quiet and not json_out:
            render.line(f"{where} {status} in {result.seconds:.2f}s")
        return
    if status == "queued" and result.error is None:
        if not quiet and not json_out:
            said = f"queued as {entry.id}"
            if entry.not_before > entry.created or entry.expires is not None:
                said += ", " + views.due(entry.not_before, entry.expires)
            render.line(said)
        return
    if status == "queued":
        render.info(
            f"cmdctl: {entry.device} unreachable ({result.error.reason}) — queued as {entry.id}; "
            "the next drain will retry it"
        )
        return
    if status == "unknown":
        render.info(f"cmdctl: {where}: {result.detail}")
        return
    if status == "mismatch":
        render.info(f"cmdctl: {where}: state did not follow ({result.detail})")
        return
    text = result.error.one_line() if result.error is not None else status
    render.info(f"cmdctl: {text}")


# -- immediate playbook steps ------------------------------------------------------------------


def queue_batch(
    plan: Plan, fleet: Fleet, *, concurrency: int = 64, json_out: bool = False, quiet: bool = False
) -> Batch:
    """For `bulk`: journal the whole batch in one durable append, then run `plan.immediate`
    inline, showing their progress and recap."""
    import asyncio

    from cmdctl.cli import render

    if not plan.immediate:
        return asyncio.run(fleet.queue(plan, concurrency=concurrency))
    observer, view = _observer(quiet, json_out, "immediate steps")
    with view:
        batch = asyncio.run(fleet.queue(plan, concurrency=concurrency, observer=observer))
    if not json_out and batch.totals is not None:
        report(
            "immediate steps",
            batch.totals,
            json_out=False,
            quiet=quiet,
            tty=render.stderr_is_terminal(),
        )
    return batch


def register(app: typer.Typer) -> None:
    """Add `send`, `drain` and `run` to the app."""
    app.command("send")(send)
    app.command("drain")(drain)
    app.command("run")(run)


__all__ = ["queue_batch", "register", "seconds"]
