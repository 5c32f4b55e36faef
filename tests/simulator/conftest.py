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

Simulator targets answer as ESPHome 2026.10 (API 1.19), like the firmware target; a test marked
`@pytest.mark.firmware_timing` gets them with the firmware's 100 ms `batch_delay`.

The `firmware` target is marked `firmware` (deselect with `-m "not firmware"`) and skips itself
when this machine cannot build the firmware.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import pytest
from aioesphomeapi import APIClient

from cmdctl.simulator import Fleet, venue
from tests.firmware.fleet import FirmwareFleet

from .helpers import ContractDevice, kitchen_spec


@contextlib.asynccontextmanager
async def _simulator(
    request: pytest.FixtureRequest, encrypted: bool
) -> AsyncIterator[ContractDevice]:
    # the same version as the firmware target, so that both answer alike
    tv = replace(venue(1, encrypted=encrypted)[0], esphome_version=FIRMWARE_VERSION, api_minor=19)
    if request.node.get_closest_marker("firmware_timing"):
        tv = replace(tv, batch_delay=FIRMWARE_BATCH_DELAY)
    async with Fleet([tv, kitchen_spec(tv.psk)]) as fleet:
        dev, kitchen = fleet.devices
        caps = {"faults", "all_kinds", "shutdown", "noise" if encrypted else "plaintext"}

        async def shutdown() -> None:
            await dev.disconnect_clients()
            await dev.set_offline(True)

        def actions_run() -> list[dict[str, Any]]:
            return [
                r.args["data"]
                for r in dev.received
                if r.object_id == "send_tv_command" and r.accepted
            ]

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
            push_window=0.05 + tv.batch_delay,
            actions_run=actions_run,
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

        def actions_run() -> list[dict[str, Any]]:
            # the twin logs each call (tests/firmware/bar_tv.yaml)
            text = instance.log.read_text(errors="replace")
            return [
                {"box": int(box), "channel": channel} for box, channel in _ACTION_LOG.findall(text)
            ]

        yield ContractDevice(
            instance.host,
            instance.port,
            None,
            instance.name,
            frozenset({"plaintext", "firmware", "shutdown"}),
            shutdown=shutdown,
            push_window=FIRMWARE_PUSH_WINDOW,
            actions_run=actions_run,
        )


FIRMWARE_EXIT_WAIT = 10.0  # seconds for a SIGTERMed firmware to say goodbye and exit
FIRMWARE_VERSION = "2026.10.0"  # what tests/firmware builds
FIRMWARE_BATCH_DELAY = 0.1  # ESPHome's default api batch_delay
# 100 ms batch + a 16 ms loop tick, measured 100–117 ms; the rest is slack for a loaded CI box
FIRMWARE_PUSH_WINDOW = 0.3
_ACTION_LOG = re.compile(r"send_tv_command box=(-?\d+) channel=([^\s\x1b]*)")  # ANSI-coloured


Target = Callable[[pytest.FixtureRequest], contextlib.AbstractAsyncContextManager[ContractDevice]]
TARGETS: dict[str, Target] = {
    "sim-plain": lambda request: _simulator(request, encrypted=False),
    "sim-noise": lambda request: _simulator(request, encrypted=True),
    "firmware": _firmware,
}
_TARGET_MARKS = {"firmware": [pytest.mark.firmware]}


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "needs(*capabilities): skip targets lacking them")
    config.addinivalue_line(
        "markers", "firmware_timing: simulator targets batch state pushes like firmware (100 ms)"
    )


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
