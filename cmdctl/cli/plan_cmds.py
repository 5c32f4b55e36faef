"""`cmdctl validate` and `cmdctl bulk`: check a playbook, expand it, queue it as one batch."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cmdctl.cli import stdout, views
from cmdctl.cli.common import finish, open_fleet
from cmdctl.cli.options import InventoryOpt, JournalOpt, JsonOpt, LimitOpt, QuietOpt
from cmdctl.core.errors import ExitCode

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from cmdctl.core.errors import DeviceError
    from cmdctl.core.model import Entry
    from cmdctl.device import livecheck
    from cmdctl.inputs.inventory import Inventory
    from cmdctl.inputs.playbook import Plan

PlaybookArg = Annotated[
    Path, typer.Argument(help="Playbook YAML file.", show_default=False, dir_okay=False)
]
TagsOpt = Annotated[
    str | None,
    typer.Option(
        "--tags", "-t", help="Only steps with one of these tags: 'power,night'.", show_default=False
    ),
]
SkipTagsOpt = Annotated[
    str | None,
    typer.Option("--skip-tags", help="Leave out steps with any of these tags.", show_default=False),
]
MaxCommandsOpt = Annotated[
    int,
    typer.Option("--max-commands", help="Refuse a playbook that expands to more commands."),
]
VarOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--var",
        help="Set a playbook variable for every device, over any vars: (repeatable): "
        "--var channel=206 (read as YAML: 30 is a number).",
        show_default=False,
    ),
]


def _summary(plan: Plan, *, queued: bool = False) -> dict[str, object]:
    # `batch` is null unless the batch was queued: the id of a plan that was only checked
    # never exists in the journal, and a script must not go looking for it.
    first = plan.first()  # a batch's queued entries share their start and expiry
    return {
        "batch": plan.batch if queued else None,
        "playbook": plan.name,
        "devices": len(plan.devices),
        "steps": len(plan.steps),
        "queued": plan.counts(inline=False)[0],
        "immediate": plan.counts(inline=True)[0],
        # when the queued entries are due and expire (epoch seconds; null: nothing queued)
        "not_before": first.not_before if first is not None else None,
        "expires": first.expires if first is not None else None,
    }


def _spread(plan: Plan, *, inline: bool | None = None) -> str:
    """`views.spread` of the plan's queued (inline False), immediate (True) or all entries,
    counted from its parts: a bulk of 100,000 commands makes no entry to say how many."""
    commands, steps, devices = plan.counts(inline=inline)
    return (
        f"{views.plural(commands, 'command')} "
        f"({views.plural(steps, 'step')} over {views.plural(devices, 'device')})"
    )


def validate(
    playbook_path: PlaybookArg,
    inventory: InventoryOpt = None,
    limit: LimitOpt = None,
    max_commands: MaxCommandsOpt = 100_000,
    var: VarOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Check a playbook and the inventory; queue nothing. Exit 0 when valid, 2 when not.

    With --json, `batch` is null: nothing was queued, so there is no batch to look up.

    Example: cmdctl validate playbooks/game-night.yml --inventory playbooks/devices.yml
    """
    from cmdctl.cli import render

    fleet = open_fleet(inventory, None)
    plan = fleet.plan(playbook_path, limit=limit, max_commands=max_commands, variables=var)
    fleet.check_cached(plan)  # against each device's cached entity list, where there is one
    warnings = list(fleet.inventory.warnings)
    if json_out:
        render.emit_json({"valid": True, "warnings": warnings, **_summary(plan)})
    else:
        for warning in warnings:
            render.warn(warning)
        if not quiet:
            render.line(
                f"ok: {playbook_path}: {_spread(plan)}: {plan.counts(inline=True)[0]:,} "
                f"immediate, {plan.counts(inline=False)[0]:,} queued"
            )
    finish(ExitCode.OK)


