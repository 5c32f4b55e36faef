"""Fault injection, seen through the real aioesphomeapi client (simulator only)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace

import pytest
from aioesphomeapi import (
    APIClient,
    EncryptionPlaintextAPIError,
    InvalidEncryptionKeyAPIError,
    RequiresEncryptionAPIError,
)
from aioesphomeapi.core import ReadFailedAPIError, SocketAPIError, SocketClosedAPIError

from cmdctl.core.errors import InputError
from cmdctl.simulator import DeviceSpec, FaultSpec, Fleet, VirtualDevice, venue
from cmdctl.simulator.naming import fnv1

from .helpers import StateWatch, eventually

POWER = fnv1("tv_power")
VOLUME = fnv1("volume")


def _tv(encrypted: bool = False, **faults: object) -> DeviceSpec:
    return replace(venue(1, encrypted=encrypted)[0], faults=FaultSpec(**faults))  # type: ignore[arg-type]


def _client(dev: VirtualDevice, psk: str | None = None) -> APIClient:
    return APIClient("127.0.0.1", dev.port, None, noise_psk=psk)


async def _drop_point(seed: int) -> int:
    """How many of 300 commands a device with drop_probability 0.02 handled before dropping."""
    spec = replace(_tv(drop_probability=0.02), seed=seed)
    async with Fleet([spec]) as fleet:
        (dev,) = fleet.devices
        cli = _client(dev)
        await cli.connect(login=True)
        for i in range(300):
            cli.switch_command(POWER, i % 2 == 0)
        await eventually(lambda: not dev.sessions)
        await cli.disconnect()
        return len(dev.received)


async def test_same_seed_drops_at_the_same_message() -> None:
    first = await _drop_point(seed=11)
    second = await _drop_point(seed=11)
    assert first == second
    assert 0 < first < 300


async def test_other_seeds_drop_elsewhere() -> None:
    points = {await _drop_point(seed) for seed in (1, 2, 3, 4)}
    assert len(points) > 1


async def test_latency_delays_every_answer() -> None:
    async with Fleet([_tv(latency=0.15)]) as fleet:
        cli = _client(fleet.devices[0])
        await cli.connect(login=True)
        started = time.monotonic()
        await cli.device_info()
        assert time.monotonic() - started >= 0.15
        await cli.disconnect()


@pytest.mark.parametrize("encrypted", [False, True])
async def test_slow_handshake(encrypted: bool) -> None:
    spec = _tv(encrypted=encrypted, slow_handshake=0.3)
    async with Fleet([spec]) as fleet:
        cli = _client(fleet.devices[0], spec.psk)
        started = time.monotonic()
        await cli.connect(login=True)
        assert time.monotonic() - started >= 0.3
        started = time.monotonic()
        await cli.device_info()
        assert time.monotonic() - started < 0.3  # only the handshake is slow
        await cli.disconnect()


async def test_reboot_disconnects_then_refuses_then_returns() -> None:
    async with Fleet([_tv()]) as fleet:
        (dev,) = fleet.devices
        cli = _client(dev)
        stops: list[bool] = []

        async def on_stop(expected: bool) -> None:
            stops.append(expected)

        await cli.connect(login=True, on_stop=on_stop)
        reboot = asyncio.create_task(dev.reboot(0.5))
        await eventually(lambda: not dev.online)
        await eventually(lambda: stops == [True])  # the client saw an expected disconnect
        with pytest.raises(SocketAPIError):
            await _client(dev).connect(login=True, log_errors=False)
        await reboot
        again = _client(dev)
        await again.connect(login=True)
        await again.disconnect()


async def test_scheduled_reboot_and_flapping() -> None:
    rebooting = _tv(reboot_after=0.1, reboot_down=0.3)
    flapping = replace(_tv(flap_up=0.15, flap_down=0.15), name="flappy")
    async with Fleet([rebooting, flapping]) as fleet:
        seen: dict[str, set[bool]] = {"bar-tv-1": set(), "flappy": set()}
        for _ in range(100):
            for dev in fleet.devices:
                seen[dev.name].add(dev.online)
            await asyncio.sleep(0.01)
        assert seen == {"bar-tv-1": {True, False}, "flappy": {True, False}}
        await eventually(lambda: fleet.device("bar-tv-1").online)


async def test_offline_at_start_then_online() -> None:
    async with Fleet([_tv(offline=True)]) as fleet:
        (dev,) = fleet.devices
        assert not dev.online
        await dev.set_offline(False)
        cli = _client(dev)
        await cli.connect(login=True)
        await cli.disconnect()


async def test_wrong_key_fault() -> None:
    keyed = _tv(encrypted=True, wrong_key=True)
    plain = replace(_tv(encrypted=False, wrong_key=True), name="plain")
    async with Fleet([keyed, plain]) as fleet:
        keyed_dev, plain_dev = fleet.devices
        with pytest.raises(InvalidEncryptionKeyAPIError):
            await _client(keyed_dev, keyed.psk).connect(login=True, log_errors=False)
        # a device that holds a key the inventory does not have
        with pytest.raises(RequiresEncryptionAPIError):
            await _client(plain_dev).connect(login=True, log_errors=False)


async def test_handshake_deadline_closes_idle_connections() -> None:
    async with Fleet([_tv(encrypted=True, handshake_timeout=0.2)]) as fleet:
        (dev,) = fleet.devices
        started = time.monotonic()
        reader, writer = await asyncio.open_connection("127.0.0.1", dev.port)
        async with asyncio.timeout(2):
            assert await reader.read() == b""
        assert time.monotonic() - started >= 0.19  # the loop's clock may fire a hair early
        assert fleet.recorder.connections[-1].reason == "handshake timeout"
        writer.close()


async def test_batch_delay_coalesces_state_pushes() -> None:
    spec = replace(_tv(), batch_delay=0.1)
    async with Fleet([spec]) as fleet:
        cli = _client(fleet.devices[0])
        await cli.connect(login=True)
        watch = StateWatch()
        cli.subscribe_states(watch)
        await watch.until(VOLUME, lambda s: True)
        started = time.monotonic()
        for value in (1, 2, 3):
            cli.number_command(VOLUME, value)
        await watch.until(VOLUME, lambda s: s.state == 3)
        assert time.monotonic() - started >= 0.1
        await asyncio.sleep(0.15)
        assert watch.count[(VOLUME, 0)] == 2  # initial + one batched push with the latest value
        await cli.disconnect()


async def _ninth_client_errors(reject_reset: float, seed: int, rounds: int) -> list[str]:
    """The exception a client over a 1-connection limit gets, for `rounds` attempts."""
    spec = replace(_tv(reject_reset=reject_reset), seed=seed, max_connections=1)
    seen = []
    async with Fleet([spec]) as fleet:
        holder = _client(fleet.devices[0])
        await holder.connect(login=True)
        for _ in range(rounds):
            with pytest.raises((SocketClosedAPIError, ReadFailedAPIError)) as info:
                await _client(fleet.devices[0]).connect(login=True, log_errors=False)
            seen.append(type(info.value).__name__)
        await holder.device_info()  # the connection holding the slot is unaffected
        await holder.disconnect()
        assert [e.reason for e in fleet.recorder.connections if e.event == "reject"] == [
            "max connections"
        ] * rounds
    return seen


async def test_reject_reset_gives_both_branches_of_the_firmware_race() -> None:
    # firmware: FIN when it closed before the client's Hello arrived, RST when after
    assert await _ninth_client_errors(0.0, 0, 3) == ["SocketClosedAPIError"] * 3
    assert await _ninth_client_errors(1.0, 0, 3) == ["ReadFailedAPIError"] * 3
    mixed = await _ninth_client_errors(0.5, 7, 12)
    assert set(mixed) == {"SocketClosedAPIError", "ReadFailedAPIError"}
    assert await _ninth_client_errors(0.5, 7, 12) == mixed  # the same seed, the same sequence


async def test_key_changes_at_runtime_and_busy_ports_are_input_errors() -> None:
    spec = _tv(encrypted=True)
    async with Fleet([spec]) as fleet:
        (dev,) = fleet.devices
        dev.set_key(None)
        with pytest.raises(EncryptionPlaintextAPIError):
            await _client(dev, spec.psk).connect(login=True, log_errors=False)
        dev.set_key(spec.psk)
        cli = _client(dev, spec.psk)
        await cli.connect(login=True)
        await cli.disconnect()
        clash = replace(spec, name="clash", port=dev.port)
        with pytest.raises(InputError, match="cannot listen"):
            async with Fleet([clash]):
                pass
