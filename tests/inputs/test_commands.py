"""Step values → canonical commands, per the table in docs/architecture.md."""

from __future__ import annotations

from typing import Any

import pytest

from cmdctl.core.errors import InputError
from cmdctl.core.model import Command
from cmdctl.inputs.commands import (
    CommandValueError,
    idempotent_default,
    parse_cli_value,
    parse_command,
    parse_selector,
)


@pytest.mark.parametrize(
    ("domain", "value", "args"),
    [
        ("switch", True, {"state": True}),
        ("switch", "off", {"state": False}),
        ("switch", "TRUE", {"state": True}),
        ("light", False, {"state": False}),
        ("light", {"state": True, "brightness": 0.4}, {"state": True, "brightness": 0.4}),
        ("light", {"brightness": "40%"}, {"brightness": 0.4}),
        ("light", {"rgb": "#ff8000"}, {"rgb": [1.0, 0.502, 0.0]}),
        ("light", {"rgb": [1, 0.5, 0]}, {"rgb": [1.0, 0.5, 0.0]}),
        ("light", {"transition": "2s", "flash": 0.5}, {"transition": 2.0, "flash": 0.5}),
        (
            "light",
            {"color_temperature": 370, "effect": "Rainbow"},
            {"color_temperature": 370.0, "effect": "Rainbow"},
        ),
        (
            "light",
            {"white": 1, "color_brightness": "100%"},
            {"white": 1.0, "color_brightness": 1.0},
        ),
        ("number", 30, {"value": 30.0}),
        ("number", -2.5, {"value": -2.5}),
        ("select", "HDMI 1", {"option": "HDMI 1"}),
        ("button", "press", {}),
        ("button", None, {}),
        ("button", True, {}),
        ("text", "Game night", {"value": "Game night"}),
        ("text", "", {"value": ""}),
        ("cover", "open", {"position": 1.0}),
        ("cover", "close", {"position": 0.0}),
        ("cover", "stop", {"stop": True}),
        ("cover", {"position": 0.5, "tilt": "25%"}, {"position": 0.5, "tilt": 0.25}),
        ("valve", "open", {"position": 1.0}),
        ("valve", {"stop": True}, {"stop": True}),
        ("fan", True, {"state": True}),
        (
            "fan",
            {
                "state": "on",
                "speed_level": 3,
                "oscillating": False,
                "direction": "Reverse",
                "preset_mode": "sleep",
            },
            {
                "state": True,
                "speed_level": 3,
                "oscillating": False,
                "direction": "reverse",
                "preset_mode": "sleep",
            },
        ),
        ("climate", "heat_cool", {"mode": "heat_cool"}),
        ("climate", False, {"mode": "off"}),
        (
            "climate",
            {
                "mode": "cool",
                "target_temperature": 21,
                "fan_mode": True,
                "swing_mode": False,
                "preset": "eco",
                "target_humidity": 40,
            },
            {
                "mode": "cool",
                "target_temperature": 21.0,
                "fan_mode": "on",
                "swing_mode": "off",
                "preset": "eco",
                "target_humidity": 40.0,
            },
        ),
        ("lock", "unlock", {"command": "unlock"}),
        ("lock", {"command": "open", "code": "1234"}, {"command": "open", "code": "1234"}),
        ("media_player", "volume_up", {"command": "volume_up"}),
        (
            "media_player",
            {"volume": 0.3, "media_url": "http://x/y.mp3", "announcement": True},
            {"volume": 0.3, "media_url": "http://x/y.mp3", "announcement": True},
        ),
        (
            "action",
            {"box": 1, "channel": "206", "flags": [True, False]},
            {"data": {"box": 1, "channel": "206", "flags": [True, False]}},
        ),
        ("action", None, {"data": {}}),
    ],
)
def test_canonical_args(domain: str, value: Any, args: dict[str, Any]) -> None:
    target = "send_tv_command" if domain == "action" else "thing"
    assert parse_command(domain, target, value) == Command(domain, target, args)


