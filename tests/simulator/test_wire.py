"""Bytes on the wire, checked against the captures in docs/esphome-protocol.md §2."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from cmdctl.simulator import DeviceSpec, EntitySpec, Fleet, SubDevice, venue
from cmdctl.simulator.framing import NoiseFrames, PlainFrames
from cmdctl.simulator.proto import pb

# HelloRequest(client_info="cmdctl", 1, 19) as captured from the real client
HELLO = bytes.fromhex("000c010a06636d6463746c10011813")
HELLO_1_10 = bytes.fromhex("000c010a06636d6463746c1001180a")
PING = bytes.fromhex("000007")
LIST_ENTITIES = bytes.fromhex("00000b")
READ_WAIT = 2.0  # seconds to wait for the device on 127.0.0.1


async def _exchange(port: int, data: bytes, *, chunks: int = 1) -> bytes:
    """Send `data` (in `chunks` writes), then read until EOF or a pause."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    step = max(1, len(data) // chunks)
    out = b""
    try:
        for i in range(0, len(data), step):
            writer.write(data[i : i + step])
            await writer.drain()
            if chunks > 1:
                await asyncio.sleep(0.002)
        while True:
            async with asyncio.timeout(0.3 if out else READ_WAIT):
                chunk = await reader.read(65536)
            if not chunk:
                break
            out += chunk
    except TimeoutError:
        pass
    except ConnectionResetError:
        pass
    writer.close()
    return out


def _spec(encrypted: bool = False, name: str = "sim-dev"):  # type: ignore[no-untyped-def]
    """A device like the one the captures come from: ESPHome 2026.1, API 1.14."""
    return replace(
        venue(1, encrypted=encrypted)[0], name=name, esphome_version="2026.1.0", api_minor=14
    )


async def test_hello_response_bytes_match_capture() -> None:
    async with Fleet([_spec()]) as fleet:
        out = await _exchange(fleet.devices[0].port, HELLO)
    expected = bytes.fromhex("0017020801100e1a08323032362e312e302207") + b"sim-dev"
    assert out == expected


async def test_plaintext_client_to_noise_device_gets_reject_frame() -> None:
    async with Fleet([_spec(encrypted=True)]) as fleet:
        out = await _exchange(fleet.devices[0].port, HELLO)
    assert out == b"\x01\x00\x13\x01Bad indicator byte"


async def test_noise_client_to_plaintext_device_gets_raw_bad_indicator() -> None:
    async with Fleet([_spec()]) as fleet:
        out = await _exchange(fleet.devices[0].port, b"\x01\x00\x00\x01\x00\x31\x00" + bytes(48))
    assert out == b"\x00Bad indicator byte"


async def test_device_info_before_hello_closes() -> None:
    async with Fleet([_spec()]) as fleet:
        out = await _exchange(fleet.devices[0].port, bytes.fromhex("000009") + HELLO)
        assert fleet.recorder.connections[-1].reason == "device info before hello"
    assert out == b""


async def test_unknown_type_before_hello_is_ignored_and_frames_may_split() -> None:
    unknown = bytes.fromhex("0000c801")  # type 200, empty payload
    async with Fleet([_spec()]) as fleet:
        out = await _exchange(fleet.devices[0].port, unknown + HELLO + PING, chunks=19)
    messages = PlainFrames().split(out)
    assert [t for t, _ in messages] == [2, 8]  # HelloResponse, PingResponse


async def test_object_id_never_sent_at_api_1_19() -> None:
    # ESPHome 2026.10 omits it even for a client announcing 1.10 (tests/firmware/README.md)
    spec = replace(venue(1, encrypted=False)[0], esphome_version="2026.10.0", api_minor=19)
    async with Fleet([spec]) as fleet:
        port = fleet.devices[0].port
        old = PlainFrames().split(await _exchange(port, HELLO_1_10 + LIST_ENTITIES))
    hello = pb.HelloResponse.FromString(old[0][1])
    assert (hello.api_version_minor, hello.server_info) == (19, "2026.10.0")
    switch = pb.ListEntitiesSwitchResponse.FromString(dict(old)[17])
    assert (switch.name, switch.object_id) == ("TV Power", "")


async def test_object_id_only_for_clients_below_1_14() -> None:
    async with Fleet([_spec()]) as fleet:
        port = fleet.devices[0].port
        old = PlainFrames().split(await _exchange(port, HELLO_1_10 + LIST_ENTITIES))
        new = PlainFrames().split(await _exchange(port, HELLO + LIST_ENTITIES))
    old_switch = pb.ListEntitiesSwitchResponse.FromString(dict(old)[17])
    new_switch = pb.ListEntitiesSwitchResponse.FromString(dict(new)[17])
    assert (old_switch.object_id, new_switch.object_id) == ("tv_power", "")
    assert old[-1] == (19, b"") and new[-1] == (19, b"")  # ListEntitiesDoneResponse


async def test_max_connections_reject_sends_no_bytes() -> None:
    spec = replace(_spec(), max_connections=1)
    async with Fleet([spec]) as fleet:
        port = fleet.devices[0].port
        _, holder = await asyncio.open_connection("127.0.0.1", port)
        out = await _exchange(port, HELLO)
        holder.close()
        assert [e.event for e in fleet.recorder.connections[:2]] == ["open", "reject"]
    assert out == b""


messages = st.lists(st.tuples(st.integers(0, 400), st.binary(max_size=300)), min_size=1, max_size=8)


@settings(max_examples=60, deadline=None)
@given(messages, st.integers(1, 50))
def test_plain_frames_survive_any_chunking(items: list[tuple[int, bytes]], size: int) -> None:
    stream = b"".join(PlainFrames.encode(t, p) for t, p in items)
    frames = PlainFrames()
    got: list[tuple[int, bytes]] = []
    for i in range(0, len(stream), size):
        got += frames.split(stream[i : i + size])
    assert got == items


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=300), min_size=1, max_size=8), st.integers(1, 50))
def test_noise_frames_survive_any_chunking(bodies: list[bytes], size: int) -> None:
    stream = b"".join(b"\x01" + len(b).to_bytes(2, "big") + b for b in bodies)
    frames = NoiseFrames(bytes(32), "n", "00:00:00:00:00:00")
    got: list[bytes] = []
    for i in range(0, len(stream), size):
        got += frames.split(stream[i : i + size])
    assert got == bodies


async def test_batched_pushes_of_sub_devices_sharing_a_key_are_both_sent() -> None:
    relays = (EntitySpec("switch", "Relay"), EntitySpec("switch", "Relay", device_id=7))
    spec = DeviceSpec(
        name="kit", entities=relays, sub_devices=(SubDevice(7, "Garden"),), batch_delay=0.05
    )
    async with Fleet([spec]) as fleet:
        key = relays[0].key
        commands = [pb.SwitchCommandRequest(key=key, state=True, device_id=d) for d in (0, 7)]
        request = HELLO + bytes.fromhex("000014")  # SubscribeStatesRequest
        request += b"".join(PlainFrames.encode(33, c.SerializeToString()) for c in commands)
        out = PlainFrames().split(await _exchange(fleet.devices[0].port, request))
    pushed = [pb.SwitchStateResponse.FromString(p) for t, p in out if t == 26]
    assert [(s.device_id, s.state) for s in pushed] == [
        (0, False),
        (7, False),
        (0, True),
        (7, True),
    ]
