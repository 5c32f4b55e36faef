"""cmdctl: send commands to fleets of ESPHome devices, with a durable journal.

    import cmdctl
    fleet = cmdctl.Fleet.open(inventory="devices.yml")
    print(fleet.status().counts)

The names below are loaded on first use, so that `import cmdctl` (and `cmdctl --help`) stays
cheap; docs/library.md is the guide.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cmdctl.core.version import __version__

if TYPE_CHECKING:
    from cmdctl.api.fleet import Batch, Fleet
    from cmdctl.api.records import Page
    from cmdctl.core.errors import (
        BusyError,
        CmdctlError,
        DeviceError,
        DeviceRejected,
        DeviceUnavailable,
        ExitCode,
        InputError,
        JournalError,
    )
    from cmdctl.core.model import Entry, Priority, State
    from cmdctl.drain.direct import Mode, SendResult
    from cmdctl.drain.totals import Totals
    from cmdctl.journal.feed import FeedEvent
    from cmdctl.journal.queueops import Change
    from cmdctl.journal.summary import Status

_LAZY = {
    "Fleet": "cmdctl.api.fleet",
    "Batch": "cmdctl.api.fleet",
    "Page": "cmdctl.api.records",
    "BusyError": "cmdctl.core.errors",
    "CmdctlError": "cmdctl.core.errors",
    "DeviceError": "cmdctl.core.errors",
    "DeviceRejected": "cmdctl.core.errors",
    "DeviceUnavailable": "cmdctl.core.errors",
    "ExitCode": "cmdctl.core.errors",
    "InputError": "cmdctl.core.errors",
    "JournalError": "cmdctl.core.errors",
    "Entry": "cmdctl.core.model",
    "Priority": "cmdctl.core.model",
    "State": "cmdctl.core.model",
    "Mode": "cmdctl.drain.direct",
    "SendResult": "cmdctl.drain.direct",
    "Totals": "cmdctl.drain.totals",
    "FeedEvent": "cmdctl.journal.feed",
    "Change": "cmdctl.journal.queueops",
    "Status": "cmdctl.journal.summary",
}

__all__ = [
    "Batch",
    "BusyError",
    "Change",
    "CmdctlError",
    "DeviceError",
    "DeviceRejected",
    "DeviceUnavailable",
    "Entry",
    "ExitCode",
    "FeedEvent",
    "Fleet",
    "InputError",
    "JournalError",
    "Mode",
    "Page",
    "Priority",
    "SendResult",
    "State",
    "Status",
    "Totals",
    "__version__",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cmdctl' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
