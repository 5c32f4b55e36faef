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


BigVenue = Callable[[int], Path]


@pytest.fixture
def big_venue(tmp_path: Path) -> BigVenue:
    """Write an inventory of N keyed TVs (tv-0...) in groups tvs and zone-0..zone-9."""

    def _big_venue(devices: int) -> Path:
        (tmp_path / "secrets.yaml").write_text(f"k: {KEY}\n")
        lines = ["defaults: {timeout: 10s}", "devices:"]
        for i in range(devices):
            lines += [
                f"  tv-{i}:",
                f"    host: 10.0.{i // 250}.{i % 250}",
                "    key: !secret k",
                f"    expected_name: tv-{i}",
                f"    groups: [zone-{i % 10}, tvs]",
            ]
        path = tmp_path / "devices.yml"
        path.write_text("\n".join(lines) + "\n")
        return path

    return _big_venue


def counter_ids() -> Callable[[], str]:
    """Deterministic, increasing ids: id-000001, id-000002, ..."""
    numbers: Iterator[int] = itertools.count(1)
    return lambda: f"id-{next(numbers):06d}"
