"""The library: `Fleet`, one inventory and one journal with every operation the CLI offers
(send, bulk, drain, status, history, entries, cancel, retry, priority, events), and where
cmdctl finds its state and configuration (`places`). It may import every wing but the CLI, and
the CLI's commands are thin wrappers over it. It never prints; docs/library.md shows it in use.

The names below are loaded on first use: every `cmdctl` command asks `places` where the journal
is, and `--help` or `status` should not pay for importing `Fleet` to learn it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cmdctl.api.fleet import Batch, Fleet
    from cmdctl.api.records import Page

_LAZY = {"Batch": "cmdctl.api.fleet", "Fleet": "cmdctl.api.fleet", "Page": "cmdctl.api.records"}

__all__ = ["Batch", "Fleet", "Page"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cmdctl.api' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


def __dir__() -> list[str]:
    return sorted(__all__)
