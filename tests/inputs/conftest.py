"""Shared fixtures for the input tests: the example venue and a helper to write YAML files."""

from __future__ import annotations

import itertools
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from cmdctl.inputs.inventory import Inventory, load_inventory

EXAMPLES = Path(__file__).resolve().parents[2] / "playbooks"
IR_KEY_ENV = "CMDCTL_EXAMPLE_IR_KEY"
IR_KEY = "Y21kY3RsIGV4YW1wbGUgaXJfYmxhc3Rlcl9iIGtleS4="  # the example value in secrets.yaml
EXAMPLE_ENV = {IR_KEY_ENV: IR_KEY}
KEY = "dGVzdC1rZXktZm9yLWNtZGN0bC1pbnB1dC10ZXN0cyE="  # base64 of 32 bytes, for test inventories
NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z: a fixed "now" for expansions


@pytest.fixture
def venue() -> Inventory:
    """The example inventory in playbooks/."""
    return load_inventory(EXAMPLES / "devices.yml", env=EXAMPLE_ENV)


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    """Write dedented text to tmp_path/name and return the path."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return _write


def counter_ids() -> Callable[[], str]:
    """Deterministic, increasing ids: id-000001, id-000002, ..."""
    numbers: Iterator[int] = itertools.count(1)
    return lambda: f"id-{next(numbers):06d}"
