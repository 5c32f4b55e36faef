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
ConnectTimeoutOpt = Annotated[
    str,
    typer.Option("--timeout", "-t", help="Connect timeout per device (e.g. 2s, 500ms)."),
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


def rows(value: int, option: str = "--last") -> int:
    """A row limit: 1 or more; InputError naming the option otherwise."""
    from cmdctl.core.errors import InputError

    if value < 1:
        raise InputError(f"{option}: must be 1 or more, got {value}", hint=f"e.g. {option} 20")
    return value


def fraction(value: float, option: str) -> float:
    """A rate between 0 and 1 (0.2 is 20%); InputError naming the option otherwise."""
    import math

    from cmdctl.core.errors import InputError

    if not math.isfinite(value) or not 0 <= value <= 1:
        raise InputError(
            f"{option}: must be a fraction from 0 to 1, got {value}", hint=f"e.g. {option} 0.2"
        )
    return value