@pytest.mark.parametrize(
    ("domain", "value", "message", "path"),
    [
        ("switch", 1, "a switch takes on or off, not 1", ()),
        ("switch", "maybe", "a switch takes on or off, not 'maybe'", ()),
        (
            "light",
            {"brightness": 40},
            "brightness must be between 0 and 1, not 40",
            ("brightness",),
        ),
        ("light", {"brightness": "140%"}, "brightness must be at most 100%", ("brightness",)),
        ("light", {"brightness": True}, "brightness must be a number, not True", ("brightness",)),
        ("light", {"brightnes": 0.4}, "unknown field 'brightnes'", ("brightnes",)),
        (
            "light",
            {"rgb": [1, 2, 0]},
            "each rgb component must be between 0 and 1, not 2",
            ("rgb", 1),
        ),
        (
            "light",
            {"rgb": "orange"},
            "rgb must be \"#rrggbb\" or [r, g, b], not 'orange'",
            ("rgb",),
        ),
        ("light", {"transition": "soon"}, "transition: bad duration 'soon'", ("transition",)),
        ("light", {}, "a light takes on, off or a mapping; this mapping is empty", ()),
        ("light", 0.5, "a light takes on, off or a mapping, not 0.5", ()),
        ("number", "30", "a number must be a number, not '30'", ()),
        ("number", float("nan"), "a number must be a number, not nan", ()),
        ("number", True, "a number must be a number, not True", ()),
        ("select", True, "a select option must be text, not True", ()),
        ("select", "  ", "a select option must not be empty", ()),
        ("text", 206, "a text value must be text, not 206", ()),
        ("button", "hold", "a button takes press, not 'hold'", ()),
        ("cover", "opne", "a cover takes open, close, stop or a mapping, not 'opne'", ()),
        (
            "cover",
            {"position": 0.5, "stop": True},
            "a cover cannot stop and move in one command",
            ("stop",),
        ),
        ("cover", {"stop": False}, "stop must be true, not False", ("stop",)),
        ("valve", {"tilt": 0.5}, "unknown field 'tilt'", ("tilt",)),
        (
            "fan",
            {"speed_level": 1.5},
            "speed_level must be a whole number 0..1000, not 1.5",
            ("speed_level",),
        ),
        ("fan", {"direction": "up"}, "unknown direction 'up'", ("direction",)),
        ("climate", {"mode": "warm"}, "unknown mode 'warm'", ("mode",)),
        (
            "climate",
            {"target_humidity": 140},
            "target_humidity (%) must be between 0 and 100, not 140",
            ("target_humidity",),
        ),
        ("lock", "unlcok", "unknown lock command 'unlcok'", ()),
        ("lock", {"code": "1"}, "a lock mapping needs a command: lock, unlock or open", ()),
        (
            "lock",
            {"command": "open", "code": 1234},
            "code (quote it) must be text, not 1234",
            ("code",),
        ),
        ("media_player", "louder", "unknown media_player command 'louder'", ()),
        ("media_player", {"volume": 2}, "volume must be between 0 and 1, not 2", ("volume",)),
        ("action", [1], "action data must be a mapping, not a list", ()),
        (
            "action",
            {"x": {"y": 1}},
            "action argument x must be text, a number, true/false or a list"
            " of those, not a mapping",
            ("x",),
        ),
        (
            "action",
            {"x": [1, None]},
            "action argument x must be text, a number, true/false or a list of those, not nothing",
            ("x", 1),
        ),
    ],
)
def test_value_errors(domain: str, value: Any, message: str, path: tuple[Any, ...]) -> None:
    target = "do_it" if domain == "action" else "thing"
    with pytest.raises(CommandValueError) as caught:
        parse_command(domain, target, value)
    assert caught.value.message == message
    assert caught.value.path == path
    assert isinstance(caught.value, InputError)


def test_enum_hints() -> None:
    with pytest.raises(CommandValueError) as caught:
        parse_command("climate", "ac", {"mode": "heat-cool"})
    assert caught.value.hint == "did you mean 'heat_cool'?"
    with pytest.raises(CommandValueError) as caught:
        parse_command("light", "l", {"brightness": 40})
    assert caught.value.hint == 'like 0.4 or "40%"'


