"""Playbook variables: `vars:` in the inventory and the playbook, `--var`, `${name}` in steps."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cmdctl.core.errors import InputError
from cmdctl.core.model import Command
from cmdctl.inputs import variables
from cmdctl.inputs.inventory import load_inventory
from cmdctl.inputs.playbook import Plan, expand, load_playbook
from cmdctl.inputs.variables import Value

from .conftest import NOW, counter_ids

Write = Callable[[str, str], Path]

VENUE = """\
devices:
  tv-1: {host: a, groups: [bar, tvs]}
  tv-2: {host: b, groups: [bar, tvs]}
  tv-3: {host: c, groups: [tvs]}
  ir-1: {host: d, groups: [ir, bar]}
groups:
  venue: [bar, tvs]
"""
STEP = "name: t\ntargets: tvs\nsteps:\n  - text.channel: ${x}\n"


def _plan(write: Write, inventory: str, playbook: str, given: dict[str, str] | None = None) -> Plan:
    inv = load_inventory(write("devices.yml", inventory), env={})
    book = load_playbook(write("p.yml", playbook))
    return expand(
        book, inv, now=NOW, ids=counter_ids(), who="ann@bar", variables=variables.given(given)
    )


def _args(plan: Plan) -> dict[str, dict[str, object]]:
    """device → args of its (single) command."""
    return {entry.device: dict(entry.command.args) for entry in plan.queued}


def _error(call: Callable[[], object]) -> InputError:
    with pytest.raises(InputError) as caught:
        call()
    return caught.value


# --- which value wins -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("present", "winner"),
    [
        (("defaults",), "defaults"),
        (("defaults", "playbook"), "playbook"),
        (("playbook", "venue"), "venue"),  # a group of the device beats the playbook
        (("defaults", "playbook", "venue", "bar"), "bar"),  # bar (3 devices) < venue (4)
        (("bar", "entry"), "entry"),  # the top-level entry naming the device beats its groups
        (("defaults", "playbook", "bar", "entry", "own"), "own"),
        (("defaults", "playbook", "venue", "bar", "entry", "own", "--var"), "--var"),
        (("--var",), "--var"),
    ],
)
def test_precedence(write: Write, present: tuple[str, ...], winner: str) -> None:
    """Each layer present sets x to its own name; tv-1 gets the most specific one."""
    inventory = VENUE
    if "own" in present:
        inventory = inventory.replace("tvs]}", "tvs], vars: {x: own}}", 1)
    if "defaults" in present:
        inventory = "defaults: {vars: {x: defaults}}\n" + inventory
    entries = [f"  {name}: {{x: {name}}}\n" for name in ("venue", "bar") if name in present]
    if "entry" in present:
        entries.append("  tv-1: {x: entry}\n")
    if entries:
        inventory += "vars:\n" + "".join(entries)
    playbook = ("vars: {x: playbook}\n" if "playbook" in present else "") + STEP
    playbook = playbook.replace("targets: tvs", "targets: tv-1")
    given = {"x": "--var"} if "--var" in present else None
    assert _args(_plan(write, inventory, playbook, given))["tv-1"] == {"value": winner}


def test_each_variable_resolves_on_its_own(write: Write) -> None:
    inventory = VENUE.replace("{host: a,", "{host: a, vars: {a: own},") + (
        "defaults: {vars: {a: d, b: d, c: d}}\nvars:\n  bar: {b: bar}\n"
    )
    playbook = 'name: t\ntargets: tvs\nvars: {c: pb}\nsteps:\n  - text.channel: "${a} ${b} ${c}"\n'
    args = _args(_plan(write, inventory, playbook))
    assert args == {
        "tv-1": {"value": "own bar pb"},
        "tv-2": {"value": "d bar pb"},
        "tv-3": {"value": "d d pb"},
    }


def test_equal_sized_groups_setting_different_values_is_an_error(write: Write) -> None:
    # tv-1 and tv-2 are in bar and in tvs, both of 3 devices: neither is more specific
    inventory = VENUE + "vars:\n  bar: {x: 1}\n  tvs: {x: 2}\n"
    err = _error(lambda: load_inventory(write("devices.yml", inventory), env={}))
    assert (err.line, err.column) == (10, 12)
    assert err.message.startswith(
        "tv-1 is in groups bar and tvs (3 devices each), which set x differently ('1' at "
    )
    assert err.hint == "set x on tv-1 itself, or in one of the two groups"
    same = VENUE + "vars:\n  bar: {x: 1}\n  tvs: {x: 1}\n"  # the same value: no question
    inv = load_inventory(write("devices.yml", same), env={})
    assert inv.by_name["tv-1"].vars["x"].value == 1
    own = (
        VENUE.replace("{host: a,", "{host: a, vars: {x: 3},") + "vars: {bar: {x: 1}, tvs: {x: 2}}\n"
    )
    err = _error(lambda: load_inventory(write("devices.yml", own), env={}))
    assert err.message.startswith("tv-2 is in groups bar and tvs")  # tv-1 says it itself
    both = own.replace("{host: b,", "{host: b, vars: {x: 4},")
    inv = load_inventory(write("devices.yml", both), env={})
    assert [inv.by_name[tv].vars["x"].value for tv in ("tv-1", "tv-2", "tv-3")] == [3, 4, 2]


def test_vars_naming_no_device_or_group(write: Write) -> None:
    err = _error(lambda: load_inventory(write("d.yml", VENUE + "vars: {channel: 5}\n"), env={}))
    assert (err.line, err.column, err.message) == (
        8,
        8,
        "vars names 'channel', which is no device or group",
    )
    assert err.hint is not None and "defaults: {vars: ...}" in err.hint
    err = _error(lambda: load_inventory(write("d.yml", VENUE + "vars: {ir1: {x: 1}}\n"), env={}))
    assert err.hint == "did you mean 'ir-1'?"


@pytest.mark.parametrize(
    ("vars_text", "column", "message", "hint"),
    [
        ("{x: [1, 2]}", 27, "variable x must be one value, not a list", "give each field"),
        ("{x: {a: 1}}", 27, "variable x must be one value, not a mapping", "give each field"),
        ("{x: }", 27, "variable x has no value", "for empty text write ''"),
        ("{x: !secret pin}", 27, "variable x cannot be a !secret", "write the !secret in the step"),
        ('{x: "${HOME}"}', 27, "variable x: ${...} inside a value is not expanded", "$${"),
        ("{1x: 1}", 24, "bad variable name '1x'", "letters, digits and '_'"),
        ("{x-y: 1}", 24, "bad variable name 'x-y'", "letters, digits and '_'"),
        ("[x]", 23, "vars of tv must be a mapping, not a list", None),
    ],
)
def test_bad_inventory_values(
    write: Write, vars_text: str, column: int, message: str, hint: str | None
) -> None:
    text = f"devices:\n  tv: {{host: a, vars: {vars_text}}}\n"
    err = _error(lambda: load_inventory(write("devices.yml", text), env={}))
    assert (err.file, err.line, err.column) == (
        str(write("x", "").parent / "devices.yml"),
        2,
        column,
    )
    assert err.message.startswith(message)
    assert (hint is None and err.hint is None) or (hint and err.hint and hint in err.hint)


def test_values_keep_their_type_and_text(write: Write) -> None:
    text = (
        "defaults:\n  vars: {n: 30, f: 0.40, b: on, s: HDMI 1, q: '07', o: 07, e: 'a $${b}'}\n"
        "devices:\n  tv: {host: a}\n"
    )
    found = load_inventory(write("devices.yml", text), env={}).default_vars
    assert {name: (v.value, v.text) for name, v in found.items()} == {
        "n": (30, "30"),
        "f": (0.4, "0.40"),
        "b": (True, "on"),
        "s": ("HDMI 1", "HDMI 1"),
        "q": ("07", "07"),
        "o": (7, "07"),
        "e": ("a ${b}", "a ${b}"),  # the escape undone; never expanded
    }
    assert found["n"].source == "the inventory's defaults" and found["n"].loc is not None


# --- references in steps ------------------------------------------------------------------------

INVENTORY = """\
defaults:
  vars: {volume: 30, table: 07, on_: on, box: 2, channel: "206", level: 0.5}
