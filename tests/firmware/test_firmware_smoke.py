"""Smoke test of real ESPHome host firmware, driven by the real aioesphomeapi client."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aioesphomeapi import (
    APIClient,
    EntityState,
    SupportsResponseType,
    UserService,
    UserServiceArgType,
)
from aioesphomeapi.core import ReadFailedAPIError, SocketClosedAPIError

from . import fleet
from .fleet import Instance, listen_addresses

pytestmark = pytest.mark.firmware

# Everything is on loopback: a request answers in milliseconds, a state echo in ~115 ms
# (batch_delay 100 ms); these are ceilings for a loaded 2-core CI box, not expectations.
CONNECT_TIMEOUT_S = 10.0
STATE_TIMEOUT_S = 3.0
# ESPHome's default batch_delay is 100 ms; an echo well below it would mean no batching.
MIN_BATCHED_ECHO_S = 0.05
# The device never answers return_response on an action without api.respond; wait this long.
NO_RESPONSE_WAIT_S = 0.5
ENTITY_IDS = {
    "switch": "tv_power",
    "select": "input",
    "number": "volume",
    "button": "identify",
    "text": "channel",
    "light": "backlight",
}


def fnv1(text: str) -> int:
    """ESPHome's 32-bit FNV-1 (multiply, then xor) over code points: entity and action keys."""
    value = 2166136261
    for char in text:
        value = (value * 16777619) & 0xFFFFFFFF
        value ^= ord(char)
    return value


class States:
    """Collects state pushes and waits for one that matches."""

    def __init__(self) -> None:
        self.seen: list[tuple[float, EntityState]] = []
        self._changed = asyncio.Event()

    def __call__(self, state: EntityState) -> None:
        self.seen.append((time.monotonic(), state))
        self._changed.set()

    def of(self, key: int, since: int = 0) -> list[EntityState]:
        """States pushed for one entity, from index `since` on."""
        return [state for _, state in self.seen[since:] if state.key == key]

    async def wait(
        self, key: int, match: Callable[[Any], bool], since: int
    ) -> tuple[float, EntityState]:
        """The first state for `key` after index `since` that satisfies `match`."""
        async with asyncio.timeout(STATE_TIMEOUT_S):
            while True:
                for at, state in self.seen[since:]:
                    if state.key == key and match(state):
                        return at, state
                self._changed.clear()
                await self._changed.wait()


@asynccontextmanager
async def connected(
    instance: Instance, client_info: str = "cmdctl-fw-test"
) -> AsyncIterator[APIClient]:
    """A connected client that checks the device's name; disconnects afterwards."""
    client = APIClient(
        instance.host, instance.port, None, client_info=client_info, expected_name=instance.name
    )
    async with asyncio.timeout(CONNECT_TIMEOUT_S):
        await client.connect(login=True)
    try:
        yield client
    finally:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            await client.disconnect()


async def test_device_info_entities_and_actions(firmware_fleet: Callable[[int], list[Instance]]):
    [device] = firmware_fleet(1)
    async with connected(device) as client:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            info, entities, actions = await client.device_info_and_list_entities()
        api_version = client.api_version

    assert api_version is not None  # from HelloResponse; server_info there is "2026.10.x"
    assert (api_version.major, api_version.minor) == (1, 19)
    assert info.name == device.name
    assert info.mac_address == "98:35:69:AB:F6:79"  # the host platform's fixed default
    assert info.model == "host"
    assert info.manufacturer == "Host"
    assert info.esphome_version.startswith("2026.10.")
    assert not info.api_encryption_supported
    assert not info.uses_password

    by_kind = {type(entity).__name__.removesuffix("Info").lower(): entity for entity in entities}
    assert {kind: entity.object_id for kind, entity in by_kind.items()} == ENTITY_IDS
    for entity in entities:
        assert entity.key == fnv1(entity.object_id), entity
    assert by_kind["select"].options == ["HDMI 1", "HDMI 2", "Cable"]
    number = by_kind["number"]
    assert (number.min_value, number.max_value, number.step) == (0.0, 100.0, 1.0)
    assert by_kind["text"].max_length == 16
    assert by_kind["light"].effects == ["None", "Pulse", "Strobe"]

    named = {action.name: action for action in actions}
    assert set(named) == {"send_tv_command", "get_status"}
    tv = named["send_tv_command"]
    assert [(arg.name, arg.type) for arg in tv.args] == [
        ("box", UserServiceArgType.INT),
        ("channel", UserServiceArgType.STRING),
    ]
    assert tv.supports_response == SupportsResponseType.NONE
    assert named["get_status"].args == []
    assert named["get_status"].supports_response == SupportsResponseType.STATUS
    assert all(action.key == fnv1(action.name) for action in actions)