def bulk(
    playbook_path: PlaybookArg,
    inventory: InventoryOpt = None,
    journal: JournalOpt = None,
    limit: LimitOpt = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check",
            help="Print the plan, with its waits, delays and conditions; write nothing, "
            "contact nothing (--json: batch null).",
        ),
    ] = False,
    online: Annotated[
        bool,
        typer.Option(
            "--online",
            help="With --check: connect to each device, validate every command (and the "
            "entities of when:/wait_until:) against its entities and show current → target; "
            "sends nothing. Exit 1 invalid, 2 a condition's entity missing, 4 unreachable.",
        ),
    ] = False,
    priority: Annotated[
        str | None,
        typer.Option(
            "--priority", "-p", help="Override the playbook's priority (high/normal/low)."
        ),
    ] = None,
    at: Annotated[
        str | None,
        typer.Option(
            "--at",
            help="Override when it is due: 'now', '+10m', '18:00' (the next one), "
            "'tomorrow 07:30', 'fri 18:00', '2026-11-23T20:00' (local time).",
        ),
    ] = None,
    tags: TagsOpt = None,
    skip_tags: SkipTagsOpt = None,
    max_commands: MaxCommandsOpt = 100_000,
    var: VarOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Expand a playbook over the inventory and queue it as one batch (one durable write).

    Steps marked `mode: immediate` run inline first; the rest go to the journal for `drain`.

    Example: cmdctl bulk playbooks/game-night.yml --limit 'bar:&tvs' --check --online

    Example: cmdctl bulk playbooks/tables.yml --var volume=40
    """
    from cmdctl.cli import render

    if online and not check:
        from cmdctl.core.errors import InputError

        raise InputError("--online only goes with --check", hint="add --check")
    fleet = open_fleet(inventory, journal)
    plan = fleet.plan(
        playbook_path,
        limit=limit,
        priority=priority,
        at=at,
        max_commands=max_commands,
        tags=tags,
        skip_tags=skip_tags,
        variables=var,
    )
    if check and online:
        finish(_check_online(plan, fleet.inventory, json_out=json_out, quiet=quiet))
    fleet.check_cached(plan)  # offline: against each device's cached entity list
    if check:
        _print_plan(plan, json_out=json_out)
        finish(ExitCode.OK)

    # the whole batch goes to the journal first, in one durable append; then immediate steps
    immediate = plan.counts(inline=True)[0]
    if immediate:
        from cmdctl.cli import exec_cmds

        code = exec_cmds.queue_batch(plan, fleet, quiet=quiet, json_out=json_out).exit_code
    else:  # nothing to run: no event loop (asyncio is a noticeable part of a small bulk)
        fleet.journal_plan(plan)
        code = ExitCode.OK
    stdout.effect(
        f"queued batch {plan.batch} ({plan.count} commands); "
        f"do not queue it again (`cmdctl status {plan.batch}`)"
    )
    summary = _summary(plan, queued=True)
    if json_out:
        render.emit_json(summary)
    elif not quiet:
        ran = f", {views.plural(immediate, 'immediate command')} run inline"
        render.line(
            f"queued batch {plan.batch}: {_spread(plan, inline=False)}"
            + (ran if immediate else "")
        )
        first = plan.first()  # a batch's queued entries share their start and expiry
        if first is not None:
            render.line(views.due(first.not_before, first.expires))
    finish(code)


def _print_plan(plan: Plan, *, json_out: bool) -> None:
    from cmdctl.cli import render

    immediate = {e.id for e in plan.immediate}
    if json_out:
        render.emit_json(
            {
                **_summary(plan),
                "commands": [
                    {
                        "device": e.device,
                        "step": e.step,
                        "selector": e.command.selector,
                        "args": dict(e.command.args),
                        "mode": "immediate" if e.id in immediate else "queued",
                        "priority": e.priority.value,
                        "not_before": e.not_before,
                        "expires": e.expires,
                        "idempotent": e.idempotent,
                        **_flow_json(e),
                    }
                    for e in (*plan.immediate, *plan.queued)
                ],
            }
        )
        return
    from rich.table import Table

    table = Table(title=f"plan: {plan.name} (nothing written)", title_justify="left")
    for column in ("step", "selector", "value", "mode", "devices"):
        table.add_column(column)
    # One row per step and value: with variables, a step's devices may get different values
    # (entries with the same values share one Command).
    by_step: dict[tuple[str, int], list[str]] = {}
    first: dict[tuple[str, int], Entry] = {}
    for entry in (*plan.immediate, *plan.queued):
        row = (entry.step, id(entry.command))
        by_step.setdefault(row, []).append(entry.device)
        first.setdefault(row, entry)
    for row, devices in by_step.items():
        e = first[row]
        table.add_row(
            e.step,
            e.command.selector,
            _value_text(e.command.args),
            "immediate" if e.id in immediate else "queued",
            _devices_text(devices),
        )
    render.stdout().print(table)
    for line in _flow_lines(plan.queued):
        render.line(line)
    render.line(views.spread((*plan.immediate, *plan.queued)))


def _flow_json(e: Entry) -> dict[str, object]:
    """The device flow of a planned command (`after`, `scope`, `delay`, `when`, `wait_until`),
    as the journal stores it; nothing for a command without any."""
    from cmdctl.journal.fleetkeys import coordination_fields

    c = e.coordination
    fields = coordination_fields(c)
    out: dict[str, object] = {k: fields[k] for k in ("when", "wait_until") if k in fields}
    if c.after is not None:
        out.update(after=c.after, scope=c.scope, delay=c.gap)
    return out


def _flow_lines(entries: Sequence[Entry]) -> list[str]:
    """`step: after "power on" (this device)`, one line per step and distinct flow (with the
    devices when they differ), under the plan's table."""
    by_step: dict[str, dict[str, list[str]]] = {}
    for e in entries:
        text = "; ".join(t for _, t in views.flow_texts(e.coordination))
        if text:
            by_step.setdefault(e.step, {}).setdefault(text, []).append(e.device)
    lines = []
    for step, texts in by_step.items():
        for text, devices in texts.items():
            where = f" [on {_devices_text(devices)}]" if len(texts) > 1 else ""
            lines.append(f"  {step}: {text}{where}")
    return ["waits and conditions:", *lines] if lines else []


