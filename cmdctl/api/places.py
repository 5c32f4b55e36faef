"""Where cmdctl keeps its state and finds its configuration: the journal directory, the
inventory, crash reports, the user's config directory; and who is asking. One implementation,
shared by the CLI and the library."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from cmdctl.core.errors import InputError


def journal_dir(explicit: Path | None, env: Mapping[str, str] | None = None) -> Path:
    """`--journal DIR`, else `$CMDCTL_HOME`, else the XDG state dir (`~/.local/state/cmdctl`)."""
    env = os.environ if env is None else env
    if explicit is not None:
        return explicit.expanduser()
    home = env.get("CMDCTL_HOME")
    if home:
        return Path(home).expanduser()
    state = env.get("XDG_STATE_HOME")
    base = Path(state).expanduser() if state else Path.home() / ".local" / "state"
    return base / "cmdctl"


def crash_dir(env: Mapping[str, str] | None = None) -> Path:
    """Where internal-error reports go (never inside the journal directory)."""
    env = os.environ if env is None else env
    cache = env.get("XDG_CACHE_HOME")
    base = Path(cache).expanduser() if cache else Path.home() / ".cache"
    return base / "cmdctl" / "crashes"


def config_dir(env: Mapping[str, str] | None = None) -> Path:
    """The user's config directory: `$XDG_CONFIG_HOME/cmdctl`, else `~/.config/cmdctl`."""
    env = os.environ if env is None else env
    config = env.get("XDG_CONFIG_HOME")
    base = Path(config).expanduser() if config else Path.home() / ".config"
    return base / "cmdctl"


def find_inventory(explicit: Path | None, env: Mapping[str, str] | None = None) -> Path:
    """The inventory at `explicit`, `$CMDCTL_INVENTORY`, `./devices.yml` or the user's config
    directory (`~/.config/cmdctl/devices.yml`), the first that is given or exists; InputError
    naming every place it looked."""
    from cmdctl.inputs import inventory

    env = os.environ if env is None else env
    cwd = Path.cwd()
    if explicit is not None or env.get(inventory.INVENTORY_ENV):
        # Named by the user: that file or an error, never a silent fallback elsewhere.
        return inventory.find_inventory(explicit, env, cwd)
    # cron starts in $HOME and systemd in /: the config directory is found from either.
    places = [cwd / inventory.INVENTORY_FILE, config_dir(env) / inventory.INVENTORY_FILE]
    for path in places:
        if path.is_file():
            return path
    raise InputError(
        f"no inventory: --inventory not given, ${inventory.INVENTORY_ENV} not set, "
        f"no {places[0]}, no {places[1]}",
        hint=f"pass --inventory FILE, set ${inventory.INVENTORY_ENV}, or put it at {places[1]}",
    )


def who() -> str:
    """`user@host`, recorded with every event a person causes."""
    import getpass  # here: `--help` and `status` never ask who is asking
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"
