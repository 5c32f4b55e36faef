"""DeviceSession against real ESPHome host firmware (plaintext), with the real client."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from cmdctl.core.errors import DeviceRejected, DeviceUnavailable
from cmdctl.core.model import Command
from cmdctl.device.fleetview import probe
from cmdctl.device.segment import Outcome
from cmdctl.device.transport import DeviceSession
from tests.firmware.fleet import Instance

from .helpers import address

pytestmark = pytest.mark.firmware

Fleet = Callable[[int], list[Instance]]


async def test_every_tv_command_is_confirmed_on_real_firmware(firmware_fleet: Fleet) -> None:
    (tv,) = firmware_fleet(1)
    commands = [
        Command("switch", "tv_power", {"state": True}),
        Command("select", "input", {"option": "Cable"}),
        Command("number", "volume", {"value": 40.0}),
        Command("text", "channel", {"value": "206"}),
        Command("light", "backlight", {"state": True, "brightness": 0.4, "rgb": [0.5, 0.25, 0],
                                       "effect": "strobe"}),
        Command("button", "identify", {}),
        Command("action", "send_tv_command", {"data": {"box": 2, "channel": "207"}}),
        Command("action", "get_status", {}),
    ]
    async with DeviceSession(address(tv, expected_name=tv.name)) as session:
        results = await session.execute_many(commands)
        statuses = [r.status if isinstance(r, Outcome) else repr(r) for r in results]
        assert statuses == ["confirmed"] * 5 + ["delivered"] * 3
        # The action mirrors its channel into the text: the state now shows it.
        channel = await session.execute(Command("text", "channel", {"value": "207"}))
        assert channel.status == "confirmed"
    log = tv.log.read_text(errors="replace")
    assert "send_tv_command box=2 channel=207" in log
    assert "identify pressed" in log


async def test_a_long_held_run_is_taken_whole_by_real_firmware(firmware_fleet: Fleet) -> None:
    # 300 commands leave in one write (`wire.Client`): the firmware reads them all, in order.
    (tv,) = firmware_fleet(1)
    commands = [Command("number", "volume", {"value": float(n % 101)}) for n in range(299)]
    commands.append(Command("switch", "tv_power", {"state": True}))
    async with DeviceSession(address(tv)) as session:
        results = await session.execute_many(commands)
    statuses = [r.status if isinstance(r, Outcome) else repr(r) for r in results]
    assert statuses == ["delivered"] * 298 + ["confirmed", "confirmed"]
    async with DeviceSession(address(tv)) as session:  # a fresh connection reads it back
        volume = session.entity("number", "volume")
        states = await session.read_states([volume], 2.0)
    assert states[volume].state == float(298 % 101)


async def test_values_real_firmware_would_ignore_are_rejected_first(
    firmware_fleet: Fleet,
) -> None:
    (tv,) = firmware_fleet(1)
    async with DeviceSession(address(tv)) as session:
        results = await session.execute_many(
            [
                Command("select", "input", {"option": "Nope"}),
                Command("number", "volume", {"value": 150.0}),
                Command("number", "volume", {"value": 40.4}),  # firmware would take it off-step
                Command("text", "channel", {"value": "x" * 17}),
                Command("light", "backlight", {"effect": "Rainbow"}),
            ]
        )
    assert all(isinstance(r, DeviceRejected) for r in results), results
    assert "has no effect 'Rainbow' (effects: None, Pulse, Strobe)" in str(results[-1])


async def test_another_device_and_max_connections_on_real_firmware(
    firmware_fleet: Fleet,
) -> None:
    one, two = firmware_fleet(2)
    with pytest.raises(DeviceRejected, match=r"answered as 'bar-tv-2': another device"):
        async with DeviceSession(address(two, expected_name=one.name)):
            pass
    sessions = [DeviceSession(address(one)) for _ in range(8)]  # host firmware: 8 slots
    try:
        for session in sessions:
            await session.connect()
        with pytest.raises(DeviceUnavailable) as caught:
            async with DeviceSession(address(one)):
                pass
        assert caught.value.retryable and "slot" in (caught.value.hint or "")
    finally:
        for session in sessions:
            session.close()
    # The firmware frees the slots on its next loop ticks, not at once.
    for _ in range(100):
        result = await probe(address(one))
        if result.ok:
            break
        await asyncio.sleep(0.02)
    assert result.ok and result.api_version.startswith("1.")
