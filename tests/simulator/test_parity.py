"""Firmware behaviours the simulator must match, found by running both side by side.

Each test runs on every target (conftest.py); docs/simulator-vs-firmware.md lists the differences
these came from and the ones that remain.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import pytest
from aioesphomeapi import APIClient
from aioesphomeapi.model import LightColorCapability

from cmdctl.simulator.framing import PlainFrames
from cmdctl.simulator.proto import TYPE_OF, pb

from .helpers import STATE_WAIT, ContractDevice, StateWatch

NAMES = {number: cls.__name__ for cls, number in TYPE_OF.items()}
HELLO = pb.HelloRequest(client_info="parity", api_version_major=1, api_version_minor=19)
# firmware: actions first, then entities by type (esphome/core/entity_types.h), then done
LISTING = [
    ("ListEntitiesServicesResponse", "send_tv_command"),
    ("ListEntitiesServicesResponse", "get_status"),
    ("ListEntitiesLightResponse", "Backlight"),
    ("ListEntitiesSwitchResponse", "TV Power"),
    ("ListEntitiesButtonResponse", "Identify"),
    ("ListEntitiesNumberResponse", "Volume"),
    ("ListEntitiesTextResponse", "Channel"),
    ("ListEntitiesSelectResponse", "Input"),
    ("ListEntitiesDoneResponse", ""),
]
INITIAL_ORDER = ["backlight", "tv_power", "volume", "channel", "input"]
READ_QUIET = 0.3  # a raw read stops after this long without bytes (the listing takes ~50 ms)
# a batched echo is 100–117 ms on firmware; below this there was no batching at all
MIN_BATCHED_ECHO = 0.09


def _frame(msg: Any) -> bytes:
    return PlainFrames.encode(TYPE_OF[type(msg)], msg.SerializeToString())


async def _raw(device: ContractDevice, data: bytes) -> tuple[list[tuple[str, Any]], str]:
    """Send raw plaintext bytes; the messages read back, and how the stream ended."""
    reader, writer = await asyncio.open_connection(device.host, device.port)
    writer.write(data)
    frames, stream, end = PlainFrames(), b"", "open"
    try:
        while True:
            async with asyncio.timeout(READ_QUIET if stream else STATE_WAIT):
                chunk = await reader.read(65536)
            if not chunk:
                end = "eof"
                break
            stream += chunk
    except TimeoutError:
        pass
    except ConnectionResetError:
        end = "reset"
    finally:
        writer.close()
    if stream.startswith(b"\x00Bad indicator"):
        return [("raw", stream)], end
    out = []
    for msg_type, payload in frames.split(stream):
        name = NAMES.get(msg_type, str(msg_type))
        cls = getattr(pb, name, None)
        out.append((name, cls.FromString(payload) if cls else payload))
    return out, end


async def _entities(cli: APIClient) -> dict[str, Any]:
    _, entities, _ = await cli.device_info_and_list_entities()
    return {e.object_id: e for e in entities}


# ---------------------------------------------------------------- hello, device info, listing


async def test_hello_and_device_info_identify_the_firmware(
    contract_device: ContractDevice, connected: APIClient
) -> None:
    info = await connected.device_info()
    version = connected.api_version
    assert version is not None and (version.major, version.minor) == (1, 19)
    assert info.esphome_version == "2026.10.0"
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}", info.compilation_time)
    assert info.model and info.manufacturer
    assert (info.uses_password, info.has_deep_sleep, info.webserver_port) == (False, False, 0)


@pytest.mark.needs("plaintext")
async def test_listing_order_and_object_id_on_the_wire(contract_device: ContractDevice) -> None:
    old_hello = pb.HelloRequest(client_info="old", api_version_major=1, api_version_minor=10)
    for hello in (HELLO, old_hello):
        messages, _ = await _raw(contract_device, _frame(hello) + _frame(pb.ListEntitiesRequest()))
        assert messages[0][0] == "HelloResponse"
        assert messages[0][1].server_info == "2026.10.0"
        listing = messages[1:]
        assert [(name, getattr(m, "name", "")) for name, m in listing] == LISTING
        # never on the wire at 1.19, not even for a client announcing 1.10
        assert all(getattr(m, "object_id", "") == "" for _, m in listing)
    light = listing[2][1]
    assert (light.min_mireds, light.max_mireds) == (0, 0)  # an RGB-only light has none


async def test_initial_states_order_and_values(connected: APIClient) -> None:
    by_id = await _entities(connected)
    names = {e.key: obj for obj, e in by_id.items()}
    seen: list[Any] = []
    done = asyncio.Event()

    def on_state(state: Any) -> None:
        seen.append(state)
        if len(seen) == len(INITIAL_ORDER):
            done.set()

    connected.subscribe_states(on_state)
    async with asyncio.timeout(STATE_WAIT):
        await done.wait()
    assert [names[s.key] for s in seen] == INITIAL_ORDER  # the button has no state
    light, switch, number, text, select = seen
    assert (switch.state, select.state, number.state) == (False, "HDMI 1", 0.0)
    assert (text.state, text.missing_state) == ("", True)  # a template text with no value yet
    assert (light.state, light.brightness, light.effect) == (False, 1.0, "None")
    assert (light.red, light.green, light.blue, light.color_temperature) == (1.0, 1.0, 1.0, 0.0)
    assert light.color_mode & LightColorCapability.RGB


# ---------------------------------------------------------------- batching


@pytest.mark.firmware_timing
async def test_state_echo_is_batched(contract_device: ContractDevice, connected: APIClient) -> None:
    by_id = await _entities(connected)
    watch = StateWatch()
    connected.subscribe_states(watch)
    power = by_id["tv_power"].key
    first = await watch.until(power, lambda s: True)
    began = time.monotonic()
    connected.switch_command(power, not first.state)
    await watch.until(power, lambda s: s.state != first.state)
    echo = time.monotonic() - began
    # even on an idle connection firmware waits for the batch timer: 100 ms plus a loop tick
    assert MIN_BATCHED_ECHO <= echo <= contract_device.push_window


@pytest.mark.firmware_timing
async def test_commands_sent_together_are_echoed_together_latest_per_entity(
    contract_device: ContractDevice, connected: APIClient
) -> None:
    by_id = await _entities(connected)
    arrived: list[tuple[float, Any]] = []
    connected.subscribe_states(lambda s: arrived.append((time.monotonic(), s)))
    await asyncio.sleep(contract_device.push_window)  # initial states are in
    arrived.clear()
    power, source, volume = by_id["tv_power"].key, by_id["input"].key, by_id["volume"].key
    began = time.monotonic()
    connected.switch_command(power, True)
    connected.select_command(source, "Cable")
    for value in (10, 20, 30):
        connected.number_command(volume, value)
    await connected.device_info()  # barrier: all five handled
    await asyncio.sleep(contract_device.push_window)
    assert [(s.key, s.state) for _, s in arrived] == [
        (power, True),
        (source, "Cable"),
        (volume, 30),
    ]
    times = [t - began for t, _ in arrived]
    assert max(times) - min(times) < 0.02  # one batch
    assert min(times) >= MIN_BATCHED_ECHO


# ---------------------------------------------------------------- what a command publishes


async def test_republish_rules(contract_device: ContractDevice, connected: APIClient) -> None:
    by_id = await _entities(connected)
    watch = StateWatch()
    connected.subscribe_states(watch)
    keys = {obj: by_id[obj].key for obj in ("input", "volume", "channel", "backlight")}
    for key in keys.values():
        await watch.until(key, lambda s: True)

    async def pushed(obj: str, send: Any) -> Any:
        """Send, then wait for the entity's next push (or fail)."""
        before = watch.count[(keys[obj], 0)]
        send()
        async with asyncio.timeout(STATE_WAIT):
            while watch.count[(keys[obj], 0)] == before:
                await asyncio.sleep(0.005)
        return watch.latest[(keys[obj], 0)]

    # the value they already have: republished (only a switch deduplicates)
    assert (
        await pushed("input", lambda: connected.select_command(keys["input"], "HDMI 1"))
    ).state == "HDMI 1"
    assert (await pushed("volume", lambda: connected.number_command(keys["volume"], 0))).state == 0
    # an off-step number is taken as is: firmware does not enforce `step`
    assert (
        await pushed("volume", lambda: connected.number_command(keys["volume"], 40.4))
    ).state == pytest.approx(40.4)
    assert (
        await pushed("volume", lambda: connected.number_command(keys["volume"], 40.4))
    ).state == pytest.approx(40.4)
    text = await pushed("channel", lambda: connected.text_command(keys["channel"], "206"))
    assert (text.state, text.missing_state) == ("206", False)
    assert (
        await pushed("channel", lambda: connected.text_command(keys["channel"], "206"))
    ).state == "206"
    light = keys["backlight"]
    on = await pushed(
        "backlight", lambda: connected.light_command(light, state=True, brightness=0.5)
    )
    again = await pushed(
        "backlight", lambda: connected.light_command(light, state=True, brightness=0.5)
    )
    assert (on.state, on.brightness) == (again.state, again.brightness) == (True, 0.5)
    # an unknown effect is dropped, and the light republishes with its effect unchanged
    bogus = await pushed("backlight", lambda: connected.light_command(light, effect="Bogus"))
    assert (bogus.state, bogus.effect) == (True, "None")
    # colour temperature on an RGB-only light: ignored, republished unchanged
    ct = await pushed("backlight", lambda: connected.light_command(light, color_temperature=300))
    assert (ct.color_temperature, ct.brightness) == (0.0, 0.5)


