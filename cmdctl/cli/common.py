"""Glue shared by the command modules: locating the journal and inventory, who is asking."""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer

from cmdctl.core.errors import ExitCode

if TYPE_CHECKING:
    from cmdctl.api.fleet import Fleet
    from cmdctl.inputs.inventory import Inventory
    from cmdctl.journal.store import Journal


def who() -> str:
    """`user@host`, recorded with every event a person causes."""
    from cmdctl.api.places import who as asking

    return asking()


def now() -> float:
    """Wall-clock time in epoch seconds (journal times are wall-clock)."""
    return time.time()


def open_journal(explicit: Path | None) -> Journal:
    """The journal at `--journal`, `$CMDCTL_HOME` or the XDG state dir."""
    from cmdctl.cli.paths import journal_dir
    from cmdctl.journal.store import Journal

    return Journal(journal_dir(explicit))


def load_inventory(explicit: Path | None) -> Inventory:
    """The inventory at `--inventory`, `$CMDCTL_INVENTORY`, `./devices.yml` or the user's
    config directory (`~/.config/cmdctl/devices.yml`), the first that is given or exists."""
    from cmdctl.inputs import inventory

    return inventory.load_inventory(find_inventory(explicit))


def find_inventory(explicit: Path | None) -> Path:
    """Where `load_inventory` reads from; InputError naming every place it looked."""
    from cmdctl.api.places import find_inventory as find

    return find(explicit)


def open_fleet(inventory: Path | None, journal: Path | None) -> Fleet:
    """The library's Fleet at `--inventory` / `--journal` (each found as above; the inventory
    only when first needed), warning on stderr."""
    from cmdctl.api.fleet import Fleet
    from cmdctl.cli import render

    return Fleet.open(inventory, journal, warn=render.warn)


def finish(code: ExitCode | int) -> NoReturn:
    """End the command with a documented exit code."""
    raise typer.Exit(int(code))