devices:
  tv-1: {host: a, groups: [tvs]}
  tv-2: {host: b, groups: [tvs], vars: {volume: 45, channel: "501", level: 0.25}}
"""


def test_a_whole_reference_takes_the_typed_value(write: Write) -> None:
    playbook = (
        "name: t\ntargets: tvs\nsteps:\n"
        "  - number.volume: ${volume}\n"
        '  - name: quoted\n    number.volume: "${volume}"\n'  # YAML needs quotes inside {...}
        "  - switch.tv_power: ${on_}\n"
        '  - light.backlight: {state: "${on_}", brightness: "${level}"}\n'
    )
    plan = _plan(write, INVENTORY, playbook)
    got = [(e.device, e.command.selector, dict(e.command.args)) for e in plan.queued]
    assert got == [
        ("tv-1", "number.volume", {"value": 30.0}),
        ("tv-2", "number.volume", {"value": 45.0}),
        ("tv-1", "number.volume", {"value": 30.0}),
        ("tv-2", "number.volume", {"value": 45.0}),
        ("tv-1", "switch.tv_power", {"state": True}),
        ("tv-2", "switch.tv_power", {"state": True}),
        ("tv-1", "light.backlight", {"state": True, "brightness": 0.5}),
        ("tv-2", "light.backlight", {"state": True, "brightness": 0.25}),
    ]


def test_a_reference_inside_text_inserts_the_text_as_written(write: Write) -> None:
    playbook = 'name: t\ntargets: tvs\nsteps:\n  - text.channel: "Table ${table}, ch ${channel}"\n'
    assert _args(_plan(write, INVENTORY, playbook)) == {
        "tv-1": {"value": "Table 07, ch 206"},
        "tv-2": {"value": "Table 07, ch 501"},
    }


def test_references_anywhere_in_action_data(write: Write) -> None:
    playbook = """\
