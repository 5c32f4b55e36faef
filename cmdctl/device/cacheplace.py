"""Where the entity cache (`cmdctl.device.cache`) records listings in this process, if anywhere.

Only the place, so that the CLI can set it on every run without importing the cache itself
(json, dataclasses, the domain model: ~5 ms that `cmdctl --help` has no use for).
"""

from __future__ import annotations

from pathlib import Path

#: The state directory the CLI chose (`use`); None: nothing is recorded.
state_dir: Path | None = None


def use(directory: Path | None) -> None:
    """Record listings under `directory/entities` from now on (None: stop recording)."""
    global state_dir
    state_dir = directory
