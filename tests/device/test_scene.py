"""device.scene: states read with the real client over TCP, turned into the commands that put
them back; the commands restore what a separate client saw (and model objects for the kinds
the simulator has not got: sensors, password texts, cold/warm white lights)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from aioesphomeapi.model import (
    BinarySensorInfo,
    BinarySensorState,
    ClimateInfo,
    ClimateMode,
    ClimatePreset,
    ClimateState,
    ColorMode,
    CoverInfo,
    CoverOperation,
    CoverState,
    DateTimeInfo,
    LightInfo,
    LightState,
    MediaPlayerEntityState,
    MediaPlayerInfo,
    MediaPlayerState,
    NumberInfo,
    NumberState,
    SensorInfo,
    SensorState,
    TextInfo,
    TextMode,
    TextState,
)

from cmdctl.core.errors import DeviceRejected, DeviceUnavailable, ExitCode
from cmdctl.core.model import Command
from cmdctl.device import scene
from cmdctl.device.entities import EntityIndex
from cmdctl.device.segment import Outcome
from cmdctl.device.transport import DeviceSession
from cmdctl.simulator import FaultSpec, Fleet, VirtualDevice

from .helpers import address
from .scene_helpers import (
    GREETING,
    apply,
    differences,
    lounge_changed,
    lounge_saved,
    lounge_spec,
    states,
)


def where(dev: VirtualDevice) -> tuple[str, int, str | None]:
    return "127.0.0.1", dev.port, dev.spec.psk


#: What the lounge's scene must say, setting by setting, in this order.
LOUNGE_SCENE = [
    ("switch.garden/relay", {"state": True}),  # was on: first
    ("climate.heat_pump", {
        "mode": "heat", "fan_mode": "low", "swing_mode": "vertical", "preset": "home",
        "target_temperature": 21.5, "target_temperature_low": 19.0,
        "target_temperature_high": 23.0,
    }),
    ("cover.blind", {"position": 0.3, "tilt": 0.6}),
    ("fan.ceiling_fan", {
        "state": True, "preset_mode": "Breeze", "oscillating": True, "direction": "reverse",
    }),
    ("fan.desk_fan", {
        "state": True, "speed_level": 2, "oscillating": False, "direction": "forward",
    }),
    ("light.ceiling", {
        "state": True, "brightness": 0.6, "rgb": [1.0, 0.5, 0.0], "color_brightness": 1.0,
        "effect": "Pulse",
    }),
    ("light.reading", {"state": True, "brightness": 0.3, "color_temperature": 370.0}),
    ("media_player.speaker", {"command": "mute", "volume": 0.35}),
    ("number.dimmer", {"value": 7.5}),
    ("select.mood", {"option": "on"}),
    ("text.greeting", {"value": GREETING}),
    ("valve.water", {"position": 0.75}),
    ("switch.0/relay", {"state": False}),  # was off: last
]  # fmt: skip


#: The entities `lounge_changed` moves (`domain.object_id@device_id`): every one of the scene.
MOVED = {
    "switch.relay@7", "climate.heat_pump@0", "cover.blind@0", "fan.ceiling_fan@0",
    "fan.desk_fan@0", "light.ceiling@0", "light.reading@0", "media_player.speaker@0",
    "number.dimmer@0", "select.mood@0", "text.greeting@0", "valve.water@0", "switch.relay@0",
}  # fmt: skip


async def test_a_scene_says_every_restorable_state_and_why_the_rest_is_left_out() -> None:
    async with Fleet([lounge_spec()]) as fleet:
        lounge = fleet.devices[0]
        await apply(*where(lounge), lounge_saved)
        saved = await scene.save(address(lounge))
    assert saved.error is None and saved.status == "saved"
    assert saved.friendly_name == "Lounge"
    got = [(s.command.selector, dict(s.command.args)) for s in saved.settings]
    assert got == LOUNGE_SCENE
    left = {item.selector: (item.reason, item.detail) for item in saved.left_out}
    assert left == {
        "action.chime": (scene.ACTION, ""),
        "button.restart": (scene.BUTTON, ""),
        "lock.door": (scene.LOCK, "locked"),
        "text.note": (scene.NO_STATE, ""),
    }
    notes = {s.command.selector: s.note for s in saved.settings if s.note}
    assert notes == {}  # nothing playing, nothing moving, the preset is one the device lists


async def test_the_saved_commands_put_back_what_a_separate_client_saw() -> None:
    async with Fleet([lounge_spec()]) as fleet:
        lounge = fleet.devices[0]
        await apply(*where(lounge), lounge_saved)
        before = await states(*where(lounge))
        saved = await scene.save(address(lounge))
        await apply(*where(lounge), lounge_changed)
        changed = await states(*where(lounge))
        moved = {line.split(" ")[0] for line in differences(before, changed)}
        assert moved == MOVED  # every setting was moved away (else the test proves nothing)
        async with DeviceSession(address(lounge)) as session:
            results = await session.execute_many([s.command for s in saved.settings])
        assert all(isinstance(r, Outcome) and r.status == "confirmed" for r in results), results
        after = await states(*where(lounge))
    assert differences(before, after) == []


async def test_an_unreachable_device_and_a_refusing_one_are_data() -> None:
    specs = [
        lounge_spec("up", encrypted=False),
        lounge_spec("down", encrypted=False),
        replace(lounge_spec("wrong"), faults=FaultSpec(wrong_key=True)),
    ]
    async with Fleet(specs) as fleet:
        up, down, wrong = fleet.devices
        await down.stop()
        scenes = await scene.save_fleet([address(up), address(down), address(wrong)])
    assert [s.device for s in scenes] == ["up", "down", "wrong"]
    assert [s.status for s in scenes] == ["saved", "unreachable", "rejected"]
    assert isinstance(scenes[1].error, DeviceUnavailable) and not scenes[1].settings
    assert isinstance(scenes[2].error, DeviceRejected)
    assert scene.exit_code(scenes[:1]) is ExitCode.OK
    assert scene.exit_code(scenes[:2]) is ExitCode.UNREACHABLE
    assert scene.exit_code(scenes) is ExitCode.FAILED


# -- kinds the simulator has not got: the client's own model objects -----------------------------


def _scene(*pairs: tuple[Any, Any]) -> scene.DeviceScene:
    index = EntityIndex("dev", [info for info, _ in pairs])
    found = {(s.key, 0): s for _, s in pairs if s is not None}
    return scene.scene_of("dev", "Dev", index, found)


def test_read_only_password_and_uncommandable_entities_are_left_out_with_why() -> None:
    result = _scene(
        (SensorInfo(object_id="temperature", key=1, name="Temperature"),
         SensorState(key=1, state=21.0)),
        (BinarySensorInfo(object_id="motion", key=2, name="Motion"),
         BinarySensorState(key=2, state=True)),
        (TextInfo(object_id="wifi_password", key=3, name="Wifi Password",
                  mode=TextMode.PASSWORD), TextState(key=3, state="hunter2")),
        (DateTimeInfo(object_id="alarm", key=4, name="Alarm"), None),
        (TextInfo(object_id="motd", key=5, name="Motd", max_length=20),
         TextState(key=5, state="hello")),
    )  # fmt: skip
    assert [(s.command.selector, dict(s.command.args)) for s in result.settings] == [
        ("text.motd", {"value": "hello"})
    ]
    assert {i.selector: i.reason for i in result.left_out} == {
        "sensor.temperature": scene.READ_ONLY,
        "binary_sensor.motion": scene.READ_ONLY,
        "text.wifi_password": scene.PASSWORD,
        "datetime.alarm": scene.NO_COMMAND,
    }
    assert "hunter2" not in repr(result)


def test_float32_noise_is_rounded_onto_the_step_and_two_point_climates_get_two_points() -> None:
    result = _scene(
        (NumberInfo(object_id="level", key=1, name="Level", min_value=0, max_value=1, step=0.1),
         NumberState(key=1, state=0.30000001192092896)),
        (ClimateInfo(object_id="ac", key=2, name="AC", feature_flags=4,
                     supported_modes=[ClimateMode.HEAT_COOL], visual_min_temperature=10,
                     visual_max_temperature=30),
         ClimateState(key=2, mode=ClimateMode.HEAT_COOL, target_temperature=0.0,
                      target_temperature_low=18.100000381469727,
                      target_temperature_high=24.0)),
    )  # fmt: skip
    assert [dict(s.command.args) for s in result.settings] == [
        {"mode": "heat_cool", "target_temperature_low": 18.1, "target_temperature_high": 24.0},
        {"value": 0.3},
    ]


def test_what_a_command_cannot_carry_is_said_in_a_note() -> None:
    result = _scene(
        (LightInfo(object_id="strip", key=1, name="Strip", min_mireds=153, max_mireds=500,
                   supported_color_modes=[ColorMode.COLD_WARM_WHITE]),
         LightState(key=1, state=True, brightness=0.5, color_mode=ColorMode.COLD_WARM_WHITE,
                    color_temperature=300.0, cold_white=0.2, warm_white=0.8)),
        (MediaPlayerInfo(object_id="radio", key=2, name="Radio", feature_flags=4 | 8),
         MediaPlayerEntityState(key=2, state=MediaPlayerState.PLAYING, volume=0.5)),
        (CoverInfo(object_id="gate", key=3, name="Gate", supports_position=False),
         CoverState(key=3, position=0.5, current_operation=CoverOperation.IS_OPENING)),
        (CoverInfo(object_id="shade", key=4, name="Shade", supports_position=True),
         CoverState(key=4, position=0.25, current_operation=CoverOperation.IS_CLOSING)),
    )  # fmt: skip
    assert [(s.command.selector, dict(s.command.args), s.note) for s in result.settings] == [
        ("cover.shade", {"position": 0.25}, "it was closing when saved"),
        ("light.strip", {"state": True, "brightness": 0.5, "color_temperature": 300.0},
         "its cold/warm white levels are not put back, its colour temperature is"),
        ("media_player.radio", {"command": "unmute", "volume": 0.5},
         "playback (playing) is not put back, only volume and mute"),
    ]  # fmt: skip
    assert [(i.selector, i.reason, i.detail) for i in result.left_out] == [
        ("cover.gate", scene.REFUSED, "it was at 50%; it only opens or closes")
    ]


def test_a_value_the_device_would_refuse_is_left_out_not_written() -> None:
    # A number outside its own range (firmware reports what a lambda published): a step with
    # it would fail on every restore.
    result = _scene(
        (NumberInfo(object_id="gain", key=1, name="Gain", min_value=0, max_value=10, step=1),
         NumberState(key=1, state=42.0)),
    )  # fmt: skip
    assert result.settings == ()
    ((item,),) = [result.left_out]
    assert (item.selector, item.reason) == ("number.gain", scene.REFUSED)
    assert "out of range 0..10" in item.detail
    assert Command("number", "gain", {"value": 42.0}) not in [s.command for s in result.settings]


def test_a_preset_the_device_does_not_list_is_said_not_put_back() -> None:
    info = ClimateInfo(object_id="ac", key=1, name="AC", supported_modes=[ClimateMode.HEAT],
                       supported_presets=[ClimatePreset.HOME, ClimatePreset.AWAY],
                       visual_min_temperature=10, visual_max_temperature=30)  # fmt: skip
    result = _scene((info, ClimateState(key=1, mode=ClimateMode.HEAT, target_temperature=20.0)))
    ((setting,),) = [result.settings]
    assert dict(setting.command.args) == {"mode": "heat", "target_temperature": 20.0}
    assert setting.note == "its preset (none) is not put back: the device does not list it"
    home = ClimateState(
        key=1, mode=ClimateMode.HEAT, preset=ClimatePreset.HOME, target_temperature=20.0
    )
    ((setting,),) = [_scene((info, home)).settings]
    assert (setting.command.args["preset"], setting.note) == ("home", "")
