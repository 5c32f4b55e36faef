"""The library: `Fleet`, one inventory and one journal with every operation the CLI offers
(send, bulk, drain, status, history, entries, cancel, retry, priority, events), and where
cmdctl finds its state and configuration (`places`). It may import every wing but the CLI, and
the CLI's commands are thin wrappers over it. It never prints; docs/library.md shows it in use.
"""

from __future__ import annotations

from cmdctl.api.fleet import Batch, Fleet
from cmdctl.api.records import Page

__all__ = ["Batch", "Fleet", "Page"]
