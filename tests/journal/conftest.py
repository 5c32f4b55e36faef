"""Fixtures shared by the journal tests; entry and event builders are in `builders`."""

from __future__ import annotations

from pathlib import Path

import pytest

from cmdctl.journal.store import Journal


@pytest.fixture
def journal(tmp_path: Path) -> Journal:
    """A journal whose directory (and its parent) does not exist yet."""
    return Journal(tmp_path / "state" / "cmdctl")
