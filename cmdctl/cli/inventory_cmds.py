"""`cmdctl inventory import`: an ESPHome configuration directory → `devices.yml` + `secrets.yaml`.

Reading and merging live in the inputs wing (`esphome_config`, `inventory_merge`); this module
prints what they found and picks the exit code.
"""

from __future__ import annotations

import os
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cmdctl.cli.common import finish
from cmdctl.core.errors import ExitCode

if TYPE_CHECKING:
    from cmdctl.inputs.esphome_config import Reading
    from cmdctl.inputs.inventory_merge import Merge

inventory_app = typer.Typer(
    name="inventory",
    help="Build the inventory (devices.yml + secrets.yaml) from what you already have.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class GroupBy(StrEnum):
    """Where extra groups come from."""

    folder = "folder"
    area = "area"


@inventory_app.command("import")
def import_(
    paths: Annotated[
        list[Path],
        typer.Argument(help="ESPHome device configurations: YAML files or directories of them."),
    ],
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="Inventory to create or merge into [default: $CMDCTL_INVENTORY, else"
            " ./devices.yml]; its secrets.yaml sits beside it.",
            show_default=False,
        ),
    ] = None,
    group: Annotated[
        list[str] | None,
        typer.Option("--group", "-g", help="Put every imported device in this group (repeat)."),
    ] = None,
    group_by: Annotated[
        list[GroupBy] | None,
        typer.Option(
            "--group-by",
            help="Also group by the configuration's sub-folder or its `esphome: area` (repeat).",
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", "-n", help="Print the changes; write nothing.")
    ] = False,
) -> None:
    """Import devices from ESPHome configurations (the dashboard's config directory).

    Reads each device's name, address (`use_address`, else `manual_ip`, else NAME.local), API
    port and encryption key, resolving `!secret`, `!include`, local packages and substitutions;
    `!lambda` and remote packages are never run or fetched. Merges into the inventory: devices
    are reported as added, changed (and what) or unchanged; what you wrote yourself (comments,
    other devices, timeout, pace, groups) is kept. Keys go to secrets.yaml (mode 0600) under
    the secret name the configuration used. Files that are not device configurations are
    listed and skipped. Exit 0, or 2 if a configuration could not be read (the others are
    still imported).

    Example: cmdctl inventory import ~/esphome --group venue --group-by area --dry-run
    """
    from cmdctl.cli import render
    from cmdctl.core.errors import InputError
    from cmdctl.inputs import esphome_config, inventory_merge
    from cmdctl.inputs.inventory import INVENTORY_ENV, INVENTORY_FILE

    if output is None:
        env = os.environ.get(INVENTORY_ENV)
        output = Path(env) if env else Path(INVENTORY_FILE)
    by = set(group_by or ())
    reading = esphome_config.read_configs(
        paths,
        groups=tuple(group or ()),
        folder_groups=GroupBy.folder in by,
        area_groups=GroupBy.area in by,
        exclude=[output, output.with_name("secrets.yaml")],
    )
    broken = _report_reading(reading)
    if not reading.devices:
        raise InputError(
            f"no device configuration with `api:` found in {', '.join(map(str, paths))}",
            hint="give the ESPHome configuration directory (the one with secrets.yaml)",
        )
    merge = inventory_merge.plan_merge(reading.devices, output)
    _report_changes(merge)
    if dry_run:
        for line in merge.diff():
            render.line(line)
        render.info(f"dry run: nothing written ({_counts(merge)})")
    elif merge.writes:
        inventory_merge.write_merge(merge)
        render.info(f"wrote {merge.inventory} ({_counts(merge)}){_secrets_note(merge)}")
    else:
        render.info(f"{merge.inventory} is up to date ({_counts(merge)})")
    finish(ExitCode.INPUT if broken else ExitCode.OK)


def _report_reading(reading: Reading) -> int:
    """Print skipped files and warnings on stderr; return how many files were broken."""
    from cmdctl.cli import render

    for item in reading.skipped:
        kind = "error" if item.broken else "skipped"
        render.stderr().print(f"{kind}: {item.error.one_line()}", markup=False)
    for device in reading.devices:
        for warning in device.warnings:
            render.warn(warning)
    return sum(item.broken for item in reading.skipped)


def _report_changes(merge: Merge) -> None:
    from cmdctl.cli import render

    width = max(len(change.device) for change in merge.changes)
    for change in merge.changes:
        details = "; ".join(change.details)
        render.line(f"{change.kind:<9}  {change.device:<{width}}  {details}".rstrip())


def _counts(merge: Merge) -> str:
    kinds = [change.kind for change in merge.changes]
    return ", ".join(f"{kinds.count(k)} {k}" for k in ("added", "changed", "unchanged"))


def _secrets_note(merge: Merge) -> str:
    if merge.secrets_after == merge.secrets_before:
        return ""
    added = sum(change.startswith("+") for change in merge.secret_changes)
    changed = len(merge.secret_changes) - added
    counts = ", ".join(f"{n} {what}" for n, what in ((added, "added"), (changed, "changed")) if n)
    return f"; keys in {merge.inventory.with_name('secrets.yaml')}: {counts}"


def register(app: typer.Typer) -> None:
    """Add the `inventory` group to the app."""
    app.add_typer(inventory_app, name="inventory")