def test_selectors() -> None:
    assert parse_selector("switch.tv_power") == ("switch", "tv_power")
    assert parse_selector("select.Input Source") == ("select", "Input Source")
    assert parse_selector("action.send_tv_command") == ("action", "send_tv_command")


@pytest.mark.parametrize(
    ("selector", "message", "hint"),
    [
        ("swich.tv_power", "unknown domain 'swich' in 'swich.tv_power'", "did you mean 'switch'?"),
        ("tv_power", "'tv_power' is not an entity selector", None),
        ("switch.", "'switch.' is not an entity selector", None),
        ("switch. tv", "bad entity name ' tv' for switch", None),
        ("action.send tv", "bad action name 'send tv' for action", None),
    ],
)
def test_selector_errors(selector: str, message: str, hint: str | None) -> None:
    with pytest.raises(InputError) as caught:
        parse_selector(selector)
    assert caught.value.message == message
    if hint:
        assert caught.value.hint == hint


@pytest.mark.parametrize(
    ("domain", "text", "args"),
    [
        ("switch", "on", {"state": True}),
        ("number", "30", {"value": 30.0}),
        ("select", "HDMI 1", {"option": "HDMI 1"}),
        ("select", '"HDMI 1"', {"option": "HDMI 1"}),
        ("text", "206", {"value": "206"}),
        ("text", "on", {"value": "on"}),
        ("light", "{state: on, brightness: 0.4}", {"state": True, "brightness": 0.4}),
        ("button", "", {}),
        ("action", "{box: 1, channel: '206'}", {"data": {"box": 1, "channel": "206"}}),
    ],
)
def test_cli_values(domain: str, text: str, args: dict[str, Any]) -> None:
    assert parse_cli_value(domain, "x", text).args == args


def test_cli_value_errors() -> None:
    with pytest.raises(InputError, match="YAML syntax error"):
        parse_cli_value("light", "x", "{state: on")
    with pytest.raises(CommandValueError, match="a number must be a number"):
        parse_cli_value("number", "x", "loud")


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (Command("button", "identify", {}), False),
        (Command("media_player", "tv", {"command": "volume_up"}), False),
        (Command("media_player", "tv", {"command": "volume_down"}), False),
        (Command("media_player", "tv", {"command": "toggle"}), False),
        (Command("media_player", "tv", {"command": "play"}), True),
        (Command("media_player", "tv", {"command": "enqueue"}), False),  # a crash: queued twice
        (Command("media_player", "tv", {"command": "enqueue", "media_url": "u"}), False),
        (Command("lock", "door", {"command": "open"}), False),  # a crash: the door opened twice
        (Command("lock", "door", {"command": "open", "code": "1234"}), False),
        (Command("lock", "door", {"command": "lock"}), True),
        (Command("lock", "door", {"command": "unlock"}), True),
        (Command("switch", "tv_power", {"state": True}), True),
        (Command("action", "send_tv_command", {"data": {}}), True),
    ],
)
def test_idempotent_default(command: Command, expected: bool) -> None:
    assert idempotent_default(command) is expected


@pytest.mark.parametrize("key", ["transition", "flash"])
def test_a_light_duration_longer_than_the_protocol_carries_is_refused_at_load(key: str) -> None:
    """Issue 13, item 2: `transition: 99999999d` passed load and crashed every drain."""
    with pytest.raises(InputError) as caught:
        parse_command("light", "backlight", {"state": True, key: "50d"})
    told = "is longer than a device can be told (49d 17h)"
    assert caught.value.message == f"{key} '50d' {told}"
    assert caught.value.hint == "the ESPHome API carries it in milliseconds, at most 2^32 - 1"
    assert parse_command("light", "backlight", {key: "49d"}).args[key] == 49 * 86400.0
    with pytest.raises(InputError, match="longer than 100 years"):  # any duration that long
        parse_command("light", "backlight", {"state": True, key: "99999999d"})
