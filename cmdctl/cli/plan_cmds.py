"""`cmdctl validate` and `cmdctl bulk`: check a playbook, expand it, queue it as one batch."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cmdctl.cli.common import finish, load_inventory, now, open_journal, who
from cmdctl.cli.options import InventoryOpt, JournalOpt, JsonOpt, LimitOpt, QuietOpt
from cmdctl.errors import ExitCode

if TYPE_CHECKING:
    from cmdctl.inventory import Inventory
    from cmdctl.model import Entry
    from cmdctl.playbook import Plan

PlaybookArg = Annotated[
    Path, typer.Argument(help="Playbook YAML file.", show_default=False, dir_okay=False)
]
MaxCommandsOpt = Annotated[
    int,
    typer.Option("--max-commands", help="Refuse a playbook that expands to more commands."),
]


def _plan(
    playbook_path: Path,
    inv: Inventory,
    *,
    limit: str | None,
    priority: str | None,
    at: str | None,
    max_commands: int,
) -> Plan:
    from cmdctl import playbook
    from cmdctl.ids import IdFactory
    from cmdctl.model import Priority

    pb = playbook.load_playbook(playbook_path, max_commands=max_commands)
    prio = _priority(priority) if priority is not None else None
    return playbook.expand(
        pb,
        inv,
        now=now(),
        ids=IdFactory().new,
        who=who(),
        limit=limit,
        priority=Priority(prio) if prio else None,
        at=at,
        max_commands=max_commands,
    )


def _priority(text: str) -> str:
    from cmdctl.errors import InputError
    from cmdctl.model import Priority

    try:
        return Priority(text.lower()).value
    except ValueError:
        raise InputError(
            f"unknown priority {text!r}", hint="use one of: high, normal, low"
        ) from None


def _summary(plan: Plan) -> dict[str, object]:
    return {
        "batch": plan.batch,
        "playbook": plan.name,
        "devices": len(plan.devices),
        "steps": len(plan.steps),
        "queued": len(plan.queued),
        "immediate": len(plan.immediate),
    }


def validate(
    playbook_path: PlaybookArg,
    inventory: InventoryOpt = None,
    limit: LimitOpt = None,
    max_commands: MaxCommandsOpt = 100_000,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Check a playbook and the inventory; queue nothing. Exit 0 when valid, 2 when not.

    Example: cmdctl validate playbooks/game-night.yml --inventory playbooks/devices.yml
    """
    from cmdctl import render

    inv = load_inventory(inventory)
    plan = _plan(playbook_path, inv, limit=limit, priority=None, at=None, max_commands=max_commands)
    warnings = list(inv.warnings)
    if json_out:
        render.emit_json({"valid": True, "warnings": warnings, **_summary(plan)})
    else:
        for warning in warnings:
            render.warn(warning)
        if not quiet:
            render.line(
                f"ok: {playbook_path}: {len(plan.steps)} steps × {len(plan.devices)} devices = "
                f"{len(plan.queued) + len(plan.immediate)} commands "
                f"({len(plan.immediate)} immediate, {len(plan.queued)} queued)"
            )
    finish(ExitCode.OK)


def bulk(
    playbook_path: PlaybookArg,
    inventory: InventoryOpt = None,
    journal: JournalOpt = None,
    limit: LimitOpt = None,
    check: Annotated[
        bool, typer.Option("--check", help="Print the plan; write nothing, contact nothing.")
    ] = False,
    priority: Annotated[
        str | None,
        typer.Option(
            "--priority", "-p", help="Override the playbook's priority (high/normal/low)."
        ),
    ] = None,
    at: Annotated[
        str | None,
        typer.Option("--at", help="Override when it is due: '+10m', '2026-11-23T20:00'."),
    ] = None,
    max_commands: MaxCommandsOpt = 100_000,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Expand a playbook over the inventory and queue it as one batch (one durable write).

    Steps marked `mode: immediate` run inline first; the rest go to the journal for `drain`.

    Example: cmdctl bulk playbooks/game-night.yml --limit 'bar:&tvs'
    """
    from cmdctl import render

    inv = load_inventory(inventory)
    plan = _plan(
        playbook_path, inv, limit=limit, priority=priority, at=at, max_commands=max_commands
    )
    if check:
        _print_plan(plan, json_out=json_out)
        finish(ExitCode.OK)

    code = ExitCode.OK
    if plan.immediate:
        code = _run_immediate(plan, inv, journal=journal, quiet=quiet, json_out=json_out)

    jr = open_journal(journal)
    if plan.queued:
        from cmdctl import events

        report = jr.append([events.queued(entry) for entry in plan.queued])
        for repair in getattr(report, "repairs", ()):
            render.warn(str(repair))
    summary = _summary(plan)
    if json_out:
        render.emit_json(summary)
    elif not quiet:
        render.line(
            f"queued batch {plan.batch}: {len(plan.queued)} commands "
            f"({len(plan.devices)} devices × {len(plan.steps) - _immediate_steps(plan)} steps)"
            + (f", {len(plan.immediate)} immediate commands run inline" if plan.immediate else "")
        )
    finish(code)


def _immediate_steps(plan: Plan) -> int:
    return len({entry.step for entry in plan.immediate})


def _run_immediate(
    plan: Plan, inv: Inventory, *, journal: Path | None, quiet: bool, json_out: bool
) -> ExitCode:
    from cmdctl.cli import exec_cmds

    return exec_cmds.run_immediate(plan, inv, journal=journal, quiet=quiet, json_out=json_out)


def _print_plan(plan: Plan, *, json_out: bool) -> None:
    from cmdctl import render

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
    by_step: dict[str, list[str]] = {}
    first: dict[str, Entry] = {}
    for entry in (*plan.immediate, *plan.queued):
        by_step.setdefault(entry.step, []).append(entry.device)
        first.setdefault(entry.step, entry)
    for step, devices in by_step.items():
        e = first[step]
        table.add_row(
            step,
            e.command.selector,
            _value_text(e.command.args),
            "immediate" if e.id in immediate else "queued",
            _devices_text(devices),
        )
    render.stdout().print(table)
    render.line(
        f"{len(plan.queued) + len(plan.immediate)} commands over {len(plan.devices)} devices"
    )


def _value_text(args: object) -> str:
    import json

    return json.dumps(args, separators=(", ", ": "), sort_keys=True)


def _devices_text(devices: list[str]) -> str:
    if len(devices) <= 4:
        return ", ".join(devices)
    return f"{', '.join(devices[:3])}, … ({len(devices)} devices)"


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("validate")(validate)
    app.command("bulk")(bulk)