# ---------------------------------------------------------------- connection edge cases


@pytest.mark.needs("plaintext")
async def test_requests_before_hello(contract_device: ContractDevice) -> None:
    ping, _ = await _raw(contract_device, _frame(pb.PingRequest()))
    assert [name for name, _ in ping] == ["PingResponse"]  # served before Hello
    for early in (pb.DeviceInfoRequest(), pb.SubscribeStatesRequest(), pb.ListEntitiesRequest()):
        # closed without an answer: FIN, or RST when more of the client's bytes were unread
        assert await _raw(contract_device, _frame(early)) == ([], "eof")
        assert await _raw(contract_device, _frame(early) + _frame(HELLO)) == ([], "reset")


@pytest.mark.needs("plaintext")
async def test_noise_hello_to_plaintext_device_gets_bad_indicator_then_reset(
    contract_device: ContractDevice,
) -> None:
    noise_hello = b"\x01\x00\x00" + b"\x01\x00\x31\x00" + bytes(48)
    messages, end = await _raw(contract_device, noise_hello)
    assert messages == [("raw", b"\x00Bad indicator byte")]
    assert end == "reset"  # closed with the client's bytes unread: RST, not FIN


@pytest.mark.needs("plaintext")
async def test_disconnect_request_is_answered_then_closed(
    contract_device: ContractDevice,
) -> None:
    messages, end = await _raw(contract_device, _frame(HELLO) + _frame(pb.DisconnectRequest()))
    assert [name for name, _ in messages] == ["HelloResponse", "DisconnectResponse"]
    assert end == "eof"