name: t
targets: tvs
steps:
  - action: send_tv_command
    data:
      box: ${box}
      channel: "${channel}"
      label: "box ${box}"
      levels: ["${level}", 1]
"""
    assert _args(_plan(write, INVENTORY, playbook)) == {
        "tv-1": {"data": {"box": 2, "channel": "206", "label": "box 2", "levels": [0.5, 1]}},
        "tv-2": {"data": {"box": 2, "channel": "501", "label": "box 2", "levels": [0.25, 1]}},
    }


def test_dollar_dollar_brace_is_a_literal_and_keeps_the_fast_path(write: Write) -> None:
    playbook = 'name: t\ntargets: tvs\nsteps:\n  - text.channel: "$${table} costs $5"\n'
    book = load_playbook(write("p.yml", playbook))
    assert book.steps[0].template is None
    assert book.steps[0].command == Command("text", "channel", {"value": "${table} costs $5"})
    assert _args(_plan(write, INVENTORY, playbook)) == {
        "tv-1": {"value": "${table} costs $5"},
        "tv-2": {"value": "${table} costs $5"},
    }


def test_steps_without_references_share_one_command(write: Write) -> None:
    plan = _plan(write, INVENTORY, "name: t\ntargets: tvs\nsteps:\n  - number.volume: 30\n")
    first, second = plan.queued
    assert first.command is second.command


def test_devices_with_the_same_values_share_one_command(write: Write) -> None:
    inventory = INVENTORY.replace(
        "tv-2: {host: b, groups: [tvs], vars: {volume: 45, ",
        "tv-2: {host: b, groups: [tvs], vars: {",
    ) + ("  tv-3: {host: c, groups: [tvs], vars: {volume: 45}}\n")
    plan = _plan(write, inventory, "name: t\ntargets: tvs\nsteps:\n  - number.volume: ${volume}\n")
    one, two, three = plan.queued
    assert one.command is two.command  # both 30 (defaults)
    assert three.command is not one.command and three.command.args == {"value": 45.0}


@pytest.mark.parametrize(
    "value",
    ["${}", "${ x }", "${1x}", "${x", "a ${x-y} b"],
)
def test_bad_references_are_refused_at_load(write: Write, value: str) -> None:
    path = write("p.yml", f'name: t\ntargets: tvs\nsteps:\n  - text.channel: "{value}"\n')
    err = _error(lambda: load_playbook(path))
    assert (err.line, err.column) == (4, 19)
    assert err.message.startswith("bad variable reference '${")
    assert err.hint == "a reference is ${name} (letters, digits, '_'); write $${ for a literal ${"


def test_an_unset_variable_names_the_device_and_the_reference(write: Write) -> None:
    playbook = "name: t\ntargets: tvs\nsteps:\n  - number.volume: 1\n  - text.channel: ${input}\n"
    inventory = INVENTORY.replace("level: 0.25}", "level: 0.25, input: x}")
    err = _error(lambda: _plan(write, inventory, playbook))
    assert err.file is not None and err.file.endswith("p.yml")
    assert (err.line, err.column) == (5, 19)
    assert err.message == "${input} is not set for tv-1"
    assert err.hint == (
        "set vars: {input: ...} on the device, a group or the inventory's defaults,"
        " in the playbook's vars:, or pass --var input=..."
    )
    # set for tv-1 only by --var: fine everywhere
    assert _args(_plan(write, INVENTORY, STEP, {"x": "HDMI 1"}))["tv-2"] == {"value": "HDMI 1"}


def test_a_value_that_does_not_fit_names_the_device_and_the_value(write: Write) -> None:
    inventory = INVENTORY.replace("vars: {volume: 45,", "vars: {volume: loud,")
    playbook = "name: t\ntargets: tvs\nsteps:\n  - number.volume: ${volume}\n"
    err = _error(lambda: _plan(write, inventory, playbook))
    assert (err.line, err.column) == (4, 20)
    assert err.message == "tv-2: number.volume: a number must be a number, not 'loud'"
    assert err.hint is not None
    assert err.hint.startswith("${volume} is 'loud' (device tv-2, ")
    assert err.hint.endswith("devices.yml:5:49)")
    # deep in a mapping: located at the field
    playbook = (
        'name: t\ntargets: tvs\nsteps:\n  - light.backlight:\n      brightness: "${volume}"\n'
    )
    err = _error(lambda: _plan(write, INVENTORY, playbook))
    assert (err.line, err.column) == (5, 19)
    assert err.message.startswith("tv-1: light.backlight: brightness")


def test_playbook_vars_are_checked_at_load(write: Write) -> None:
    path = write("p.yml", "name: t\ntargets: tvs\nvars: {volume: [1]}\nsteps:\n  - number.v: 1\n")
    err = _error(lambda: load_playbook(path))
    assert (err.line, err.column, err.message) == (
        3,
        16,
        "variable volume must be one value, not a list",
    )
    book = load_playbook(
        write("p.yml", "name: t\ntargets: tvs\nvars: {v: 3}\nsteps:\n  - number.v: 1\n")
    )
    assert book.vars == {"v": Value(3, "3", "the playbook")}


def test_given_values_are_read_as_yaml_scalars() -> None:
    assert variables.given(["a=30", "b=HDMI 1", "c=on", "d=", "e='07'", "f=1.50"]) == {
        "a": Value(30, "30", "--var"),
        "b": Value("HDMI 1", "HDMI 1", "--var"),
        "c": Value(True, "on", "--var"),
        "d": Value("", "", "--var"),
        "e": Value("07", "07", "--var"),
        "f": Value(1.5, "1.50", "--var"),
    }
    assert variables.given(["a=1", "a=2"]) == {"a": Value(2, "2", "--var")}  # the last wins
    assert variables.given({"a": 30, "b": True, "c": "x"}) == {
        "a": Value(30, "30", "--var"),
        "b": Value(True, "true", "--var"),
        "c": Value("x", "x", "--var"),
    }


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        ("channel", "--var 'channel' is not name=value", "for example --var channel=206"),
        ("=3", "--var '=3' is not name=value", "for example --var channel=206"),
        ("1x=3", "--var: bad variable name '1x'", variables.NAME_HINT),
        (
            "c={a: 1}",
            "--var c must be one value, not a mapping",
            "quote the value: --var 'c=\"{a: 1}\"'",
        ),
        (
            "c=Game: on",
            "--var c must be one value, not a mapping",
            "quote the value: --var 'c=\"Game: on\"'",
        ),
        (
            "c=~",
            "--var: variable c has no value",
            "write a value after the ':'; for empty text write ''",
        ),
        ("c=a ${b}", "--var: variable c: ${...} inside a value is not expanded", None),
    ],
)
def test_bad_given_values(text: str, message: str, hint: str | None) -> None:
    err = _error(lambda: variables.given([text]))
    assert err.message == message and err.file is None
    assert hint is None or err.hint == hint


def test_a_given_name_no_step_refers_to_is_refused(write: Write) -> None:
    err = _error(lambda: _plan(write, INVENTORY, STEP, {"y": "1"}))
    assert err.message.endswith("p.yml refers to ${y}") and err.message.startswith("--var y: ")
    assert err.hint == "its variables: x"
    err = _error(lambda: _plan(write, INVENTORY, STEP.replace("${x}", "${volume}"), {"volum": "1"}))
    assert err.hint == "did you mean 'volume'?"


def test_idempotence_follows_each_devices_command(write: Write) -> None:
    inventory = INVENTORY.replace("vars: {volume: 45,", "vars: {cmd: volume_up, volume: 45,")
    inventory = inventory.replace("defaults:\n  vars: {", "defaults:\n  vars: {cmd: play, ")
    playbook = "name: t\ntargets: tvs\nsteps:\n  - media_player.tv: ${cmd}\n"
    plan = _plan(write, inventory, playbook)
    assert {e.device: e.idempotent for e in plan.queued} == {"tv-1": True, "tv-2": False}
    plan = _plan(write, inventory, playbook.replace("${cmd}\n", "${cmd}\n    idempotent: true\n"))
    assert {e.device: e.idempotent for e in plan.queued} == {"tv-1": True, "tv-2": True}


def test_failover_candidates_must_agree(write: Write) -> None:
    playbook = "name: t\ntargets: {failover: [tv-1, tv-2]}\nsteps:\n  - number.volume: ${volume}\n"
    err = _error(lambda: _plan(write, INVENTORY, playbook))
    assert (err.line, err.column) == (4, 20)
    assert err.message == (
        "step 'number.volume' is one command for its failover candidates, but its variables"
        " give tv-1 and tv-2 different values"
    )
    plan = _plan(write, INVENTORY, playbook.replace("volume}", "box}"))
    (entry,) = plan.queued
    assert (entry.device, entry.command.args) == ("tv-1", {"value": 2.0})
