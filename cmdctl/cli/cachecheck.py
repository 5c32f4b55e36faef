"""Check commands against the entity cache before anything is queued: `validate`, `bulk`,
`send --queue`. A command a device's cached listing refuses is an input error (exit 2) naming
the playbook's file:line:column, even while the device is away. Devices without a cache are
checked on connect, as always. Never imports aioesphomeapi.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from cmdctl.core.errors import InputError

if TYPE_CHECKING:
    from cmdctl.core.model import Command
    from cmdctl.device.cache import CachedDevice, Summary
    from cmdctl.inputs.playbook import Plan


def state_dir() -> Path:
    """The state directory that holds the cache ($CMDCTL_HOME or the XDG default)."""
    from cmdctl.cli.paths import journal_dir

    return journal_dir(None)


def _warn(message: str) -> None:
    from cmdctl.cli import render

    render.warn(message)


def check_plan(plan: Plan) -> None:
    """InputError at the step's file:line:column for the first command a cache refuses."""
    from cmdctl.api import cachecheck

    cachecheck.check_plan(plan, state_dir(), _warn)


def check_command(device: str, command: Command) -> None:
    """InputError when `device`'s cached listing refuses `command` (for `send --queue`)."""
    from cmdctl.api import cachecheck

    cachecheck.check_command(device, command, state_dir(), _warn)


def cached_device(device: str) -> CachedDevice:
    """`devices entities --cached`: the device's cached listing; InputError when there is none."""
    from cmdctl.device import cache

    state = state_dir()
    try:
        found = cache.load(state, device)
        if found is not None:
            found.index()  # rebuilt here so that a damaged one is an input error, not a crash
    except cache.CacheUnreadable as err:
        raise InputError(
            f"cannot read the entity cache of {device}: {err}",
            hint=f"delete it and connect again: cmdctl devices probe {device}",
        ) from None
    if found is None:
        raise InputError(
            f"no cached entity list for {device} in {cache.directory(state)}",
            hint=f"connect once while it is online: cmdctl devices probe {device}",
        )
    return found


def summaries(devices: Iterable[str]) -> dict[str, Summary]:
    """`devices ls`: each device's cache header, where it has one."""
    from cmdctl.device import cache

    state = state_dir()
    found = {name: cache.summary(state, name) for name in devices}
    return {name: s for name, s in found.items() if s is not None}
