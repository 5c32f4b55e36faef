"""Glue shared by the command modules: locating the journal and inventory, who is asking."""

from __future__ import annotations

import getpass
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import typer

from cmdctl.core.errors import ExitCode, InputError

if TYPE_CHECKING:
    from cmdctl.inputs.inventory import Inventory
    from cmdctl.journal.store import Journal


def who() -> str:
    """`user@host`, recorded with every event a person causes."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


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
    from cmdctl.cli.paths import config_dir
    from cmdctl.inputs import inventory

    cwd = Path.cwd()
    if explicit is not None or os.environ.get(inventory.INVENTORY_ENV):
        # Named by the user: that file or an error, never a silent fallback elsewhere.
        return inventory.find_inventory(explicit, os.environ, cwd)
    # cron starts in $HOME and systemd in /: the config directory is found from either.
    places = [cwd / inventory.INVENTORY_FILE, config_dir() / inventory.INVENTORY_FILE]
    for path in places:
        if path.is_file():
            return path
    raise InputError(
        f"no inventory: --inventory not given, ${inventory.INVENTORY_ENV} not set, "
        f"no {places[0]}, no {places[1]}",
        hint=f"pass --inventory FILE, set ${inventory.INVENTORY_ENV}, or put it at {places[1]}",
    )


def finish(code: ExitCode | int) -> NoReturn:
    """End the command with a documented exit code."""
    raise typer.Exit(int(code))
