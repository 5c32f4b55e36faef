"""Where cmdctl keeps its state and looks for its configuration: the journal directory, crash
reports, the user's config directory."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path


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
