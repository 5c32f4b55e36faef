"""Fixtures for tests that drive the `cmdctl` command, in-process or as a real process."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.helpers import Workspace, make_workspace


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    """Ten devices, a journal dir, and an environment pointing cmdctl at them."""
    return make_workspace(tmp_path)
