"""Where cmdctl keeps its state and looks for its configuration (cmdctl.api.places owns it;
the names stay here for the command modules)."""

from __future__ import annotations

from cmdctl.api.places import config_dir, crash_dir, journal_dir

__all__ = ["config_dir", "crash_dir", "journal_dir"]
