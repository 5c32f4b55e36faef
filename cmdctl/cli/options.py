"""Options shared by several commands, so every command spells them the same way."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

JournalOpt = Annotated[
    Path | None,
    typer.Option(
        "--journal",
        "-J",
        help="Journal directory [default: $CMDCTL_HOME, else ~/.local/state/cmdctl].",
        show_default=False,
    ),
]
InventoryOpt = Annotated[
    Path | None,
    typer.Option(
        "--inventory",
        "-i",
        help="Device inventory [default: $CMDCTL_INVENTORY, else ./devices.yml, else "
        "~/.config/cmdctl/devices.yml].",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON to stdout.")]
QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="Print nothing but errors (and data asked for).")
]
LimitOpt = Annotated[
    str | None,
    typer.Option(
        "--limit",
        "-l",
        help="Only these devices: names, groups, globs; 'a,b' union, 'bar:&tvs' intersection, "
        "'all:!patio' exclusion.",
        show_default=False,
    ),
]
