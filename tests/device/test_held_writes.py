"""A segment's entity commands are held by the client and written in one go (`wire.Client`),
with the real aioesphomeapi client over real TCP to the simulator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from aioesphomeapi.core import APIConnectionError
from aioesphomeapi.model import NumberInfo, SwitchInfo

from cmdctl.core.model import Command
from cmdctl.device import wire
from cmdctl.device.segment import Outcome
from cmdctl.device.transport import CLIENT_INFO, DeviceSession
from cmdctl.simulator import VirtualDevice

from .helpers import address


@pytest.fixture
def flushed(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """How many held messages each `Client.flush` wrote, in order."""
    seen: list[int] = []
    real = wire.Client.flush

    def counting(self: wire.Client) -> dict[int, Exception]:
        holding = self._holding
        seen.append(0 if holding is None else len(holding.messages))
        return real(self)

    monkeypatch.setattr(wire.Client, "flush", counting)
    yield seen


async def test_a_segment_leaves_in_one_write_before_the_subscription_and_one_after(
    tv: VirtualDevice, flushed: list[int]
) -> None:
    commands = [Command("number", "volume", {"value": float(n)}) for n in range(99)]
    commands.append(Command("switch", "tv_power", {"state": True}))
    async with DeviceSession(address(tv)) as session:
        results = await session.execute_many(commands)
    # 98 unverified volumes, then the states are subscribed to before the two verified
    # commands: one write each side of the subscription, nothing else held.
    assert [n for n in flushed if n] == [98, 2]
    assert [(r.selector, r.args) for r in tv.received] == [
        (c.selector, dict(c.args)) for c in commands
    ]
    statuses = [r.status if isinstance(r, Outcome) else r for r in results]
    assert statuses == ["delivered"] * 98 + ["confirmed", "confirmed"]
    assert tv.state_of("number.volume") == 98.0


async def test_a_lone_command_is_written_as_it_comes(
    noise_tv: VirtualDevice, flushed: list[int]
) -> None:
    # An `idempotent: false` entry travels alone: a failed write of it must read as "not
    # sent", which holding it would blur into "delivery unknown".
    async with DeviceSession(address(noise_tv)) as session:
        (result,) = await session.execute_many([Command("switch", "tv_power", {"state": True})])
    assert isinstance(result, Outcome) and result.status == "confirmed"
    assert not any(flushed)


async def _client(dev: VirtualDevice) -> tuple[wire.Client, int, int]:
    """A connected `wire.Client` and the keys of the TV's volume and power."""
    client = wire.Client("127.0.0.1", dev.port, None, noise_psk=dev.spec.psk or None,
                         client_info=CLIENT_INFO, provide_time=False)
    await client.connect(login=True)
    _, entities, _ = await client.device_info_and_list_entities()
    volume = next(e.key for e in entities if isinstance(e, NumberInfo))
    power = next(e.key for e in entities if isinstance(e, SwitchInfo))
    return client, volume, power


async def test_a_message_the_client_cannot_write_is_refused_alone(tv: VirtualDevice) -> None:
    client, volume, power = await _client(tv)
    try:
        client.hold()
        client.number_command(volume, 7.0)
        holding: Any = client._get_connection()  # the stand-in while holding
        holding.send_message(object())  # no message type the connection knows
        client.switch_command(power, True)
        refused = client.flush()
        await client.device_info()  # barrier: the device has handled what was written
    finally:
        await client.disconnect()
    assert list(refused) == [1] and isinstance(refused[1], KeyError)
    assert [(r.selector, r.args) for r in tv.received] == [
        ("number.volume", {"value": 7.0}),
        ("switch.tv_power", {"state": True}),
    ]


async def test_released_messages_are_never_written(noise_tv: VirtualDevice) -> None:
    client, volume, _ = await _client(noise_tv)
    try:
        client.hold()
        client.number_command(volume, 7.0)
        client.release()
        assert client.flush() == {}
        await client.device_info()  # written at once: nothing is held any more
    finally:
        await client.disconnect()
    assert noise_tv.received == []


async def test_holding_refuses_as_a_command_would_when_not_connected(
    noise_tv: VirtualDevice,
) -> None:
    client, volume, _ = await _client(noise_tv)
    await client.disconnect()
    with pytest.raises(APIConnectionError):
        client.hold()
    with pytest.raises(APIConnectionError):  # and nothing was left holding
        client.number_command(volume, 7.0)
