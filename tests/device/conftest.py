"""Fixtures of the device tests: simulated devices (real aioesphomeapi client, real TCP on
127.0.0.1) and an entity index built from client info objects. Plain helpers are in helpers.py."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aioesphomeapi.model import DeviceInfo, SubDeviceInfo

from cmdctl.device import cache
from cmdctl.device.entities import EntityIndex
from cmdctl.simulator import Fleet, VirtualDevice

from .helpers import ENTITIES, SERVICES, home_spec, tv_spec


@pytest.fixture(params=["noise", "plain"])
async def tv(request: pytest.FixtureRequest) -> AsyncIterator[VirtualDevice]:
    """A healthy bar TV, encrypted and plaintext."""
    async with Fleet([tv_spec(encrypted=request.param == "noise")]) as fleet:
        yield fleet.devices[0]


@pytest.fixture
async def noise_tv() -> AsyncIterator[VirtualDevice]:
    """A healthy encrypted bar TV."""
    async with Fleet([tv_spec()]) as fleet:
        yield fleet.devices[0]


@pytest.fixture
async def home() -> AsyncIterator[VirtualDevice]:
    """The every-kind device (plaintext)."""
    async with Fleet([home_spec()]) as fleet:
        yield fleet.devices[0]


@pytest.fixture(params=["live", "cached"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> EntityIndex:
    """The entities and actions of helpers.ENTITIES/SERVICES, on sub-devices Kitchen and Patio:
    as the client gives them, and as the entity cache rebuilds them (every test runs on both)."""
    if request.param == "live":
        return EntityIndex("bar-tv-3", ENTITIES, SERVICES, {1: "Kitchen", 2: "Patio"})
    info = DeviceInfo(
        name="bar-tv-3",
        esphome_version="2026.10.0",
        compilation_time="2026-11-23 12:00:00 +0000",
        devices=[SubDeviceInfo(device_id=1, name="Kitchen"), SubDeviceInfo(2, "Patio")],
    )
    cache.save(tmp_path, "bar-tv-3", info, ENTITIES, SERVICES)
    cached = cache.load(tmp_path, "bar-tv-3")
    assert cached is not None
    return cached.index()
