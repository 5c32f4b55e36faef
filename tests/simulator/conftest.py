"""Targets for the contract suite: the simulator in plaintext and in Noise (more can be added).

A target is an async context manager factory in TARGETS yielding a `ContractDevice`. The contract
tests only use `host`, `port`, `psk`, `name` and the venue TV entities, except tests marked
`@pytest.mark.needs("<capability>")`, which are skipped for targets without that capability:

    noise       the target speaks Noise (psk is set)
    plaintext   the target speaks plaintext
    faults      fault injection and introspection through `ContractDevice.sim` (simulator only)
    all_kinds   a second device with every entity kind, sub-devices (`ContractDevice.kitchen`)
    shutdown    `ContractDevice.shutdown()` stops the device the way firmware shuts down

    firmware    real ESPHome host firmware (tests/firmware): plaintext, venue entities, no faults

The `firmware` target is marked `firmware` (deselect with `-m "not firmware"`) and skips itself
when this machine cannot build the firmware.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import pytest
from aioesphomeapi import APIClient

from cmdctl.simulator import Fleet, venue
from tests.firmware.fleet import FirmwareFleet

from .helpers import ContractDevice, kitchen_spec


@contextlib.asynccontextmanager
async def _simulator(encrypted: bool) -> AsyncIterator[ContractDevice]:
    tv = venue(1, encrypted=encrypted)[0]
    async with Fleet([tv, kitchen_spec(tv.psk)]) as fleet:
        dev, kitchen = fleet.devices
        caps = {"faults", "all_kinds", "shutdown", "noise" if encrypted else "plaintext"}

        async def shutdown() -> None:
            await dev.disconnect_clients()
            await dev.set_offline(True)

        yield ContractDevice(
            "127.0.0.1",
            dev.port,
            tv.psk,
            tv.name,
            frozenset(caps),
            sim=dev,
            fleet=fleet,
            kitchen=kitchen,
            shutdown=shutdown,
        )


@contextlib.asynccontextmanager
async def _firmware(request: pytest.FixtureRequest) -> AsyncIterator[ContractDevice]:
    """One instance of the real ESPHome host firmware (tests/firmware), plaintext only."""
    binary = request.getfixturevalue("firmware_binary")  # skips when it cannot be built
    root = request.getfixturevalue("tmp_path")
    with FirmwareFleet(binary, root) as fleet:
        (instance,) = fleet.start(1)

        async def shutdown() -> None:
            instance.process.terminate()  # firmware sends DisconnectRequest, then exits
            await asyncio.to_thread(instance.process.wait, FIRMWARE_EXIT_WAIT)

        yield ContractDevice(
            instance.host,
            instance.port,
            None,
            instance.name,
            frozenset({"plaintext", "firmware", "shutdown"}),
            shutdown=shutdown,
        )


FIRMWARE_EXIT_WAIT = 10.0  # seconds for a SIGTERMed firmware to say goodbye and exit


Target = Callable[[pytest.FixtureRequest], contextlib.AbstractAsyncContextManager[ContractDevice]]
TARGETS: dict[str, Target] = {
    "sim-plain": lambda request: _simulator(encrypted=False),
    "sim-noise": lambda request: _simulator(encrypted=True),
    "firmware": _firmware,
}
_TARGET_MARKS = {"firmware": [pytest.mark.firmware]}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs(*capabilities): skip targets lacking them")


@pytest.fixture(params=[pytest.param(t, marks=_TARGET_MARKS.get(t, [])) for t in sorted(TARGETS)])
async def contract_device(request: pytest.FixtureRequest) -> AsyncIterator[ContractDevice]:
    """The device under test, for each target."""
    async with TARGETS[request.param](request) as target:
        marker = request.node.get_closest_marker("needs")
        missing = set(marker.args if marker else ()) - target.capabilities
        if missing:
            pytest.skip(f"target {request.param} lacks {', '.join(sorted(missing))}")
        yield target


@pytest.fixture
async def connected(contract_device: ContractDevice) -> AsyncIterator[APIClient]:
    """A client connected to the device under test (disconnected afterwards)."""
    cli = contract_device.client()
    await cli.connect(login=True)
    try:
        yield cli
    finally:
        await cli.disconnect()