async def test_commands_echo_their_state(firmware_fleet: Callable[[int], list[Instance]]):
    [device] = firmware_fleet(1)
    async with connected(device) as client:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            _, entities, _ = await client.device_info_and_list_entities()
        key = {entity.object_id: entity.key for entity in entities}
        states = States()
        client.subscribe_states(states)
        # Initial states: every stateful entity once, the button never.
        await states.wait(key["input"], lambda s: s.state == "HDMI 1", 0)
        initial = {state.key for _, state in states.seen}
        assert key["identify"] not in initial
        assert {key[o] for o in ("tv_power", "input", "volume", "channel", "backlight")} <= initial

        mark = len(states.seen)
        sent = time.monotonic()
        client.switch_command(key["tv_power"], True)
        at, _ = await states.wait(key["tv_power"], lambda s: s.state is True, mark)
        latency = at - sent
        print(f"switch command → state echo: {latency * 1000:.1f} ms")
        assert MIN_BATCHED_ECHO_S <= latency < STATE_TIMEOUT_S

        mark = len(states.seen)
        client.select_command(key["input"], "HDMI 2")
        client.number_command(key["volume"], 40)
        client.text_command(key["channel"], "206")
        client.light_command(
            key["backlight"], state=True, brightness=0.5, rgb=(1.0, 0.0, 0.0), effect="Pulse"
        )
        await states.wait(key["input"], lambda s: s.state == "HDMI 2", mark)
        await states.wait(key["volume"], lambda s: s.state == 40.0, mark)
        await states.wait(key["channel"], lambda s: s.state == "206", mark)
        _, light = await states.wait(key["backlight"], lambda s: s.state is True, mark)
        assert (light.brightness, light.red, light.green, light.blue) == (0.5, 1.0, 0.0, 0.0)
        assert light.effect == "Pulse"

        client.button_command(key["identify"])
        async with asyncio.timeout(STATE_TIMEOUT_S):
            while "identify pressed" not in device.log_tail(200):
                await asyncio.sleep(0.02)


async def test_invalid_and_repeated_commands(firmware_fleet: Callable[[int], list[Instance]]):
    [device] = firmware_fleet(1)
    async with connected(device) as client:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            _, entities, _ = await client.device_info_and_list_entities()
        key = {entity.object_id: entity.key for entity in entities}
        states = States()
        client.subscribe_states(states)
        await states.wait(key["input"], lambda s: s.state == "HDMI 1", 0)

        async def effect_of(command: Callable[[], None], flip: bool) -> list[EntityState]:
            """States the command caused, fenced by a switch toggle sent right after it."""
            mark = len(states.seen)
            command()
            # Same connection, same batch queue: anything the command published arrives by then.
            client.switch_command(key["tv_power"], flip)
            await states.wait(key["tv_power"], lambda s: s.state is flip, mark)
            return [s for _, s in states.seen[mark:] if s.key != key["tv_power"]]

        # Out-of-range, unknown and too-long values: ignored, nothing republished.
        assert await effect_of(lambda: client.select_command(key["input"], "Nope"), True) == []
        assert await effect_of(lambda: client.number_command(key["volume"], 150), False) == []
        assert await effect_of(lambda: client.number_command(key["volume"], -5), True) == []
        assert await effect_of(lambda: client.text_command(key["channel"], "x" * 17), False) == []
        # Step is not enforced: 40.4 on a step-1 number is taken as is.
        [number] = await effect_of(lambda: client.number_command(key["volume"], 40.4), True)
        assert number.state == pytest.approx(40.4)
        # Repeating the current value: select, number and text publish again; the switch does not.
        [select] = await effect_of(lambda: client.select_command(key["input"], "HDMI 1"), False)
        assert select.state == "HDMI 1"
        [number] = await effect_of(lambda: client.number_command(key["volume"], 40.4), True)
        assert number.state == pytest.approx(40.4)
        [text] = await effect_of(lambda: client.text_command(key["channel"], ""), False)
        assert text.state == ""
        mark = len(states.seen)
        client.switch_command(key["tv_power"], False)  # already off
        client.text_command(key["channel"], "fence")
        await states.wait(key["channel"], lambda s: s.state == "fence", mark)
        assert states.of(key["tv_power"], mark) == []
        # An unknown effect still republishes the light, with the effect unchanged.
        [light] = await effect_of(
            lambda: client.light_command(key["backlight"], effect="Nope"), True
        )
        assert light.effect == "None"


