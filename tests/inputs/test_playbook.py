"""Playbook loading (every error path, with its location) and expansion into entries."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cmdctl.core.errors import InputError
from cmdctl.core.model import Command, Priority, State
from cmdctl.inputs.inventory import Inventory, load_inventory
from cmdctl.inputs.playbook import Plan, expand, load_playbook

from .conftest import EXAMPLES, NOW, BigVenue, counter_ids

Write = Callable[[str, str], Path]

HEAD = "name: t\ntargets: tvs\nsteps:\n"


def _error(path: Path, **kwargs: int) -> InputError:
    with pytest.raises(InputError) as caught:
        load_playbook(path, **kwargs)
    return caught.value


def _expand(path: Path, inv: Inventory, **kwargs: object) -> object:
    return expand(load_playbook(path), inv, now=NOW, ids=counter_ids(), who="ann@bar", **kwargs)  # type: ignore[arg-type]


def test_steps_and_defaults(write: Write) -> None:
    path = write(
        "p.yml",
        """\
        targets: tvs
        defaults: {attempts: 4, verify: false}
        steps:
          - switch.tv_power: on
          - name: blink
            button.identify: press
            mode: immediate
          - action: send_tv_command
            data: {box: 1, channel: "206"}
            targets: [ir, bar-tv-1]
            attempts: 1
            verify: true
            idempotent: false
          - media_player.tv: volume_up
          - name: play
            media_player.tv: play
        """,
    )
    pb = load_playbook(path)
    assert pb.name == "p"  # defaults to the file name
    assert pb.priority is Priority.NORMAL and pb.at is None and pb.expires is None
    power, blink, act, up, play = pb.steps
    assert (power.name, power.mode, power.attempts, power.verify, power.idempotent) == (
        "switch.tv_power",
        "queued",
        4,
        False,
        True,
    )
    assert power.command == Command("switch", "tv_power", {"state": True})
    assert (blink.name, blink.mode, blink.idempotent) == ("blink", "immediate", False)
    assert act.name == "action:send_tv_command"
    assert act.command == Command(
        "action", "send_tv_command", {"data": {"box": 1, "channel": "206"}}
    )
    assert (act.targets, act.attempts, act.verify, act.idempotent) == (
        ("ir", "bar-tv-1"),
        1,
        True,
        False,
    )
    assert (up.idempotent, play.idempotent) == (False, True)
    assert str(blink.loc).endswith("p.yml:5:5")


@pytest.mark.parametrize(
    ("body", "where", "message", "hint"),
    [
        (
            "name: t\ntarget: tvs\nsteps: []\n",
            (2, 1),
            "unknown key 'target' in the playbook",
            "did you mean 'targets'?",
        ),
        ("name: t\nsteps:\n  - switch.a: on\n", (1, 1), "the playbook has no 'targets:'", None),
        ("targets: tvs\n", (1, 1), "the playbook has no 'steps:'", None),
        ("targets: tvs\nsteps: []\n", (2, 8), "steps must be a non-empty list", None),
        (
            "targets: []\nsteps: [{switch.a: on}]\n",
            (1, 10),
            "targets must not be an empty list",
            None,
        ),
        (
            "targets: tvs\npriority: urgent\nsteps: [{switch.a: on}]\n",
            (2, 11),
            "unknown priority 'urgent'",
            "one of: high, normal, low",
        ),
        (
            "targets: tvs\npriority: hgih\nsteps: [{switch.a: on}]\n",
            (2, 11),
            "unknown priority 'hgih'",
            "did you mean 'high'?",
        ),
        ("targets: tvs\nat: soon\nsteps: [{switch.a: on}]\n", (2, 5), "at: bad time 'soon'", None),
        (
            "targets: tvs\nexpires: +2x\nsteps: [{switch.a: on}]\n",
            (2, 10),
            "expires: bad relative time '+2x'",
            None,
        ),
        (
            "targets: tvs\ndefaults: {attempts: 0}\nsteps: [{switch.a: on}]\n",
            (2, 22),
            "attempts must be between 1 and 1000, not 0",
            None,
        ),
        (
            "targets: tvs\ndefaults: {attempt: 2}\nsteps: [{switch.a: on}]\n",
            (2, 12),
            "unknown key 'attempt' in defaults",
            "did you mean 'attempts'?",
        ),
        (
            "targets: tvs\ndefaults: {verify: 1}\nsteps: [{switch.a: on}]\n",
            (2, 20),
            "verify must be true or false, not '1'",
            None,
        ),
        (
            HEAD + "  - swich.tv_power: on\n",
            (4, 5),
            "unknown domain 'swich' in 'swich.tv_power'",
            "did you mean 'switch'?",
        ),
        (
            HEAD + "  - switch.tv_power: on\n    mdoe: immediate\n",
            (5, 5),
            "unknown step key 'mdoe'",
            "did you mean 'mode'?",
        ),
        (
            HEAD + "  - switch.tv_power: on\n    mode: later\n",
            (5, 11),
            "unknown mode 'later'",
            "queued or immediate",
        ),
        (
            HEAD + "  - switch.tv_power: on\n    select.input: HDMI 1\n",
            (5, 5),
            "a step has exactly one command; this one has switch.tv_power and select.input",
            "split it into separate steps",
        ),
        (HEAD + "  - name: nothing\n", (4, 5), "this step has no command", None),
        (HEAD + "  - switch: on\n", (4, 5), "'switch' needs an entity", None),
        (
            HEAD + "  - switch.tv_power: on\n    data: {x: 1}\n",
            (5, 5),
            "'data' belongs to an 'action:' step",
            None,
        ),
        (
            HEAD + "  - switch.tv_power: on\n  - switch.tv_power: off\n",
            (5, 5),
            "duplicate step name 'switch.tv_power' (first at line 4)",
            "give one of them a different `name:`",
        ),
        (
            HEAD + "  - name: x\n    switch.a: on\n  - name: x\n    switch.b: on\n",
            (6, 5),
            "duplicate step name 'x' (first at line 4)",
            None,
        ),
        (
            HEAD + "  - switch.tv_power: on\n    attempts: many\n",
            (5, 15),
            "attempts must be a whole number, not 'many'",
            None,
        ),
        (
            HEAD + "  - switch.tv_power: on\n    idempotent: sometimes\n",
            (5, 17),
            "idempotent must be true or false, not 'sometimes'",
            None,
        ),
        (
            HEAD + "  - switch.tv_power: maybe\n",
            (4, 22),
            "switch.tv_power: a switch takes on or off, not 'maybe'",
            None,
        ),
        (
            HEAD + "  - light.backlight: {state: on, brightness: 40}\n",
            (4, 46),
            "light.backlight: brightness must be between 0 and 1, not 40",
            'like 0.4 or "40%"',
        ),
        (
            HEAD + "  - light.backlight: {state: on, brihgtness: 0.4}\n",
            (4, 34),
            "light.backlight: unknown field 'brihgtness'",
            "did you mean 'brightness'?",
        ),
        (
            HEAD + "  - light.backlight:\n      rgb: [1, 0.5, 7]\n",
            (5, 21),
            "light.backlight: each rgb component must be between 0 and 1, not 7",
            None,
        ),
        (
            HEAD + "  - number.volume: loud\n",
            (4, 20),
            "number.volume: a number must be a number, not 'loud'",
            None,
        ),
        (
            HEAD + "  - select.input: on\n",
            (4, 19),
            "select.input: a select option must be text, not True",
            "quote it",
        ),
        (
            HEAD + "  - text.banner: 206\n",
            (4, 18),
            "text.banner: a text value must be text, not 206",
            "quote it",
        ),
        (
            HEAD + "  - button.identify: hold\n",
            (4, 22),
            "button.identify: a button takes press, not 'hold'",
            None,
        ),
        (
            HEAD + "  - cover.blind: {position: 2}\n",
            (4, 29),
            "cover.blind: position must be between 0 and 1, not 2",
            None,
        ),
        (HEAD + "  - fan.fan: {direction: up}\n", (4, 26), "fan.fan: unknown direction 'up'", None),
        (HEAD + "  - climate.ac: {mode: warm}\n", (4, 24), "climate.ac: unknown mode 'warm'", None),
        (
            HEAD + "  - lock.door: {command: open, code: 1234}\n",
            (4, 38),
            "lock.door: code (quote it) must be text, not 1234",
            "quote it",
        ),
        (
            HEAD + "  - valve.main: half\n",
            (4, 17),
            "valve.main: a valve takes open, close, stop or a mapping, not 'half'",
            None,
        ),
        (
            HEAD + "  - media_player.tv: louder\n",
            (4, 22),
            "media_player.tv: unknown media_player command 'louder'",
            None,
        ),
        (
            HEAD + "  - action: send_tv_command\n    data: [1]\n",
            (5, 11),
            "data must be a mapping of argument: value",
            None,
        ),
        (
            HEAD + "  - action: send_tv_command\n    data: {box: {x: 1}}\n",
            (5, 17),
            "action.send_tv_command: action argument box must be text, a number, true/false or a"
            " list of those, not a mapping",
            None,
        ),
        (HEAD + "  - action: send tv\n", (4, 5), "bad action name 'send tv' for action", None),
        (HEAD + "  - action: [x]\n", (4, 13), "action must be a string, not a list", None),
        (
            HEAD + "  - switch.tv_power: on\n    targets: 5\n",
            (5, 14),
            "targets must be a string, not '5'",
            "quote it",
        ),
        (
            "name: t\ntargets: tvs\nsteps:\n  - switch.a: !secret x\n",
            (4, 15),
            "switch.a: !secret x cannot be a switch value",
            "a secret can be a lock's code, a text value or an action's data argument",
        ),
        ("name: t\nname: u\n", (2, 1), "duplicate key 'name' (first at line 1)", None),
        ("- a\n- b\n", (1, 1), "a playbook must be a mapping, not a list", None),
        ("", (1, 1), "a playbook must be a mapping, not empty", None),
    ],
)
def test_load_errors(
    write: Write, body: str, where: tuple[int, int], message: str, hint: str | None
) -> None:
    path = write("p.yml", body)
    err = _error(path)
    assert err.message == message
    assert (err.file, (err.line, err.column)) == (str(path), where)
    if hint is not None:
        assert err.hint == hint


def test_too_many_steps_for_the_cap(write: Write) -> None:
    steps = "".join(f"  - name: s{i}\n    switch.a: on\n" for i in range(5))
    err = _error(write("p.yml", HEAD + steps), max_commands=3)
    assert err.message == "5 steps is more than the 3-command cap"
    assert err.hint == "raise it with --max-commands"


def test_expansion_is_step_major_with_increasing_ids(venue: Inventory) -> None:
    pb = load_playbook(EXAMPLES / "game-night.yml")
    ids = counter_ids()
    plan = expand(pb, venue, now=NOW, ids=ids, who="ann@bar")
    assert plan.batch == "id-000001"
    everything = sorted((*plan.queued, *plan.immediate), key=lambda e: e.id)
    assert [e.id for e in everything] == [f"id-{n:06d}" for n in range(2, 2 + plan.count)]
    order = [(e.step, e.device) for e in everything]
    tvs = venue.groups["tvs"]
    assert order[: len(tvs)] == [("blink", d) for d in tvs]
    assert order[len(tvs) : 2 * len(tvs)] == [("power on", d) for d in tvs]
    bar = venue.groups["bar"]
    assert order[-len(bar) :] == [("tune cable boxes", d) for d in bar]
    assert "ir-blaster-a" in bar
    assert {e.step for e in plan.immediate} == {"blink"}
    assert "blink" not in {e.step for e in plan.queued}
    assert plan.count == 6 * len(tvs) + len(bar)
    assert [d.name for d in plan.devices] == [*tvs, "ir-blaster-a"]  # not ir-blaster-b
    for entry in everything:
        assert entry.batch == plan.batch
        assert (entry.state, entry.origin, entry.who, entry.playbook) == (
            State.PENDING,
            "bulk",
            "ann@bar",
            "Game night",
        )
        start = NOW if entry in plan.immediate else NOW + 600  # inline steps run now
        assert (entry.created, entry.not_before, entry.expires) == (NOW, start, NOW + 600 + 7200)
        assert entry.priority is Priority.HIGH


def test_limit_intersects_targets(venue: Inventory) -> None:
    plan = _expand(EXAMPLES / "game-night.yml", venue, limit="patio,ir-blaster-*")
    devices = {(e.step, e.device) for e in (*plan.queued, *plan.immediate)}  # type: ignore[attr-defined]
    assert ("power on", "patio-tv-1") in devices
    assert ("tune cable boxes", "ir-blaster-a") in devices
    assert ("power on", "ir-blaster-a") not in devices  # not a target of that step
    assert not any(d.startswith("bar-") or d == "ir-blaster-b" for _, d in devices)


def test_limit_leaving_nothing_points_at_targets(venue: Inventory) -> None:
    path = EXAMPLES / "volume.yml"
    with pytest.raises(InputError) as caught:
        _expand(path, venue, limit="patio")
    err = caught.value
    assert err.message == "--limit 'patio' leaves none of this playbook's targets"
    assert (err.file, err.line, err.column) == (str(path), 3, 10)


def test_bad_limit_pattern(venue: Inventory) -> None:
    with pytest.raises(InputError) as caught:
        _expand(EXAMPLES / "volume.yml", venue, limit="patoi")
    assert caught.value.message == "--limit: pattern 'patoi' matches no device or group"
    assert caught.value.hint == "did you mean 'patio'?"


def test_unmatched_targets_located(venue: Inventory, write: Write) -> None:
    path = write("p.yml", "targets: [tvs, tv-*]\nsteps:\n  - switch.tv_power: on\n")
    with pytest.raises(InputError) as caught:
        _expand(path, venue)
    err = caught.value
    assert err.one_line() == (
        f"{path}:1:10: pattern 'tv-*' matches no device or group (hint: names are in {venue.path})"
    )
    path = write("q.yml", "targets: tvs\nsteps:\n  - switch.tv_power: on\n    targets: patoi\n")
    with pytest.raises(InputError) as caught:
        _expand(path, venue)
    assert (caught.value.line, caught.value.column, caught.value.hint) == (
        4,
        14,
        "did you mean 'patio'?",
    )


def test_over_the_cap_names_count_cap_and_option(venue: Inventory) -> None:
    path = EXAMPLES / "game-night.yml"
    with pytest.raises(InputError) as caught:
        expand(load_playbook(path), venue, now=NOW, ids=counter_ids(), who="x", max_commands=54)
    err = caught.value
    assert err.message == "the playbook expands to 55 commands, more than the cap of 54"
    assert err.hint and "--max-commands" in err.hint
    assert err.file == str(path) and (err.line, err.column) == (6, 10)  # the targets
    with pytest.raises(InputError, match="more than the cap of 10"):
        expand(load_playbook(path, max_commands=10), venue, now=NOW, ids=counter_ids(), who="x")
    plan = expand(load_playbook(path), venue, now=NOW, ids=counter_ids(), who="x", max_commands=55)
    assert plan.count == 8 * 6 + 7  # type: ignore[attr-defined]


def test_priority_and_at_overrides(venue: Inventory) -> None:
    plan = _expand(
        EXAMPLES / "game-night.yml",
        venue,
        priority=Priority.LOW,
        at="2027-01-15T09:00:00+00:00",
    )
    entry = plan.queued[0]  # type: ignore[attr-defined]
    assert entry.priority is Priority.LOW
    assert entry.not_before == NOW + 3600
    assert entry.expires == NOW + 3600 + 7200  # relative expires counts from `at`
    with pytest.raises(InputError, match="--at: bad time 'lunch'"):
        _expand(EXAMPLES / "game-night.yml", venue, at="lunch")


def test_expires_absolute_and_in_the_past(venue: Inventory, write: Write) -> None:
    path = write(
        "p.yml",
        "targets: patio\nexpires: 2027-01-15T10:00:00Z\nsteps:\n  - switch.tv_power: on\n",
    )
    plan = _expand(path, venue)
    assert plan.queued[0].expires == NOW + 7200  # type: ignore[attr-defined]
    path = write(
        "q.yml",
        "targets: patio\nexpires: 2027-01-15T07:00:00Z\nsteps:\n  - switch.tv_power: on\n",
    )
    with pytest.raises(InputError) as caught:
        _expand(path, venue)
    assert caught.value.message.startswith("expires: time '2027-01-15T07:00:00Z' is in the past")
    assert (caught.value.line, caught.value.column) == (2, 10)


def test_step_targets_replace_playbook_targets(venue: Inventory) -> None:
    plan = _expand(EXAMPLES / "closing-time.yml", venue)
    by_step: dict[str, list[str]] = {}
    for entry in plan.queued:  # type: ignore[attr-defined]
        by_step.setdefault(entry.step, []).append(entry.device)
    assert by_step["power off"] == list(venue.groups["tvs"])
    # [bar, tvs]: a list of patterns is their union, in inventory order
    assert by_step["cable boxes off"] == [*venue.groups["tvs"], "ir-blaster-a"]


def test_10k_commands_load_and_expand_fast(tmp_path: Path, big_venue: BigVenue) -> None:
    inventory_path = big_venue(1000)
    steps = [
        "switch.tv_power: on",
        "select.input: HDMI 1",
        "number.volume: 30",
        "light.backlight: {state: on, brightness: 0.4, rgb: '#ff8000'}",
        "text.channel: Game night",
        "button.identify: press",
        "media_player.tv: play",
        "cover.blind: open",
        "fan.fan: {state: on, speed_level: 2}",
        "lock.door: lock",
    ]
    playbook_path = tmp_path / "big.yml"
    playbook_path.write_text(
        "name: big\ntargets: tvs:!zone-0\nsteps:\n"
        + "".join(f"  - {step}\n" for step in steps)
        + "  - action: send_tv_command\n    data: {box: 1, channel: '206'}\n    targets: zone-0\n"
    )
    best = float("inf")
    for _ in range(3):
        # CPU time, not wall time: other test processes share the machine
        started = time.process_time()
        inv = load_inventory(inventory_path, env={})
        plan = expand(load_playbook(playbook_path), inv, now=NOW, ids=counter_ids(), who="x")
        best = min(best, time.process_time() - started)
    assert plan.count == 900 * 10 + 100
    # about 0.14 s of CPU here; the whole `cmdctl bulk` process must stay under 1 s
    assert best < 0.3, f"load + expand of 10,000 commands took {best:.3f}s of CPU"


def test_examples_fit_the_simulated_venue(tmp_path: Path) -> None:
    # The README's quick tour: `cmdctl simulate --count 5 --write-inventory devices.yml`, then
    # the example playbooks against that inventory (bar TVs in groups bar and tvs).
    lines = ["devices:"]
    for i in range(1, 6):
        lines += [f"  bar-tv-{i}:", "    host: 127.0.0.1", f"    port: {7000 + i}"]
        lines += ["    groups: [bar, tvs]"]
    path = tmp_path / "devices.yml"
    path.write_text("\n".join(lines) + "\n")
    inv = load_inventory(path, env={})
    tvs = [f"bar-tv-{i}" for i in range(1, 6)]
    expected = {
        # playbook: (its steps, the devices each step runs on, how many run inline)
        "game-night": (
            [
                "blink",
                "power on",
                "select.input",
                "volume",
                "backlight",
                "channel banner",
                "tune cable boxes",
            ],
            tvs,
            5,
        ),
        "closing-time": (["backlight off", "power off", "cable boxes off"], tvs, 0),
        "volume": (["number.volume"], tvs[1:], 0),  # bar:&tvs:!bar-tv-1
    }
    for name, (steps, devices, inline) in expected.items():
        plan = _expand(EXAMPLES / f"{name}.yml", inv)
        assert isinstance(plan, Plan)
        assert [step.name for step in plan.steps] == steps, name
        assert [device.name for device in plan.devices] == devices, name
        entries = plan.queued + plan.immediate
        assert sorted((e.step, e.device) for e in entries) == sorted(
            (step, device) for step in steps for device in devices
        ), name
        assert (plan.count, len(plan.immediate)) == (len(steps) * len(devices), inline), name
