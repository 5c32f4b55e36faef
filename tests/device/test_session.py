"""DeviceSession against the simulator, with the real aioesphomeapi client over real TCP."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import socket
import time
import traceback
from dataclasses import replace

import pytest

from cmdctl.core.errors import (
    DeliveryUnknown,
    DeviceAmbiguous,
    DeviceError,
    DeviceRejected,
    DeviceUnavailable,
)
from cmdctl.core.model import Command
from cmdctl.device.fleetview import fetch_entities, probe
from cmdctl.device.segment import Outcome
from cmdctl.device.transport import DeviceSession
from cmdctl.inputs.inventory import Secret
from cmdctl.simulator import Fleet, VirtualDevice

from .helpers import address, tv_spec


def outcome(result: Outcome | DeviceError) -> Outcome:
    assert isinstance(result, Outcome), result
    return result


def received(dev: VirtualDevice) -> list[tuple[str, dict[str, object]]]:
    return [(r.selector, r.args) for r in dev.received]


# -- every command kind ------------------------------------------------------------------------


async def test_every_tv_command_is_confirmed_or_delivered(tv: VirtualDevice) -> None:
    commands = [
        Command("switch", "tv_power", {"state": True}),
        Command("select", "Input", {"option": "Cable"}),
        Command("number", "volume", {"value": 40.0}),
        Command("text", "channel", {"value": "206"}),
        Command("light", "backlight", {"state": True, "brightness": 0.4, "rgb": [0.5, 0, 0],
                                       "effect": "strobe", "transition": 0.5}),
        Command("button", "identify", {}),
        Command("action", "send_tv_command", {"data": {"box": 2, "channel": "206"}}),
        Command("action", "get_status", {}),
    ]
    async with DeviceSession(address(tv)) as session:
        results = [outcome(r) for r in await session.execute_many(commands)]
    assert [r.status for r in results] == ["confirmed"] * 5 + ["delivered"] * 3
    assert json.loads(results[-1].detail)["input"] == "Cable"  # the action's response
    assert [s for s, _ in received(tv)] == [
        "switch.tv_power", "select.input", "number.volume", "text.channel", "light.backlight",
        "button.identify", "action.send_tv_command", "action.get_status",
    ]
    assert all(r.accepted for r in tv.received)
    assert received(tv)[6][1] == {"data": {"box": 2, "channel": "206"}}
    assert tv.state_of("select.input") == "Cable"
    assert tv.state_of("light.backlight")["effect"] == "Strobe"
    assert tv.state_of("button.identify") == 1


async def test_every_other_kind_is_confirmed(home: VirtualDevice) -> None:
    commands = [
        Command("cover", "blind", {"position": 0.5, "tilt": 0.25}),
        Command("fan", "ceiling_fan", {"state": True, "speed_level": 3, "oscillating": True,
                                       "direction": "reverse", "preset_mode": "Breeze"}),
        Command("lock", "door", {"command": "lock"}),
        Command("valve", "water", {"position": 1.0}),
        Command("media_player", "speaker", {"volume": 0.3}),
        Command("media_player", "Speaker", {"command": "mute"}),
        Command("climate", "heat_pump", {"mode": "heat", "target_temperature": 21.5,
                                         "fan_mode": "low", "preset": "away"}),
        Command("light", "lamp", {"state": True, "color_temperature": 250}),
        Command("switch", "Garden/relay", {"state": True}),
        Command("switch", "0/relay", {"state": True}),
    ]
    async with DeviceSession(address(home)) as session:
        results = await session.execute_many(commands)
    statuses = [outcome(r).status for r in results]
    # "mute" and "volume" address the same entity: only the last one in a batch is verified.
    assert statuses == ["confirmed"] * 4 + ["delivered"] + ["confirmed"] * 5
    assert [(r.object_id, r.device_id, r.accepted) for r in home.received][-2:] == [
        ("relay", 7, True),
        ("relay", 0, True),
    ]


async def test_actions_with_responses(home: VirtualDevice) -> None:
    async with DeviceSession(address(home)) as session:
        opt = await session.execute(Command("action", "opt", {}))
        status = await session.execute(Command("action", "status_only", {}))
        scene = await session.execute(
            Command("action", "scene", {"data": {"levels": [1, 0.5], "names": ["a"]}})
        )
        with pytest.raises(DeviceRejected, match=r"home: action.fails failed: boom"):
            await session.execute(Command("action", "fails", {}))
    assert (opt.status, status.status, scene.status) == ("delivered",) * 3
    assert received(home)[2] == ("action.scene", {"data": {"levels": [1.0, 0.5], "names": ["a"]}})


async def test_stop_commands_end_delivered(home: VirtualDevice) -> None:
    async with DeviceSession(address(home)) as session:
        result = await session.execute(Command("cover", "blind", {"stop": True}))
    assert result.status == "delivered"


# -- rejected before anything is sent ----------------------------------------------------------


async def test_invalid_value_and_unknown_entity_never_reach_the_device(
    noise_tv: VirtualDevice,
) -> None:
    bad = [
        Command("select", "input", {"option": "HDMI 5"}),
        Command("switch", "tv_pwr", {"state": True}),
        Command("number", "volume", {"value": 100.5}),
        Command("action", "send_tv_command", {"data": {"box": 1}}),
    ]
    async with DeviceSession(address(noise_tv)) as session:
        results = await session.execute_many(bad)
        with pytest.raises(DeviceRejected) as caught:
            await session.execute(bad[0])
    assert all(isinstance(r, DeviceRejected) for r in results)
    assert str(results[0]) == (
        "bar-tv-1: select.input has no option 'HDMI 5' (options: HDMI 1, HDMI 2, Cable)"
    )
    assert str(results[1]) == "bar-tv-1: no switch 'tv_pwr' (did you mean switch.tv_power?)"
    assert not caught.value.retryable
    assert noise_tv.received == []  # the simulator's record: nothing arrived


async def test_a_rejected_command_does_not_hold_back_the_others(noise_tv: VirtualDevice) -> None:
    commands = [
        Command("select", "input", {"option": "HDMI 5"}),
        Command("select", "input", {"option": "HDMI 2"}),
    ]
    async with DeviceSession(address(noise_tv)) as session:
        bad, good = await session.execute_many(commands)
    assert isinstance(bad, DeviceRejected) and outcome(good).status == "confirmed"
    assert received(noise_tv) == [("select.input", {"option": "HDMI 2"})]


# -- faults --------------------------------------------------------------------------------------


async def connect_error(dev_address: object, **session_args: float) -> DeviceError:
    with pytest.raises(DeviceError) as caught:
        async with DeviceSession(dev_address, **session_args):  # type: ignore[arg-type]
            pass
    return caught.value


async def test_offline_device_is_unavailable_connection_refused() -> None:
    async with Fleet([tv_spec(offline=True)]) as fleet:
        dev = fleet.devices[0]
        with socket.socket() as sock:  # a port nobody listens on
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        err = await connect_error(address(dev, port=port))
    assert type(err) is DeviceUnavailable
    assert err.message == "bar-tv-1: connection refused"
    assert err.hint == "is the device powered and on the network?"


async def test_silent_device_times_out_after_the_connect_timeout() -> None:
    async with Fleet([tv_spec(silent=True)]) as fleet:
        began = time.perf_counter()
        err = await connect_error(address(fleet.devices[0]), connect_timeout=0.3)
        took = time.perf_counter() - began
    assert type(err) is DeviceUnavailable
    assert err.message == "bar-tv-1: timed out after 0.3s connecting"
    assert took < 2.0


async def test_inventory_timeout_bounds_the_whole_job() -> None:
    async with Fleet([tv_spec(silent=True)]) as fleet:
        err = await connect_error(address(fleet.devices[0], timeout=0.2))
    assert err.message == "bar-tv-1: timed out after 0.2s connecting"


async def test_wrong_key_is_rejected_and_never_shows_the_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    async with Fleet([tv_spec(wrong_key=True)]) as fleet:
        dev = fleet.devices[0]
        err = await connect_error(address(dev))
    assert caplog.text  # debug logging was on
    assert str(dev.spec.psk) not in caplog.text
    assert str(dev.spec.device_psk) not in caplog.text
    assert type(err) is DeviceRejected
    assert err.message == "bar-tv-1: wrong encryption key"
    assert dev.spec.psk is not None
    trace = "".join(traceback.format_exception(err))
    for text in (err.one_line(), repr(err), trace):
        assert dev.spec.psk not in text
        assert str(dev.spec.device_psk) not in text


async def test_missing_key_is_rejected(noise_tv: VirtualDevice) -> None:
    err = await connect_error(address(noise_tv, key=None))
    assert type(err) is DeviceRejected
    assert err.message == "bar-tv-1: device requires an encryption key"
    assert err.hint is not None and "key:" in err.hint


async def test_key_given_to_a_plaintext_device_is_rejected() -> None:
    async with Fleet([tv_spec(encrypted=False)]) as fleet:
        key = Secret(tv_spec().psk or "")
        err = await connect_error(address(fleet.devices[0], key=key))
    assert type(err) is DeviceRejected
    assert "does not use encryption" in err.message


@pytest.mark.parametrize("expect", ["name", "mac"])
async def test_another_device_at_that_address_is_rejected(
    tv: VirtualDevice, expect: str
) -> None:
    changes = {"expected_name": "bar-tv-9"}
    if expect == "mac":
        changes = {"expected_mac": "a0b765000009"}
    err = await connect_error(address(tv, **changes))
    assert type(err) is DeviceRejected
    assert err.message.startswith("bar-tv-1: answered ")
    assert f"another device at 127.0.0.1:{tv.port}" in err.message
    if expect == "name":
        assert "answered as 'bar-tv-1'" in err.message


async def test_matching_expected_name_and_mac_connect(tv: VirtualDevice) -> None:
    mac = tv.spec.mac.replace(":", "").lower()
    async with DeviceSession(address(tv, expected_name="bar-tv-1", expected_mac=mac)) as session:
        assert session.connected


async def test_max_connections_is_transient(tv: VirtualDevice) -> None:
    tv.set_max_connections(1)
    async with DeviceSession(address(tv)):
        err = await connect_error(address(tv))
    assert err.retryable
    if tv.spec.psk:  # Noise: indistinguishable from a plaintext device (esphome-protocol.md §2.4)
        assert type(err) is DeviceAmbiguous
        assert "encrypted hello" in err.message
    else:
        assert type(err) is DeviceUnavailable
        assert err.hint is not None and "slot" in err.hint
    async with DeviceSession(address(tv)) as session:  # the slot is free again
        assert session.connected


async def test_drop_mid_session_marks_sent_commands_unknown_then_recovers(
    noise_tv: VirtualDevice,
) -> None:
    commands = [Command("number", "volume", {"value": float(i)}) for i in range(20)]
    async with DeviceSession(address(noise_tv)) as session:
        noise_tv.faults.drop_after = 0  # the next message the device reads closes the connection
        results = await session.execute_many(commands, verify=False)
        assert all(isinstance(r, DeliveryUnknown) for r in results)
        assert all(r.retryable for r in results if isinstance(r, DeviceError))
        first = results[0]
        assert isinstance(first, DeviceError)
        assert re.match(r"bar-tv-1: connection (reset|closed) by the device", first.message)
        assert "delivery unknown" in first.message
        assert not session.connected
        noise_tv.faults.drop_after = None
        again = await session.execute(Command("number", "volume", {"value": 7.0}))
    assert again.status == "confirmed"
    assert noise_tv.state_of("number.volume") == 7.0
    opens = [e for e in noise_tv.recorder.connections if e.event == "open"]
    assert len(opens) == 2


async def test_device_initiated_disconnect_then_the_session_reconnects(
    noise_tv: VirtualDevice,
) -> None:
    async with DeviceSession(address(noise_tv)) as session:
        await noise_tv.disconnect_clients()
        for _ in range(100):
            if not session.connected:
                break
            await asyncio.sleep(0.01)
        assert not session.connected
        result = await session.execute(Command("switch", "tv_power", {"state": True}))
    assert result.status == "confirmed"


async def test_rebooting_device_is_unavailable_until_it_is_back(noise_tv: VirtualDevice) -> None:
    async with DeviceSession(address(noise_tv)) as session:
        reboot = asyncio.create_task(noise_tv.reboot(down=0.5))
        for _ in range(200):
            if not noise_tv.online:
                break
            await asyncio.sleep(0.01)
        with pytest.raises(DeviceUnavailable, match="connection refused"):
            await session.execute(Command("switch", "tv_power", {"state": True}))
        await reboot
        result = await session.execute(Command("switch", "tv_power", {"state": True}))
    assert result.status == "confirmed"


# -- verification --------------------------------------------------------------------------------


async def test_state_that_never_arrives_is_a_mismatch() -> None:
    async with Fleet([replace(tv_spec(), batch_delay=2.0)]) as fleet:
        dev = fleet.devices[0]
        async with DeviceSession(address(dev), verify_timeout=0.3) as session:
            result = await session.execute(Command("select", "input", {"option": "Cable"}))
    assert result.status == "mismatch" and not result.ok
    assert result.detail == "expected state='Cable', saw state='HDMI 1'"
    assert 0.3 <= result.elapsed < 1.5


async def test_late_state_push_is_still_confirmed() -> None:
    async with Fleet([replace(tv_spec(), batch_delay=0.2)]) as fleet:
        dev = fleet.devices[0]
        async with DeviceSession(address(dev)) as session:
            result = await session.execute(Command("select", "input", {"option": "Cable"}))
    assert result.status == "confirmed"
    assert result.elapsed >= 0.15


async def test_switch_already_on_is_confirmed_without_a_push(noise_tv: VirtualDevice) -> None:
    async with DeviceSession(address(noise_tv)) as session:
        await session.execute(Command("switch", "tv_power", {"state": True}))
        again = await session.execute(Command("switch", "tv_power", {"state": True}))
    assert again.status == "confirmed"


async def test_verify_off_ends_delivered(noise_tv: VirtualDevice) -> None:
    async with DeviceSession(address(noise_tv)) as session:
        result = await session.execute(Command("switch", "tv_power", {"state": True}), verify=False)
    assert result.status == "delivered"


# -- order, speed, one connection ----------------------------------------------------------------


async def test_execute_many_keeps_order_and_uses_one_connection(
    noise_tv: VirtualDevice,
) -> None:
    options = ["HDMI 1", "HDMI 2", "Cable"]
    commands = [Command("select", "input", {"option": options[i % 3]}) for i in range(99)]
    commands.append(Command("number", "volume", {"value": 55.0}))
    async with DeviceSession(address(noise_tv)) as session:
        results = await session.execute_many(commands)
    assert [r.args for r in noise_tv.received] == [dict(c.args) for c in commands]
    statuses = [outcome(r).status for r in results]
    assert statuses == ["delivered"] * 98 + ["confirmed", "confirmed"]
    assert noise_tv.state_of("select.input") == "Cable"
    assert noise_tv.recorder.max_concurrent("bar-tv-1") == 1


async def test_the_connection_is_closed_on_exit(noise_tv: VirtualDevice) -> None:
    async with DeviceSession(address(noise_tv)) as session:
        await session.execute(Command("button", "identify", {}))
    for _ in range(100):
        if not noise_tv.sessions:
            break
        await asyncio.sleep(0.01)
    assert not noise_tv.sessions


# -- probe and entity listing --------------------------------------------------------------------


async def test_probe_reports_what_answered(tv: VirtualDevice) -> None:
    result = await probe(address(tv))
    assert result.ok and result.error is None
    assert (result.name, result.friendly_name) == ("bar-tv-1", "Bar TV 1")
    assert result.api_version == f"1.{tv.spec.api_minor}"
    assert result.encrypted is (tv.spec.psk is not None)
    assert result.connect_seconds is not None and result.rtt_seconds is not None
    assert result.entities == 8


async def test_probe_failure_is_data() -> None:
    async with Fleet([tv_spec(wrong_key=True)]) as fleet:
        result = await probe(address(fleet.devices[0]))
    assert not result.ok
    assert isinstance(result.error, DeviceRejected)


async def test_fetch_entities_lists_entities_and_actions(home: VirtualDevice) -> None:
    listing = await fetch_entities(address(home))
    rows = {(row.selector, row.device_id): row for row in listing.rows}
    assert ("switch.relay", 7) in rows and ("switch.relay", 0) in rows
    assert rows[("action.fails", 0)].details == "() → response (only)"
    assert listing.friendly_name == "Home"



async def test_action_without_an_answer_is_delivery_unknown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("cmdctl.device.transport.ACTION_TIMEOUT", 0.2)
    async with Fleet([tv_spec(encrypted=False)]) as fleet:
        dev = fleet.devices[0]
        async with DeviceSession(address(dev)) as session:
            dev.faults.silent = True
            (result,) = await session.execute_many([Command("action", "get_status", {})])
            assert session.connected  # an unanswered action is not a broken connection
    assert isinstance(result, DeliveryUnknown)
    assert result.message == (
        "bar-tv-1: action.get_status: no answer after 0.2s (it may or may not have run)"
    )


async def test_barrier_timeout_leaves_sent_commands_unknown(
    monkeypatch: pytest.MonkeyPatch, noise_tv: VirtualDevice
) -> None:
    monkeypatch.setattr("cmdctl.device.transport.BARRIER_TIMEOUT", 0.2)
    async with DeviceSession(address(noise_tv)) as session:
        noise_tv.faults.silent = True
        results = await session.execute_many([Command("button", "identify", {})] * 2)
    assert [type(r) for r in results] == [DeliveryUnknown, DeliveryUnknown]
    assert str(results[0]) == (
        "bar-tv-1: timed out after 0.2s waiting for delivery (after sending; delivery unknown)"
    )


async def test_commands_before_an_action_are_confirmed_before_it_is_sent() -> None:
    # An action may change any entity (real firmware: send_tv_command rewrites the channel), so
    # what came before it is confirmed first; the device's batch delay shows up as the gap.
    async with Fleet([replace(tv_spec(), batch_delay=0.3)]) as fleet:
        dev = fleet.devices[0]
        async with DeviceSession(address(dev)) as session:
            results = await session.execute_many(
                [
                    Command("select", "input", {"option": "Cable"}),
                    Command("action", "send_tv_command", {"data": {"box": 1, "channel": "5"}}),
                    Command("button", "identify", {}),
                ]
            )
    assert [outcome(r).status for r in results] == ["confirmed", "delivered", "delivered"]
    select, action, button = dev.received
    assert action.ts - select.ts >= 0.25
    assert button.ts - action.ts < 0.25  # nothing left to confirm: no wait before the button


async def test_an_inventory_device_is_an_address(noise_tv: VirtualDevice) -> None:
    from cmdctl.inputs.inventory import Device

    mac = noise_tv.spec.mac.replace(":", "").lower()
    psk = noise_tv.spec.psk or ""
    device = Device("bar-tv-1", "127.0.0.1", noise_tv.port, key=Secret(psk),
                    expected_name="bar-tv-1", expected_mac=mac, timeout=5.0)
    async with DeviceSession(device) as session:
        assert session.job_timeout == 5.0
        result = await session.execute(Command("switch", "tv_power", {"state": True}))
    assert result.status == "confirmed"


async def test_read_states_returns_what_the_device_reports_and_leaves_out_the_silent(
    tv: VirtualDevice,
) -> None:
    async with DeviceSession(address(tv)) as session:
        await session.execute(Command("number", "volume", {"value": 33.0}))
        volume = session.plan(Command("number", "volume", {"value": 1.0}))
        power = session.plan(Command("switch", "tv_power", {"state": True}))
        silent = (424242, 0)  # no such entity: nothing ever arrives for it
        began = time.monotonic()
        states = await session.read_states(
            [(volume.key, volume.device_id), (power.key, power.device_id), silent], 0.3
        )
        assert time.monotonic() - began >= 0.3  # waited for the silent one, then gave up
    assert states[(volume.key, volume.device_id)].state == 33.0
    assert (power.key, power.device_id) in states
    assert silent not in states
