"""wire.py alone: for each domain, the exact aioesphomeapi call a validated command becomes.

The client here is a recorder (the one place in tests/device without the simulator): it checks
each call against the real `APIClient` signature and keeps it. That the device then does the
right thing is what test_session.py and tests/simulator show end to end.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest
from aioesphomeapi import APIClient
from aioesphomeapi.model import (
    ClimateFanMode,
    ClimateInfo,
    ClimateMode,
    ClimatePreset,
    ClimateSwingMode,
    FanDirection,
    FanInfo,
    LockCommand,
    MediaPlayerCommand,
    MediaPlayerEntityFeature,
    MediaPlayerInfo,
    SupportsResponseType,
    UserService,
    ValveInfo,
)

from cmdctl.core.errors import DeviceRejected
from cmdctl.core.model import Command
from cmdctl.device import wire
from cmdctl.device.entities import EntityIndex, Plan

Call = tuple[str, tuple[Any, ...], dict[str, Any]]


class RecordingClient:
    """Stands in for `APIClient`: records each call, refusing any the real client would."""

    def __init__(self, answer: Any = None) -> None:
        self.calls: list[Call] = []
        self.answer = answer  # what execute_service returns

    def _record(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        # AttributeError / TypeError when the real client has no such method or parameter
        inspect.signature(getattr(APIClient, name)).bind(self, *args, **kwargs)
        self.calls.append((name, args, kwargs))

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: self._record(name, args, kwargs)

    async def execute_service(self, *args: Any, **kwargs: Any) -> Any:
        self._record("execute_service", args, kwargs)
        return self.answer


# What the shared index (conftest `index`) lacks: every optional feature of fan, climate, valve
# and media player, and the response modes `optional` and `status`.
PORCH_ENTITIES: list[Any] = [
    FanInfo(object_id="fan", key=30, name="Fan", supports_direction=True, supported_speed_count=3),
    ClimateInfo(
        object_id="hvac",
        key=31,
        name="HVAC",
        supported_modes=[ClimateMode.OFF, ClimateMode.COOL],
        supported_swing_modes=[ClimateSwingMode.OFF, ClimateSwingMode.VERTICAL],
        supported_custom_fan_modes=["Turbo"],
        supported_custom_presets=["Night"],
        supports_two_point_target_temperature=True,
        supports_target_humidity=True,
        visual_min_humidity=20,
        visual_max_humidity=80,
        visual_min_temperature=10,
        visual_max_temperature=30,
    ),
    ValveInfo(object_id="water", key=32, name="Water", supports_position=True, supports_stop=True),
    MediaPlayerInfo(
        object_id="radio",
        key=33,
        name="Radio",
        feature_flags=MediaPlayerEntityFeature.PLAY_MEDIA | MediaPlayerEntityFeature.MEDIA_ANNOUNCE,
    ),
]
PORCH_SERVICES = [
    UserService(name="opt", key=40, args=[], supports_response=SupportsResponseType.OPTIONAL),
    UserService(name="ack", key=41, args=[], supports_response=SupportsResponseType.STATUS),
]


@pytest.fixture
def porch() -> EntityIndex:
    return EntityIndex("porch", PORCH_ENTITIES, PORCH_SERVICES, {})


def sent(index: EntityIndex, domain: str, target: str, **args: Any) -> Call:
    """The one call `wire.send` makes for this command."""
    client = RecordingClient()
    wire.send(client, index.plan(Command(domain, target, args)), index.device)  # type: ignore[arg-type]
    (call,) = client.calls
    return call


def test_switch_number_select_text_button(index: EntityIndex) -> None:
    assert sent(index, "switch", "tv_power", state=True) == (
        "switch_command",
        (1, True),
        {"device_id": 0},
    )
    assert sent(index, "number", "volume", value=40) == (
        "number_command",
        (3, 40.0),
        {"device_id": 0},
    )
    assert sent(index, "select", "input", option="Cable") == (
        "select_command",
        (2, "Cable"),
        {"device_id": 0},
    )
    assert sent(index, "text", "channel", value="206") == (
        "text_command",
        (5, "206"),
        {"device_id": 0},
    )
    assert sent(index, "button", "identify") == ("button_command", (4,), {"device_id": 0})


def test_sub_device_commands_carry_its_device_id(index: EntityIndex) -> None:
    assert sent(index, "switch", "Patio/relay", state=False) == (
        "switch_command",
        (20, False),
        {"device_id": 2},
    )


def test_light_sends_every_field_by_the_client_names(index: EntityIndex) -> None:
    call = sent(
        index,
        "light",
        "backlight",
        state=True,
        brightness=0.4,
        rgb=[1, 0.5, 0],
        effect="strobe",
        transition=1,
    )
    assert call == (
        "light_command",
        (6,),
        {
            "state": True,
            "brightness": 0.4,
            "color_brightness": None,
            "rgb": (1.0, 0.5, 0.0),
            "white": None,
            "color_temperature": None,
            "transition_length": 1.0,
            "flash_length": None,
            "effect": "Strobe",  # as the device spells it
            "device_id": 0,
        },
    )
    _, _, lamp = sent(index, "light", "lamp", color_temperature=250, flash=2)
    assert (lamp["color_temperature"], lamp["flash_length"], lamp["state"]) == (250.0, 2.0, None)


def test_cover_and_valve_positions_and_stop(index: EntityIndex, porch: EntityIndex) -> None:
    assert sent(index, "cover", "shade", position=0.5, tilt=0.25) == (
        "cover_command",
        (9,),
        {"position": 0.5, "tilt": 0.25, "stop": False, "device_id": 0},
    )
    assert sent(index, "cover", "blind", stop=True) == (
        "cover_command",
        (8,),
        {"position": None, "tilt": None, "stop": True, "device_id": 0},
    )
    assert sent(porch, "valve", "water", position=0.3) == (
        "valve_command",
        (32,),
        {"position": 0.3, "stop": False, "device_id": 0},
    )
    assert sent(porch, "valve", "water", stop=True) == (
        "valve_command",
        (32,),
        {"position": None, "stop": True, "device_id": 0},
    )


def test_fan_direction_becomes_the_client_enum(index: EntityIndex, porch: EntityIndex) -> None:
    assert sent(
        index, "fan", "fan", state=True, speed_level=2, oscillating=True, preset_mode="Sleep"
    ) == (
        "fan_command",
        (10,),
        {
            "state": True,
            "speed_level": 2,
            "oscillating": True,
            "direction": None,
            "preset_mode": "Sleep",
            "device_id": 0,
        },
    )
    _, _, reverse = sent(porch, "fan", "fan", direction="reverse")
    assert reverse["direction"] is FanDirection.REVERSE


def test_climate_names_become_the_client_enums(index: EntityIndex, porch: EntityIndex) -> None:
    assert sent(
        index,
        "climate",
        "hvac",
        mode="heat_cool",
        target_temperature=21.5,
        fan_mode="low",
        preset="eco",
    ) == (
        "climate_command",
        (11,),
        {
            "mode": ClimateMode.HEAT_COOL,
            "target_temperature": 21.5,
            "target_temperature_low": None,
            "target_temperature_high": None,
            "fan_mode": ClimateFanMode.LOW,
            "swing_mode": None,
            "custom_fan_mode": None,
            "preset": ClimatePreset.ECO,
            "custom_preset": None,
            "target_humidity": None,
            "device_id": 0,
        },
    )
    _, _, two_point = sent(
        porch,
        "climate",
        "hvac",
        target_temperature_low=18,
        target_temperature_high=24,
        swing_mode="vertical",
        custom_fan_mode="Turbo",
        custom_preset="Night",
        target_humidity=45,
    )
    assert {k: v for k, v in two_point.items() if v is not None} == {
        "target_temperature_low": 18.0,
        "target_temperature_high": 24.0,
        "swing_mode": ClimateSwingMode.VERTICAL,
        "custom_fan_mode": "Turbo",
        "custom_preset": "Night",
        "target_humidity": 45.0,
        "device_id": 0,
    }


def test_lock_command_and_code(index: EntityIndex) -> None:
    assert sent(index, "lock", "door", command="unlock", code="1234") == (
        "lock_command",
        (12, LockCommand.UNLOCK),
        {"code": "1234", "device_id": 0},
    )
    assert sent(index, "lock", "door", command="lock") == (
        "lock_command",
        (12, LockCommand.LOCK),
        {"code": None, "device_id": 0},
    )


def test_media_player_command_volume_and_url(index: EntityIndex, porch: EntityIndex) -> None:
    assert sent(index, "media_player", "speaker", command="mute", volume=0.3) == (
        "media_player_command",
        (14,),
        {
            "command": MediaPlayerCommand.MUTE,
            "volume": 0.3,
            "media_url": None,
            "announcement": None,
            "device_id": 0,
        },
    )
    _, _, url = sent(porch, "media_player", "radio", media_url="http://x/a.mp3", announcement=True)
    assert (url["command"], url["media_url"], url["announcement"]) == (None, "http://x/a.mp3", True)


def test_a_domain_without_commands_is_rejected_not_sent() -> None:
    plan = Plan(Command("sensor", "temperature"), "sensor.temperature", 15, 0, info=None)
    client = RecordingClient()
    with pytest.raises(DeviceRejected, match="sensor entities take no commands") as caught:
        wire.send(client, plan, "bar-tv-3")  # type: ignore[arg-type]
    assert caught.value.device == "bar-tv-3" and client.calls == []


# -- actions -------------------------------------------------------------------------------------


async def test_an_action_without_an_answer_is_called_fire_and_forget(index: EntityIndex) -> None:
    plan = index.plan(Command("action", "send_tv_command", {"data": {"box": 2, "channel": "7"}}))
    client = RecordingClient()
    assert not wire.answers(plan)
    await wire.call(client, plan)  # type: ignore[arg-type]
    assert client.calls == [("execute_service", (plan.info, {"box": 2, "channel": "7"}), {})]


@pytest.mark.parametrize(
    ("target", "return_response"), [("get_status", True), ("opt", False), ("ack", False)]
)
async def test_an_action_that_answers_is_asked_with_its_response_mode(
    index: EntityIndex, porch: EntityIndex, target: str, return_response: bool
) -> None:
    plan = (porch if target in ("opt", "ack") else index).plan(Command("action", target, {}))
    client = RecordingClient(answer="the answer")
    assert wire.answers(plan)
    assert await wire.ask(client, plan, 1.5) == "the answer"  # type: ignore[arg-type]
    assert client.calls == [
        ("execute_service", (plan.info, {}), {"return_response": return_response, "timeout": 1.5})
    ]


def test_entity_commands_give_no_answer(index: EntityIndex) -> None:
    assert not wire.answers(index.plan(Command("switch", "tv_power", {"state": True})))
