"""Pytest fixtures for the real-firmware lane; loaded by tests/firmware/conftest.py.

Another test directory can use them by importing this module's names into its conftest.py.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .build import Firmware, FirmwareBuildError, FirmwareUnavailable, ensure_firmware
from .fleet import FirmwareFleet, Instance

_Outcome = Firmware | FirmwareUnavailable | FirmwareBuildError
_FIRMWARE = pytest.StashKey[_Outcome]()


def _build_once(config: pytest.Config) -> _Outcome:
    """Build (or reuse) the firmware once per session; errors are kept for the fixture to report."""
    if _FIRMWARE not in config.stash:
        try:
            config.stash[_FIRMWARE] = ensure_firmware(
                log=lambda line: print(f"[firmware] {line}", file=sys.stderr)
            )
        except (FirmwareUnavailable, FirmwareBuildError) as exc:
            config.stash[_FIRMWARE] = exc
    return config.stash[_FIRMWARE]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Build before any test runs, so the first build does not count against a test's timeout."""
    if config.option.collectonly:
        return
    if any(item.get_closest_marker("firmware") for item in items):
        _build_once(config)


@pytest.fixture(scope="session")
def firmware_binary(pytestconfig: pytest.Config) -> Path:
    """Path to the built bar-TV firmware, or skip with the one-line reason it cannot be built."""
    firmware = _build_once(pytestconfig)
    if isinstance(firmware, FirmwareUnavailable):
        pytest.skip(str(firmware))
    if isinstance(firmware, FirmwareBuildError):
        pytest.fail(f"firmware build failed: {firmware}")
    return firmware.binary


@pytest.fixture
def firmware_fleet(
    firmware_binary: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[[int], list[Instance]]]:
    """Factory: `firmware_fleet(n)` starts n instances (bar-tv-1..n), stopped after the test."""
    fleet = FirmwareFleet(firmware_binary, tmp_path_factory.mktemp("fleet"))
    with fleet:
        yield fleet.start