def _check_online(plan: Plan, inv: Inventory, *, json_out: bool, quiet: bool) -> ExitCode:
    """`bulk --check --online`: check every command on its device; print the diff."""
    import asyncio

    from cmdctl.device import livecheck

    entries = (*plan.immediate, *plan.queued)
    report = asyncio.run(livecheck.check_plan(entries, inv.by_name))
    _refuse_conditions(plan, report)
    code = report.exit_code()
    immediate = {e.id for e in plan.immediate}
    if json_out:
        from cmdctl.cli import render

        render.emit_json(_check_json(plan, report, immediate, code))
    else:
        _print_check(plan, report, immediate, code, quiet=quiet)
    return code


def _refuse_conditions(plan: Plan, report: livecheck.CheckReport) -> None:
    """InputError at the first `when:` / `wait_until:` (plan order) a device could never
    satisfy, as the cached check words it: `file:line:column: DEVICE: when: REASON`."""
    from cmdctl.core.errors import InputError

    for step in plan.steps:
        for what, loc in (("when", step.when_loc), ("wait_until", step.wait_until_loc)):
            for d in report.devices:
                for r in d.conditions:
                    if r.step != step.name or r.what != what:
                        continue
                    where = loc or step.loc
                    seen = f"checked against {d.device}'s entity list as it answered now"
                    raise InputError(
                        f"{d.device}: {what}: {r.reason}",
                        file=where.file, line=where.line, column=where.column,
                        hint="; ".join(h for h in (r.hint, seen) if h),
                    )


