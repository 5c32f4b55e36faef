"""Fixtures of the device tests: simulated devices (real aioesphomeapi client, real TCP on
127.0.0.1) and an entity index built from client info objects. Plain helpers are in helpers.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

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


@pytest.fixture
def index() -> EntityIndex:
    """The entities and actions of helpers.ENTITIES/SERVICES, on sub-devices Kitchen and Patio."""
    return EntityIndex("bar-tv-3", ENTITIES, SERVICES, {1: "Kitchen", 2: "Patio"})
