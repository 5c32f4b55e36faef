"""Resolving selectors and validating commands against real aioesphomeapi entity info objects."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from aioesphomeapi.model import (
    ClimateMode,
    ClimateState,
    ColorMode,
    CoverOperation,
    CoverState,
    FanDirection,
    FanState,
    LightInfo,
    LightState,
    LockEntityState,
    LockState,
    MediaPlayerEntityState,
    MediaPlayerInfo,
    MediaPlayerState,
    NumberInfo,
    NumberState,
    SelectState,
    SwitchInfo,
    SwitchState,
    TextState,
    UserService,
    ValveState,
)
from hypothesis import given
from hypothesis import strategies as st

from cmdctl.core.errors import DeviceRejected
from cmdctl.core.model import Command
from cmdctl.device.entities import EntityIndex, SharedPlans, domain_of, snake


def rejected(index: EntityIndex, domain: str, target: str, **args: Any) -> str:
    with pytest.raises(DeviceRejected) as caught:
        index.plan(Command(domain, target, args))
    assert not caught.value.retryable
    return caught.value.one_line()


# -- resolving -------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["tv_power", "TV Power", "tv power", "tv_power "])
def test_object_id_and_friendly_names_resolve(index: EntityIndex, target: str) -> None:
    plan = index.plan(Command("switch", target.strip() if target.endswith(" ") else target,
                              {"state": True}))
    assert (plan.key, plan.device_id, plan.selector) == (1, 0, "switch.tv_power")


def test_unknown_entity_suggests_the_close_one(index: EntityIndex) -> None:
    message = rejected(index, "switch", "tv_pwr", state=True)
    assert message == "bar-tv-3: no switch 'tv_pwr' (did you mean switch.tv_power?)"


def test_entity_in_another_domain_is_suggested(index: EntityIndex) -> None:
    message = rejected(index, "switch", "input", state=True)
    assert "did you mean select.input?" in message


def test_same_object_id_on_two_sub_devices_is_ambiguous(index: EntityIndex) -> None:
    message = rejected(index, "switch", "relay", state=True)
    assert "ambiguous" in message and "Kitchen" in message and "Patio" in message


def test_sub_device_prefix_disambiguates(index: EntityIndex) -> None:
    assert index.plan(Command("switch", "Patio/relay", {"state": True})).device_id == 2
    assert index.plan(Command("switch", "1/relay", {"state": True})).device_id == 1


def test_read_only_domains_take_no_commands(index: EntityIndex) -> None:
    assert "take no commands" in rejected(index, "sensor", "temperature")


def test_unknown_action_lists_or_suggests(index: EntityIndex) -> None:
    assert "did you mean action.send_tv_command?" in rejected(index, "action", "send_tv_cmd")


# -- validating ------------------------------------------------------------------------------


def test_select_option_must_exist(index: EntityIndex) -> None:
    message = rejected(index, "select", "input", option="HDMI 5")
    assert message.startswith(
        "bar-tv-3: select.input has no option 'HDMI 5' (options: HDMI 1, HDMI 2, Cable)"
    )
    assert "did you mean 'HDMI 1'" in rejected(index, "select", "input", option="hdmi 1")


@pytest.mark.parametrize(
    ("value", "words"),
    [(101, "out of range 0..100"), (-1, "out of range"), (55.5, "not a multiple of the step 1")],
)
def test_number_range_and_step(index: EntityIndex, value: float, words: str) -> None:
    assert words in rejected(index, "number", "volume", value=value)


def test_number_on_grid_is_accepted(index: EntityIndex) -> None:
    plan = index.plan(Command("number", "volume", {"value": 40}))
    assert plan.args == {"value": 40.0}


def test_one_command_object_is_planned_once_and_an_equal_one_anew(index: EntityIndex) -> None:
    """A drain's entries share one `Command` per distinct command: a device's thousand entries
    are validated a few times, each plan exactly what planning it afresh gives."""
    shared = Command("number", "volume", {"value": 40})
    first = index.plan(shared)
    assert index.plan(shared) is first
    equal = Command("number", "volume", {"value": 40})
    again = index.plan(equal)
    assert again is not first and again == first and again.command is equal
    bad = Command("number", "volume", {"value": 101})
    for _ in range(2):  # a rejection is never kept: it is raised every time
        with pytest.raises(DeviceRejected, match="out of range"):
            index.plan(bad)


def test_number_step_grid_tolerates_float_noise() -> None:
    info = NumberInfo(object_id="gain", key=1, name="Gain", min_value=0.1, max_value=1, step=0.1)
    EntityIndex("d", [info]).plan(Command("number", "gain", {"value": 0.7}))
    with pytest.raises(DeviceRejected):
        EntityIndex("d", [info]).plan(Command("number", "gain", {"value": 0.75}))


def test_text_length_and_pattern(index: EntityIndex) -> None:
    assert "max 8" in rejected(index, "text", "channel", value="123456789")
    assert "min 1" in rejected(index, "text", "channel", value="")
    assert "pattern" in rejected(index, "text", "channel", value="abc")
    assert index.plan(Command("text", "channel", {"value": "206"})).args == {"value": "206"}


def test_light_colour_modes_effects_and_mireds(index: EntityIndex) -> None:
    assert "does not support color_temperature" in rejected(
        index, "light", "backlight", color_temperature=300
    )
    assert "does not support rgb" in rejected(index, "light", "lamp", rgb=[1, 0, 0])
    assert "out of range 153..500" in rejected(index, "light", "lamp", color_temperature=600)
    assert "has no effect 'Fire'" in rejected(index, "light", "backlight", effect="Fire")
    plan = index.plan(Command("light", "backlight", {"state": True, "effect": "rainbow"}))
    assert plan.args["effect"] == "Rainbow"  # sent as the device spells it
    plan = index.plan(Command("light", "backlight", {"rgb": [0.5, 0, 0], "transition": 1.5}))
    assert plan.args["rgb"] == (0.5, 0.0, 0.0) and plan.args["transition"] == 1.5


def test_fan_capabilities(index: EntityIndex) -> None:
    assert "integer 0..3" in rejected(index, "fan", "fan", speed_level=4)
    assert "does not support direction" in rejected(index, "fan", "fan", direction="reverse")
    assert "has no preset mode 'Turbo'" in rejected(index, "fan", "fan", preset_mode="Turbo")
    plan = index.plan(Command("fan", "fan", {"state": True, "speed_level": 2, "oscillating": True}))
    assert plan.expect is not None


def test_cover_capabilities(index: EntityIndex) -> None:
    assert "positions other than open / close" in rejected(index, "cover", "blind", position=0.5)
    assert "does not support tilt" in rejected(index, "cover", "blind", tilt=0.5)
    assert "does not support stop" in rejected(index, "cover", "shade", stop=True)
    assert index.plan(Command("cover", "blind", {"position": 1.0})).args == {"position": 1.0}
    assert index.plan(Command("cover", "blind", {"stop": True})).expect is None


def test_valve_and_lock(index: EntityIndex) -> None:
    assert "positions other than open / close" in rejected(index, "valve", "water", position=0.3)
    assert "does not support stop" in rejected(index, "valve", "water", stop=True)
    assert "does not support open" in rejected(index, "lock", "door", command="open")


def test_climate_modes_and_range(index: EntityIndex) -> None:
    assert "has no mode 'cool'" in rejected(index, "climate", "hvac", mode="cool")
    assert "out of range 10..30" in rejected(index, "climate", "hvac", target_temperature=35)
    assert "has no fan mode 'high'" in rejected(index, "climate", "hvac", fan_mode="high")
    assert "two-point" in rejected(index, "climate", "hvac", target_temperature_low=18)
    plan = index.plan(Command("climate", "hvac", {"mode": "heat_cool", "preset": "eco"}))
    assert plan.args == {"mode": "heat_cool", "preset": "eco"}


def test_media_player_pause_support(index: EntityIndex) -> None:
    assert "does not support pause" in rejected(index, "media_player", "speaker", command="pause")
    assert "out of range 0..1" in rejected(index, "media_player", "speaker", volume=1.5)


def test_action_arguments(index: EntityIndex) -> None:
    assert "needs argument 'channel'" in rejected(index, "action", "send_tv_command",
                                                   data={"box": 1})
    assert "has no argument 'chanel'" in rejected(
        index, "action", "send_tv_command", data={"box": 1, "channel": "2", "chanel": "2"}
    )
    message = rejected(index, "action", "send_tv_command", data={"box": 1, "channel": 206})
    assert "must be a string" in message and "quote it" in message
    assert "must be an integer" in rejected(
        index, "action", "send_tv_command", data={"box": 1.5, "channel": "2"}
    )
    assert "must be an integer" in rejected(
        index, "action", "send_tv_command", data={"box": True, "channel": "2"}
    )
    assert "must be a list" in rejected(index, "action", "scene", data={"levels": 1})
    assert "levels[1]" in rejected(index, "action", "scene", data={"levels": [1, "x"]})
    plan = index.plan(Command("action", "send_tv_command", {"data": {"box": 2, "channel": "7"}}))
    assert plan.args == {"data": {"box": 2, "channel": "7"}} and plan.response == "none"
    plan = index.plan(Command("action", "scene", {"data": {"levels": [1, 0.5]}}))
    assert plan.args == {"data": {"levels": [1.0, 0.5], "fade": 0.5}}
    assert index.plan(Command("action", "get_status", {})).response == "only"


def test_unknown_argument_is_rejected(index: EntityIndex) -> None:
    assert "unknown argument 'colour'" in rejected(index, "light", "backlight", colour="red")


# -- expectations ----------------------------------------------------------------------------


def expect(index: EntityIndex, domain: str, target: str, **args: Any) -> Any:
    plan = index.plan(Command(domain, target, args))
    assert plan.expect is not None
    return plan.expect


def test_switch_select_number_text_targets(index: EntityIndex) -> None:
    e = expect(index, "switch", "tv_power", state=True)
    assert e.reached(SwitchState(key=1, state=True))
    assert not e.reached(SwitchState(key=1, state=False))
    assert not e.reached(SwitchState(key=1, state=True, missing_state=True))
    assert not e.reached(None)
    e = expect(index, "select", "input", option="Cable")
    assert e.reached(SelectState(key=2, state="Cable"))
    assert "saw state='HDMI 1'" in f"saw {e.observed(SelectState(key=2, state='HDMI 1'))}"
    e = expect(index, "number", "volume", value=40)
    assert e.reached(NumberState(key=3, state=40.00001))
    assert not e.reached(NumberState(key=3, state=41))
    e = expect(index, "text", "channel", value="206")
    assert e.reached(TextState(key=5, state="206"))


def test_light_target_normalises_rgb_and_tolerates_rounding(index: EntityIndex) -> None:
    e = expect(index, "light", "backlight", state=True, brightness=0.4, rgb=[0.5, 0.25, 0])
    seen = LightState(key=6, state=True, brightness=0.4004, red=1.0, green=0.5, blue=0.0)
    assert e.reached(seen)
    assert not e.reached(LightState(key=6, state=True, brightness=0.6, red=1, green=0.5))
    assert not e.reached(LightState(key=6, state=False, brightness=0.4, red=1, green=0.5))
    off = expect(index, "light", "backlight", state=False, brightness=0.5)
    assert off.reached(LightState(key=6, state=False, brightness=0.1))
    e = expect(index, "light", "backlight", state=True, effect="strobe")
    assert e.reached(LightState(key=6, state=True, effect="Strobe"))


def test_button_action_and_stop_have_nothing_to_confirm(index: EntityIndex) -> None:
    assert index.plan(Command("button", "identify", {})).expect is None
    plan = index.plan(Command("action", "send_tv_command", {"data": {"box": 1, "channel": "1"}}))
    assert plan.expect is None
    assert index.plan(Command("cover", "blind", {"stop": True})).expect is None


def test_cover_valve_fan_lock_climate_media_targets(index: EntityIndex) -> None:
    e = expect(index, "cover", "shade", position=0.5)
    assert e.reached(CoverState(key=9, position=0.505))
    moving = CoverState(key=9, position=0.2, current_operation=CoverOperation.IS_OPENING)
    assert not e.reached(moving) and e.moving(moving)
    assert "operation=is_opening" in e.observed(moving)
    assert expect(index, "valve", "water", position=1.0).reached(ValveState(key=13, position=1.0))
    e = expect(index, "fan", "fan", state=True, speed_level=2)
    assert e.reached(FanState(key=10, state=True, speed_level=2, direction=FanDirection.FORWARD))
    assert not e.reached(FanState(key=10, state=True, speed_level=3))
    assert expect(index, "lock", "door", command="lock").reached(
        LockEntityState(key=12, state=LockState.LOCKED)
    )
    e = expect(index, "climate", "hvac", mode="heat", target_temperature=21.5)
    assert e.reached(ClimateState(key=11, mode=ClimateMode.HEAT, target_temperature=21.5))
    assert not e.reached(ClimateState(key=11, mode=ClimateMode.OFF, target_temperature=21.5))
    e = expect(index, "media_player", "speaker", volume=0.3)
    assert e.reached(MediaPlayerEntityState(key=14, volume=0.3, state=MediaPlayerState.IDLE))
    e = expect(index, "media_player", "speaker", command="mute")
    assert e.reached(MediaPlayerEntityState(key=14, muted=True))


# -- listing and naming ----------------------------------------------------------------------


def test_rows_describe_every_entity_and_action(index: EntityIndex) -> None:
    rows = {row.selector: row for row in index.rows()}
    assert rows["select.input"].details == "options: HDMI 1, HDMI 2, Cable"
    assert rows["number.volume"].details == "0..100 step 1"
    assert rows["action.get_status"].details == "() → response (only)"
    assert "sensor.temperature" in rows


def test_names() -> None:
    assert domain_of(SwitchInfo()) == "switch"
    assert domain_of(MediaPlayerInfo()) == "media_player"
    assert domain_of(UserService()) == "action"
    assert snake("TV Power (main)") == "tv_power__main_"


def test_importing_entities_does_not_import_the_client() -> None:
    code = "import sys, cmdctl.device.entities; print('aioesphomeapi' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- properties ------------------------------------------------------------------------------

_steps = st.sampled_from([0.001, 0.01, 0.1, 0.25, 0.5, 1.0, 5.0])


@given(
    lo=st.integers(-1000, 1000),
    step=_steps,
    k=st.integers(0, 500),
)
def test_values_on_the_step_grid_are_accepted_and_half_steps_rejected(
    lo: int, step: float, k: int
) -> None:
    hi = lo + 500 * step
    info = NumberInfo(object_id="n", key=1, name="N", min_value=lo, max_value=hi, step=step)
    index = EntityIndex("d", [info])
    on_grid = lo + k * step
    plan = index.plan(Command("number", "n", {"value": on_grid}))
    assert plan.expect is not None and plan.expect.reached(NumberState(key=1, state=on_grid))
    if k < 500:
        with pytest.raises(DeviceRejected):
            index.plan(Command("number", "n", {"value": on_grid + step / 2}))


@given(
    rgb=st.tuples(*[st.floats(0, 1, allow_nan=False)] * 3).filter(lambda c: max(c) > 0.01),
)
def test_rgb_target_matches_the_device_normalised_colour(rgb: tuple[float, float, float]) -> None:
    light = LightInfo(object_id="l", key=1, name="L", supported_color_modes=[ColorMode.RGB])
    plan = EntityIndex("d", [light]).plan(Command("light", "l", {"rgb": list(rgb)}))
    top = max(rgb)
    shown = LightState(key=1, state=True, red=rgb[0] / top, green=rgb[1] / top, blue=rgb[2] / top)
    assert plan.expect is not None and plan.expect.reached(shown)


# -- plans shared by the devices of a drain pass ------------------------------------------------


def _volume(max_value: float = 100.0) -> NumberInfo:
    return NumberInfo(object_id="volume", key=7, name="Volume", min_value=0.0,
                      max_value=max_value, step=1.0)


def test_devices_with_equal_entities_share_one_plan() -> None:
    shared = SharedPlans()
    first = EntityIndex("bar-tv-1", [_volume()], shared=shared)
    second = EntityIndex("bar-tv-2", [_volume()], shared=shared)  # equal, another object
    command = Command("number", "volume", {"value": 30.0})
    plan = first.plan(command)
    assert second.plan(command) is plan
    # without a shared book each device plans for itself
    assert EntityIndex("bar-tv-3", [_volume()]).plan(command) is not plan


def test_an_entity_that_differs_in_any_field_is_planned_for_itself() -> None:
    shared = SharedPlans()
    command = Command("number", "volume", {"value": 80.0})
    wide = EntityIndex("bar-tv-1", [_volume()], shared=shared)
    narrow = EntityIndex("bar-tv-2", [_volume(max_value=50.0)], shared=shared)
    assert wide.plan(command).args == {"value": 80.0}
    # the same command object, a device whose volume stops at 50: rejected, naming the device
    with pytest.raises(DeviceRejected) as caught:
        narrow.plan(command)
    assert caught.value.one_line().startswith("bar-tv-2")
    assert "out of range 0..50" in caught.value.one_line()