def _check_json(
    plan: Plan, report: livecheck.CheckReport, immediate: set[str], code: ExitCode
) -> dict[str, object]:
    from cmdctl.device import livecheck

    return {
        **_summary(plan),
        "online": True,
        "exit_code": int(code),
        "totals": {s.replace(" ", "_"): report.count(s) for s in livecheck.STATUSES},
        "devices": [
            {
                "device": d.device,
                "status": d.status,
                "error": _error_json(d.error),
                "commands": [
                    {
                        "step": c.entry.step,
                        "selector": c.entry.command.selector,
                        "resolved": c.selector or None,
                        "args": dict(c.entry.command.args),
                        "mode": "immediate" if c.entry.id in immediate else "queued",
                        "status": c.status,
                        "current": {f.name: f.current for f in c.fields} if c.fields else None,
                        "target": {f.name: f.target for f in c.fields} if c.fields else None,
                        "error": _error_json(c.error),
                    }
                    for c in d.commands
                ],
            }
            for d in report.devices
        ],
    }


def _error_json(error: DeviceError | None) -> dict[str, object] | None:
    if error is None:
        return None
    return {"kind": error.kind, "message": error.reason, "hint": error.hint}


def _print_check(
    plan: Plan,
    report: livecheck.CheckReport,
    immediate: set[str],
    code: ExitCode,
    *,
    quiet: bool,
) -> None:
    from cmdctl.cli import render
    from cmdctl.device import livecheck

    err = render.stderr()
    if not quiet:
        render.line(
            f"check: {plan.name} against {views.plural(len(report.devices), 'device')} "
            "(nothing sent, nothing written)"
        )
    for d in report.devices:
        if d.error is not None:
            render.line(
                f"{d.device}: {d.status}: {d.error.reason} — "
                f"{views.plural(len(d.commands), 'command')} not checked"
            )
            err.print(f"cmdctl: {d.error.one_line()}", markup=False)
            continue
        for c in d.commands:
            if quiet and c.status != livecheck.INVALID:
                continue
            mode = ", immediate" if c.entry.id in immediate else ""
            render.line(f"{d.device}: {_check_text(c)}  [{c.entry.step}{mode}]")
            if c.error is not None:
                err.print(f"cmdctl: {c.error.one_line()}", markup=False)
    counts = [f"{report.count(s)} {s}" for s in livecheck.STATUSES if report.count(s)]
    down = sum(1 for d in report.devices if d.error is not None)
    tail = f"; {down} of {views.plural(len(report.devices), 'device')} not checked" if down else ""
    if not quiet or code:
        err.print(f"check: {', '.join(counts) or 'nothing to check'}{tail}", markup=False)


def _check_text(c: livecheck.CommandCheck) -> str:
    """`switch.tv_power: off → on`, `select.input: HDMI 1 (unchanged)`, …"""
    from cmdctl.device import livecheck

    selector = c.selector or c.entry.command.selector
    if c.status == livecheck.INVALID:
        return f"{selector}: invalid: {c.error.reason if c.error else ''}"
    if c.status == livecheck.SEND:
        args = c.entry.command.args
        what = f" {_value_text(args)}" if args else ""
        return f"{selector}: will send{what} (no state to compare)"
    single = len(c.fields) == 1
    if c.status == livecheck.UNCHANGED:
        text = ", ".join(
            views.value_text(f.target, f.name)
            if single
            else f"{f.name} {views.value_text(f.target, f.name)}"
            for f in c.fields
        )
        return f"{selector}: {text} (unchanged)"
    parts = []
    for f in c.fields:
        target = views.value_text(f.target, f.name)
        current = "unknown" if f.current is None else views.value_text(f.current, f.name)
        step = f"{current} → {target}" if f.changes else f"{target} (unchanged)"
        parts.append(step if single else f"{f.name} {step}")
    return f"{selector}: {', '.join(parts)}"


def _value_text(args: Mapping[str, object]) -> str:
    """Arguments as the playbook writes them: `on`, `HDMI 1`, `{state: on, brightness: 0.4}`."""
    if len(args) == 1:
        ((key, value),) = args.items()
        return views.value_text(value, key)
    return views.value_text(args)


def _devices_text(devices: list[str]) -> str:
    if len(devices) <= 4:
        return ", ".join(devices)
    return f"{', '.join(devices[:3])}, … ({len(devices)} devices)"


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("validate")(validate)
    app.command("bulk")(bulk)