async def test_actions(firmware_fleet: Callable[[int], list[Instance]]):
    [device] = firmware_fleet(1)
    async with connected(device) as client:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            _, entities, actions = await client.device_info_and_list_entities()
        channel = next(e.key for e in entities if e.object_id == "channel")
        named: dict[str, UserService] = {action.name: action for action in actions}
        states = States()
        client.subscribe_states(states)

        mark = len(states.seen)
        fire = await client.execute_service(named["send_tv_command"], {"box": 3, "channel": "512"})
        assert fire is None  # no return_response: fire and forget
        await states.wait(channel, lambda s: s.state == "512", mark)
        assert "send_tv_command box=3 channel=512" in device.log_tail(200)

        for wanted in (True, False):
            response = await client.execute_service(
                named["get_status"], {}, return_response=wanted, timeout=CONNECT_TIMEOUT_S
            )
            assert response is not None
            assert (response.success, response.error_message, response.response_data) == (
                True,
                "",
                b"",
            )
            assert response.call_id > 0
        assert await client.execute_service(named["get_status"], {}) is None

        # An action without api.respond never answers: the client's own timeout fires.
        mark = len(states.seen)
        with pytest.raises(TimeoutError):
            await client.execute_service(
                named["send_tv_command"],
                {"box": 4, "channel": "7"},
                return_response=True,
                timeout=NO_RESPONSE_WAIT_S,
            )
        # ... but it still ran.
        await states.wait(channel, lambda s: s.state == "7", mark)


async def test_ninth_client_is_closed_at_once(firmware_fleet: Callable[[int], list[Instance]]):
    [device] = firmware_fleet(1)
    clients: list[APIClient] = []
    try:
        for n in range(8):  # the host platform's default max_connections
            client = APIClient(device.host, device.port, None, client_info=f"slot-{n}")
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                await client.connect(login=True)
            clients.append(client)
        ninth = APIClient(device.host, device.port, None, client_info="ninth")
        started = time.monotonic()
        # Accepted, then closed at once. If the Hello is already in the device's receive buffer,
        # close() sends a reset instead of a FIN: which one the client sees is a race.
        with pytest.raises((SocketClosedAPIError, ReadFailedAPIError)) as refused:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                await ninth.connect(login=True, log_errors=False)
        assert str(refused.value).endswith(("EOF received", "Connection reset by peer"))
        elapsed_ms = (time.monotonic() - started) * 1000
        print(f"9th client refused after {elapsed_ms:.1f} ms: {refused.value!r}")
        # A slot freed by a graceful disconnect is reusable, though not always by the time
        # disconnect() returns: the device drops the connection on a later loop pass.
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            await clients.pop().disconnect()
            freed = time.monotonic()
            while True:
                try:
                    await ninth.connect(login=True, log_errors=False)
                    break
                except (SocketClosedAPIError, ReadFailedAPIError):
                    await asyncio.sleep(0.01)
            print(f"freed slot taken after {(time.monotonic() - freed) * 1000:.1f} ms")
            assert (await ninth.device_info()).name == device.name
            await ninth.disconnect()
    finally:
        async with asyncio.timeout(CONNECT_TIMEOUT_S):
            for client in clients:
                await client.disconnect()


@pytest.mark.timeout(60)
async def test_ten_instances_on_loopback(firmware_fleet: Callable[[int], list[Instance]]):
    started = time.monotonic()
    devices = firmware_fleet(10)
    print(f"10 instances listening after {time.monotonic() - started:.2f} s")
    assert len({device.port for device in devices}) == 10
    for device in devices:
        # Our bind() rewrite: the API server listens on 127.0.0.1 only, on its own port.
        assert listen_addresses(device.process.pid) == [("127.0.0.1", device.port)]

    async def name_of(device: Instance) -> str:
        async with connected(device) as client:
            async with asyncio.timeout(CONNECT_TIMEOUT_S):
                return (await client.device_info()).name

    names = await asyncio.gather(*(name_of(device) for device in devices))
    assert names == [f"bar-tv-{n}" for n in range(1, 11)]


async def test_port_clash_leaves_process_running_and_fleet_moves_on(
    firmware_binary: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        taken = squatter.getsockname()[1]

        # The firmware itself: bind fails, the API is marked failed, the process runs on.
        log = tmp_path / "clash.log"
        env = {"HOME": str(tmp_path), "CMDCTL_FW_PORT": str(taken), "CMDCTL_FW_NAME": "clash"}
        with open(log, "wb") as out:
            process = subprocess.Popen([firmware_binary], env=env, stdout=out, stderr=out)
        try:
            async with asyncio.timeout(STATE_TIMEOUT_S):
                while "Socket bind: errno 98" not in log.read_text(errors="replace"):
                    await asyncio.sleep(0.02)
            assert process.poll() is None
            assert fleet.listening(process.pid, taken) is False
        finally:
            process.terminate()
            process.wait(timeout=fleet.STOP_TIMEOUT_S)

        # The fleet: it sees someone else's listener on the port and starts over on another.
        ports = iter([taken])
        real_free_port = fleet.free_port
        monkeypatch.setattr(fleet, "free_port", lambda: next(ports, None) or real_free_port())
        with fleet.FirmwareFleet(firmware_binary, tmp_path / "fleet") as devices:
            [device] = devices.start(1)
            assert device.port != taken
            assert fleet.listen_addresses(device.process.pid) == [("127.0.0.1", device.port)]
