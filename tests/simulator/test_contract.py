"""The contract suite: the real aioesphomeapi client against a device target (see conftest.py).

Expected exceptions follow the table in docs/esphome-protocol.md §1.3.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aioesphomeapi import (
    APIClient,
    EncryptionHelloAPIError,
    EncryptionPlaintextAPIError,
    InvalidEncryptionKeyAPIError,
    RequiresEncryptionAPIError,
)
from aioesphomeapi.core import (
    ConnectionNotEstablishedAPIError,
    ReadFailedAPIError,
    SocketAPIError,
    SocketClosedAPIError,
)
from aioesphomeapi.model import LightColorCapability

from cmdctl.simulator.naming import fnv1

from .helpers import ContractDevice, StateWatch, eventually

TV_OBJECT_IDS = {"tv_power", "input", "volume", "identify", "channel", "backlight"}
MAX_CONNECTIONS_LIMIT = 20  # firmware's `api: max_connections:` range is 1..20
OTHER_KEY = "uD9mXbWJg3kGqJ3sbcoPtgtHbGHjQ9ZtHsRrSqvgN2M="  # a valid key no target holds


async def _entities(cli: APIClient) -> tuple[dict[str, Any], dict[str, Any]]:
    _, entities, services = await cli.device_info_and_list_entities()
    return {e.object_id: e for e in entities}, {s.name: s for s in services}


# ---------------------------------------------------------------- connect, list, subscribe


async def test_connect_hello(contract_device: ContractDevice) -> None:
    cli = contract_device.client(expected_name=contract_device.name)
    await cli.connect(login=True)
    try:
        assert cli.api_version is not None
        assert (cli.api_version.major, cli.api_version.minor) >= (1, 14)
        assert cli.is_connected
    finally:
        await cli.disconnect()


async def test_device_info_and_list_entities(
    contract_device: ContractDevice, connected: APIClient
) -> None:
    info, entities, services = await connected.device_info_and_list_entities()
    assert info.name == contract_device.name
    mac = info.mac_address
    assert len(mac) == 17 and mac == mac.upper() and mac.count(":") == 5
    assert info.api_encryption_supported == (contract_device.psk is not None)
    by_id = {e.object_id: e for e in entities}
    assert set(by_id) >= TV_OBJECT_IDS
    for obj_id in TV_OBJECT_IDS:
        assert by_id[obj_id].key == fnv1(obj_id)
    assert by_id["input"].options == ["HDMI 1", "HDMI 2", "Cable"]
    assert (by_id["volume"].min_value, by_id["volume"].max_value, by_id["volume"].step) == (
        0,
        100,
        1,
    )
    assert by_id["channel"].max_length == 16
    assert by_id["backlight"].effects[:1] == ["None"] and len(by_id["backlight"].effects) >= 2
    send = next(s for s in services if s.name == "send_tv_command")
    assert [(a.name, a.type.name) for a in send.args] == [("box", "INT"), ("channel", "STRING")]
    assert send.key == fnv1("send_tv_command")
    assert send.supports_response.name == "NONE"
    status = next(s for s in services if s.name == "get_status")
    assert status.supports_response.name in ("ONLY", "OPTIONAL", "STATUS")


async def test_subscribe_states_initial_then_changes(connected: APIClient) -> None:
    by_id, _ = await _entities(connected)
    watch = StateWatch()
    connected.subscribe_states(watch)
    power = by_id["tv_power"].key
    first = await watch.until(power, lambda s: True)
    await watch.until(by_id["input"].key, lambda s: True)
    target = not first.state
    connected.switch_command(power, target)
    await watch.until(power, lambda s: s.state == target)
    assert watch.count[(power, 0)] == 2


async def test_switch_publishes_only_on_change(
    contract_device: ContractDevice, connected: APIClient
) -> None:
    by_id, _ = await _entities(connected)
    watch = StateWatch()
    connected.subscribe_states(watch)
    power = by_id["tv_power"].key
    first = await watch.until(power, lambda s: True)
    connected.switch_command(power, first.state)  # same state: firmware publishes nothing
    await connected.device_info()  # barrier: the device handled it
    await asyncio.sleep(contract_device.push_window)  # a batched push would have come by now
    assert watch.count[(power, 0)] == 1
    connected.switch_command(power, not first.state)
    await watch.until(power, lambda s: s.state != first.state)
    assert watch.count[(power, 0)] == 2


# ---------------------------------------------------------------- every command kind


async def test_venue_commands_change_state(connected: APIClient) -> None:
    by_id, _ = await _entities(connected)
    watch = StateWatch()
    connected.subscribe_states(watch)
    connected.select_command(by_id["input"].key, "Cable")
    await watch.until(by_id["input"].key, lambda s: s.state == "Cable")
    connected.number_command(by_id["volume"].key, 42)
    await watch.until(by_id["volume"].key, lambda s: s.state == 42)
    connected.text_command(by_id["channel"].key, "206")
    await watch.until(by_id["channel"].key, lambda s: s.state == "206")
    backlight = by_id["backlight"]
    assert any(m & LightColorCapability.RGB for m in backlight.supported_color_modes)
    effect = backlight.effects[1]
    connected.light_command(
        backlight.key, state=True, brightness=0.5, rgb=(1.0, 0.0, 0.0), effect=effect
    )
    state = await watch.until(backlight.key, lambda s: s.state and s.effect == effect)
    assert state.brightness == pytest.approx(0.5)
    assert (state.red, state.green, state.blue) == pytest.approx((1.0, 0.0, 0.0))
    connected.button_command(by_id["identify"].key)
    await connected.device_info()


async def test_invalid_values_are_ignored(
    contract_device: ContractDevice, connected: APIClient
) -> None:
    by_id, _ = await _entities(connected)
    watch = StateWatch()
    connected.subscribe_states(watch)
    before = {
        k: (await watch.until(by_id[k].key, lambda s: True)).state
        for k in ("input", "volume", "channel")
    }
    connected.select_command(by_id["input"].key, "Betamax")
    connected.number_command(by_id["volume"].key, 101)
    connected.text_command(by_id["channel"].key, "x" * 17)
    await connected.device_info()  # barrier
    await asyncio.sleep(contract_device.push_window)  # a batched push would have come by now
    after = {k: watch.latest[(by_id[k].key, 0)].state for k in before}
    assert after == before
    assert all(watch.count[(by_id[k].key, 0)] == 1 for k in before)  # nothing republished
    if contract_device.sim is not None:
        assert [r.accepted for r in contract_device.sim.received[-3:]] == [False] * 3


@pytest.mark.needs("all_kinds")
async def test_every_other_command_kind(contract_device: ContractDevice) -> None:
    kitchen = contract_device.kitchen
    assert kitchen is not None
    cli = APIClient("127.0.0.1", kitchen.port, None, noise_psk=contract_device.psk)
    await cli.connect(login=True)
    try:
        by_id, _ = await _entities(cli)
        watch = StateWatch()
        cli.subscribe_states(watch)
        cli.cover_command(by_id["blind"].key, position=0.25, tilt=0.5)
        await watch.until(by_id["blind"].key, lambda s: abs(s.position - 0.25) < 1e-6)
        cli.fan_command(
            by_id["ceiling_fan"].key,
            state=True,
            speed_level=3,
            oscillating=True,
            preset_mode="Breeze",
        )
        s = await watch.until(by_id["ceiling_fan"].key, lambda s: s.state)
        assert (s.speed_level, s.oscillating, s.preset_mode) == (3, True, "Breeze")
        from aioesphomeapi import (
            ClimateFanMode,
            ClimateMode,
            LockCommand,
            MediaPlayerCommand,
        )

        cli.lock_command(by_id["door"].key, LockCommand.UNLOCK)
        await watch.until(by_id["door"].key, lambda s: s.state.name == "UNLOCKED")
        cli.valve_command(by_id["water"].key, position=0.75)
        await watch.until(by_id["water"].key, lambda s: abs(s.position - 0.75) < 1e-6)
        cli.media_player_command(by_id["speaker"].key, command=MediaPlayerCommand.PLAY, volume=0.3)
        await watch.until(by_id["speaker"].key, lambda s: s.state.name == "PLAYING")
        cli.climate_command(
            by_id["heat_pump"].key,
            mode=ClimateMode.HEAT,
            target_temperature=22.5,
            fan_mode=ClimateFanMode.LOW,
        )
        s = await watch.until(by_id["heat_pump"].key, lambda s: s.mode == ClimateMode.HEAT)
        assert (s.target_temperature, s.fan_mode) == (22.5, ClimateFanMode.LOW)
        cli.light_command(by_id["lamp"].key, state=True, color_temperature=300)
        s = await watch.until(by_id["lamp"].key, lambda s: s.state)
        assert s.color_temperature == 300
        # sub-devices: same name and key, told apart by device_id
        relay = by_id["relay"]
        cli.switch_command(relay.key, True, device_id=7)
        await watch.until(relay.key, lambda s: s.state, device_id=7)
        assert not watch.latest[(relay.key, 0)].state
        await cli.device_info()
        kinds = [r.kind for r in kitchen.received]
        assert kinds == [
            "cover",
            "fan",
            "lock",
            "valve",
            "media_player",
            "climate",
            "light",
            "switch",
        ]
        assert kitchen.received[-1].device_id == 7
        assert kitchen.received[2].args == {"command": "unlock"}
        assert kitchen.received[5].args["mode"] == "heat"
    finally:
        await cli.disconnect()


# ---------------------------------------------------------------- user actions


async def test_execute_service_without_response(
    contract_device: ContractDevice, connected: APIClient
) -> None:
    _, services = await _entities(connected)
    result = await connected.execute_service(
        services["send_tv_command"], {"box": 3, "channel": "206"}
    )
    assert result is None
    await connected.device_info()
    assert contract_device.actions_run is not None
    await eventually(lambda: {"box": 3, "channel": "206"} in contract_device.actions_run())
    if contract_device.sim is not None:
        last = contract_device.sim.received[-1]
        assert (last.kind, last.object_id, last.args) == (
            "action",
            "send_tv_command",
            {"data": {"box": 3, "channel": "206"}},
        )


async def test_execute_service_with_response(connected: APIClient) -> None:
    by_id, services = await _entities(connected)
    connected.select_command(by_id["input"].key, "HDMI 2")
    action = services["get_status"]
    mode = action.supports_response.name
    # STATUS actions answer success only; ONLY/OPTIONAL ones carry JSON data
    result = await connected.execute_service(
        action, {}, return_response=mode != "STATUS", timeout=5.0
    )
    assert result is not None and result.success and result.error_message == ""
    if mode == "STATUS":
        assert result.response_data == b""
    else:
        assert json.loads(result.response_data)["input"] == "HDMI 2"


@pytest.mark.parametrize("return_response", [False, True])
async def test_action_without_response_never_answers_but_runs(
    contract_device: ContractDevice, connected: APIClient, return_response: bool
) -> None:
    _, services = await _entities(connected)
    with pytest.raises(TimeoutError):  # the client's own timeout, builtin TimeoutError
        await connected.execute_service(
            services["send_tv_command"],
            {"box": 1, "channel": "2"},
            return_response=return_response,
            timeout=0.3,
        )
    assert contract_device.actions_run is not None
    await eventually(lambda: contract_device.actions_run() == [{"box": 1, "channel": "2"}])


@pytest.mark.needs("all_kinds")
async def test_action_argument_types_and_response_modes(contract_device: ContractDevice) -> None:
    kitchen = contract_device.kitchen
    assert kitchen is not None
    cli = APIClient("127.0.0.1", kitchen.port, None, noise_psk=contract_device.psk)
    await cli.connect(login=True)
    try:
        _, services = await _entities(cli)
        data = {
            "bool": True,
            "int": -7,
            "float": 1.5,
            "string": "s",
            "bools": [True, False],
            "ints": [1, -2],
            "floats": [0.5],
            "strings": ["a", "b"],
        }
        await cli.execute_service(services["all_types"], data)
        opt = await cli.execute_service(services["opt"], {}, return_response=True, timeout=5)
        opt_status = await cli.execute_service(
            services["opt"], {}, return_response=False, timeout=5
        )
        status = await cli.execute_service(
            services["status_only"], {}, return_response=False, timeout=5
        )
        failed = await cli.execute_service(services["fails"], {}, return_response=True, timeout=5)
        assert opt is not None and json.loads(opt.response_data) == {"ok": True}
        assert opt_status is not None and opt_status.success and opt_status.response_data == b""
        assert status is not None and status.success
        assert failed is not None and (failed.success, failed.error_message) == (False, "boom")
        assert kitchen.received[0].args == {"data": data}
    finally:
        await cli.disconnect()


# ---------------------------------------------------------------- failures the client sees


@pytest.mark.needs("noise")
async def test_wrong_key(contract_device: ContractDevice) -> None:
    cli = contract_device.client(noise_psk=OTHER_KEY)
    with pytest.raises(InvalidEncryptionKeyAPIError, match="Invalid encryption key"):
        await cli.connect(login=True, log_errors=False)


@pytest.mark.needs("noise")
async def test_missing_key(contract_device: ContractDevice) -> None:
    cli = contract_device.client(noise_psk=None)
    with pytest.raises(RequiresEncryptionAPIError):
        await cli.connect(login=True, log_errors=False)


@pytest.mark.needs("plaintext")
async def test_key_to_plaintext_device(contract_device: ContractDevice) -> None:
    cli = contract_device.client(noise_psk=OTHER_KEY)
    with pytest.raises(EncryptionPlaintextAPIError):
        await cli.connect(login=True, log_errors=False)


@pytest.mark.needs("faults")
async def test_connection_refused_then_back(contract_device: ContractDevice) -> None:
    assert contract_device.sim is not None
    await contract_device.sim.set_offline(True)
    with pytest.raises(SocketAPIError) as info:
        await contract_device.client().connect(login=True, log_errors=False)
    assert isinstance(info.value.__cause__, ConnectionRefusedError)
    await contract_device.sim.set_offline(False)
    cli = contract_device.client()
    await cli.connect(login=True, log_errors=False)
    await cli.disconnect()


@pytest.mark.needs("faults")
async def test_silent_device(contract_device: ContractDevice) -> None:
    assert contract_device.sim is not None
    contract_device.sim.faults.silent = True
    cli = contract_device.client()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await cli.connect(login=True, log_errors=False)
    assert contract_device.sim.recorder.connections[-1].event in ("open", "close")


@pytest.mark.needs("faults")
async def test_device_goes_silent_mid_session(
    contract_device: ContractDevice, connected: APIClient
) -> None:
    assert contract_device.sim is not None
    _, services = await _entities(connected)
    contract_device.sim.faults.silent = True
    with pytest.raises(TimeoutError):
        await connected.execute_service(
            services["get_status"], {}, return_response=True, timeout=0.3
        )
    contract_device.sim.faults.silent = False  # so the fixture's disconnect is answered


async def test_max_connections_exceeded(contract_device: ContractDevice) -> None:
    # firmware accepts, then close()s at once: FIN (EOF) or, when the client's first bytes had
    # already arrived, RST; with Noise a reset during the hello reads as EncryptionHelloAPIError
    expected: tuple[type[Exception], ...] = (
        (EncryptionHelloAPIError, SocketClosedAPIError)
        if contract_device.psk
        else (SocketClosedAPIError, ReadFailedAPIError)
    )
    held: list[APIClient] = []
    try:
        with pytest.raises(expected):
            for _ in range(MAX_CONNECTIONS_LIMIT + 1):  # firmware allows at most 20
                cli = contract_device.client()
                await cli.connect(login=True, log_errors=False)
                held.append(cli)
        assert 1 <= len(held) <= MAX_CONNECTIONS_LIMIT
        await held[0].device_info()  # the connections holding the slots are unaffected
        sim = contract_device.sim
        if sim is not None:
            assert len(held) == sim.max_connections
            assert sim.recorder.connections[-1].event == "reject"
            assert sim.recorder.max_concurrent(sim.name) == len(held)
    finally:
        for cli in held:
            await cli.disconnect()


@pytest.mark.needs("faults")
async def test_drop_mid_session(contract_device: ContractDevice, connected: APIClient) -> None:
    sim = contract_device.sim
    assert sim is not None
    (session,) = sim.sessions
    sim.faults.drop_after = session.handled  # the next message is not handled
    with pytest.raises(SocketClosedAPIError, match="EOF received"):
        await connected.device_info()
    with pytest.raises(ConnectionNotEstablishedAPIError):
        connected.switch_command(fnv1("tv_power"), True)


@pytest.mark.needs("shutdown")
async def test_device_initiated_disconnect_then_refused(contract_device: ContractDevice) -> None:
    assert contract_device.shutdown is not None
    cli = contract_device.client()
    events: list[Any] = []
    await cli.connect(login=True)
    cli.add_connection_closed_callback(events.append)
    await contract_device.shutdown()
    await eventually(lambda: bool(events))
    assert events[0].expected_disconnect is True and events[0].error is None
    if contract_device.sim is not None:
        assert contract_device.sim.recorder.connections[-1].reason == "disconnect acknowledged"
    with pytest.raises(SocketAPIError) as info:
        await contract_device.client().connect(login=True, log_errors=False)
    assert isinstance(info.value.__cause__, ConnectionRefusedError)
