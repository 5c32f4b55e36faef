"""`Scene.playbook()`: whatever the devices say (options, texts, names, errors), the text is a
playbook that loads back to exactly the saved commands, and nothing a device says becomes YAML."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from cmdctl.api.scene import Scene
from cmdctl.core.errors import DeviceUnavailable
from cmdctl.core.model import Command
from cmdctl.device.scene import NO_STATE, DeviceScene, LeftOut, Setting
from cmdctl.inputs.playbook import parse_playbook

texts = st.text(max_size=40)
options = texts.filter(lambda t: t.strip() != "")
fractions = st.floats(0, 1).map(lambda f: round(f, 4))
numbers = st.floats(-1e9, 1e9).map(lambda f: round(f, 6))


@st.composite
def settings_of(draw: st.DrawFn) -> list[Setting]:
    """One of each kind a scene writes, with drawn values."""
    light: dict[str, object] = {"state": draw(st.booleans()), "brightness": draw(fractions)}
    if draw(st.booleans()):
        light["rgb"] = [1.0, draw(fractions), 0.0]
        light["effect"] = draw(options)
    commands = [
        Command("switch", "power", {"state": draw(st.booleans())}),
        Command("number", "level", {"value": draw(numbers)}),
        Command("select", "mood", {"option": draw(options)}),
        Command("text", "note", {"value": draw(texts)}),
        Command("light", "lamp", light),
        Command("cover", "blind", {"position": draw(fractions)}),
        Command("valve", "water", {"position": draw(st.sampled_from([0.0, 1.0]))}),
        Command("fan", "fan", {"state": draw(st.booleans()), "preset_mode": draw(options)}),
        Command("climate", "ac", {"mode": "off", "fan_mode": "on", "custom_preset": draw(options),
                                  "target_temperature": draw(numbers)}),
        Command("media_player", "speaker", {"command": "mute", "volume": draw(fractions)}),
    ]  # fmt: skip
    return [Setting(c, draw(texts), draw(texts)) for c in commands]


@settings(max_examples=150, deadline=None)
@given(settings_of(), texts, texts, texts)
def test_the_playbook_loads_back_to_the_saved_commands(
    saved: list[Setting], friendly: str, reason: str, pattern: str
) -> None:
    scene = Scene(
        pattern=pattern or "all",
        taken_at=1_800_000_000.0,
        devices=(
            DeviceScene("bar-tv-1", friendly, tuple(saved), (LeftOut("text.x", NO_STATE, reason),)),
            DeviceScene("yes", error=DeviceUnavailable("yes", reason)),  # YAML's true as a name
            DeviceScene("2", friendly, tuple(saved[:1])),  # a number as a name
        ),
    )
    text = scene.playbook("a b.yml")
    book = parse_playbook(text)
    got = [(s.targets, s.command) for s in book.steps]
    assert got == [(("bar-tv-1",), s.command) for s in saved] + [(("2",), saved[0].command)]
    assert book.targets == ("bar-tv-1", "2")
    # Comments stay comments, whatever a device says: no line but the playbook's own keys.
    keys = {line.split(":")[0] for line in text.splitlines() if not line.lstrip().startswith("#")}
    assert keys <= {
        "", "name", "targets", "priority", "expires", "defaults", "  attempts", "  verify",
        "steps", "  - name", "    targets", "      state", "      brightness", "      rgb",
        "      effect", "      preset_mode", "      mode", "      fan_mode", "      custom_preset",
        "      target_temperature", "      command", "      volume",
    } | {f"    {s.command.selector}" for s in saved}  # fmt: skip
    assert all(len(line) <= 80 for line in text.splitlines() if line.lstrip().startswith("#"))


def test_an_empty_scene_has_no_playbook() -> None:
    scene = Scene("tvs", 0.0, (DeviceScene("bar-tv-1"),))
    try:
        scene.playbook()
    except ValueError as err:
        assert "nothing to restore" in str(err)
    else:
        raise AssertionError("a playbook without steps was written")


def test_a_saved_text_that_looks_like_a_variable_stays_text() -> None:
    # A banner or option a device holds may contain `${`: the playbook must not read it as a
    # variable reference (an unset one would refuse the whole restore).
    saved = [
        Setting(Command("text", "banner", {"value": "Tonight ${team} $${x} $"}), "b", "b"),
        Setting(Command("select", "mood", {"option": "${mood}"}), "m", "m"),
    ]
    scene = Scene("tvs", 1_800_000_000.0, (DeviceScene("bar-tv-1", "TV", tuple(saved)),))
    book = parse_playbook(scene.playbook())
    assert [s.command for s in book.steps] == [s.command for s in saved]
