"""Time and conditions on one device: `delay:`, `wait_until:`, `when:`, `after: {scope: device}`
as a playbook says them, what expansion makes of them, and the located errors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cmdctl.core.errors import InputError
from cmdctl.core.model import Condition, Coordination
from cmdctl.inputs.inventory import Inventory
from cmdctl.inputs.playbook import Plan, expand, load_playbook

from .conftest import NOW, counter_ids

Write = Callable[[str, str], Path]


def _plan(path: Path, inv: Inventory, **kwargs: Any) -> Plan:
    return expand(load_playbook(path), inv, now=NOW, ids=counter_ids(), who="ann@bar", **kwargs)


def _by_step(plan: Plan) -> dict[str, dict[str, Coordination]]:
    out: dict[str, dict[str, Coordination]] = {}
    for entry in plan.queued:
        out.setdefault(entry.step, {})[entry.device] = entry.coordination
    return out


def test_a_delay_makes_the_devices_next_step_wait_for_it_on_that_device(
    venue: Inventory, write: Write
) -> None:
    path = write(
        "p.yml",
        """\
        targets: tvs
        steps:
          - name: power on
            switch.tv_power: on
            targets: patio
            delay: 5s
            wait_until: {binary_sensor.tv_on: on, timeout: 20s}
          - name: input
            select.input: HDMI 1
            when: {switch.tv_power: "on"}
          - name: volume
            number.volume: 20
            after: {step: input, scope: device}
          - name: channel
            text.channel: "206"
            after: input
        """,
    )
    steps = _by_step(_plan(path, venue))
    tv_on = Condition("binary_sensor", "tv_on", True, 20.0)
    assert set(steps["power on"].values()) == {Coordination(wait_until=tv_on)}
    power = Condition("switch", "tv_power", True)
    # On the patio TVs the input waits 5s after their own power on; the bar TVs have no
    # power-on step, so nothing holds their input.
    inputs = steps["input"]
    assert {inputs["patio-tv-1"], inputs["patio-tv-2"]} == {
        Coordination(after="power on", scope="device", gap=5.0, when=power)
    }
    assert inputs["bar-tv-1"] == Coordination(when=power)
    assert set(steps["volume"].values()) == {Coordination(after="input", scope="device")}
    assert set(steps["channel"].values()) == {Coordination(after="input")}  # the whole batch


def test_a_delay_keeps_the_scope_of_an_after_naming_the_same_step(
    venue: Inventory, write: Write
) -> None:
    path = write(
        "p.yml",
        """\
        targets: patio
        steps:
          - {name: power on, switch.tv_power: on, delay: 1m30s}
          - {name: input, select.input: HDMI 1, after: power on, on_failure: continue}
        """,
    )
    (coordination,) = set(_by_step(_plan(path, venue))["input"].values())
    assert coordination == Coordination(after="power on", on_failure="continue", gap=90.0)


ERRORS = [
    (
        "  - {name: a, switch.tv_power: on, mode: immediate, delay: 2s}\n"
        "  - {name: b, select.input: HDMI 1}\n",
        (4, 53),
        "an immediate step runs at once, inline; 'delay' needs a queued step",
    ),
    (
        "  - {name: a, switch.tv_power: on, delay: 2h}\n  - {name: b, select.input: HDMI 1}\n",
        (4, 43),
        "delay of 2h is longer than 60 minutes",
    ),
    (
        "  - {name: a, switch.tv_power: on}\n  - {name: b, select.input: HDMI 1, delay: 2s}\n",
        (5, 37),
        "delay: on the last step ('b') has no next step to hold back",
    ),
    (
        "  - name: a\n    switch.tv_power: on\n    when: {sensor.temperature: on}\n",
        (6, 32),
        "when sensor.temperature: 'on' is not a number",
    ),
    (
        "  - name: a\n    switch.tv_power: on\n    when: {media_player.tv: playing}\n",
        (6, 12),
        "when: cannot read 'media_player' entities",
    ),
    (
        "  - name: a\n    switch.tv_power: on\n    when: {switch.x: on, switch.y: off}\n",
        (6, 26),
        "when names exactly one entity and its value; this one has 2",
    ),
    (
        "  - name: a\n    switch.tv_power: on\n"
        "    wait_until: {binary_sensor.tv_on: on, timeout: 0s}\n",
        (6, 52),
        "wait_until timeout must be longer than 0",
    ),
    (
        "  - name: a\n    switch.tv_power: on\n    wait_until: {binary_sensor.tv_on: maybe}\n",
        (6, 39),
        "wait_until binary_sensor.tv_on: 'maybe' is not on or off",
    ),
    (
        "  - {name: a, switch.tv_power: on}\n"
        "  - {name: b, select.input: HDMI 1, after: {step: a, scope: room}}\n",
        (5, 61),
        "unknown scope 'room'",
    ),
    (
        "  - {name: a, switch.tv_power: on}\n"
        "  - {name: b, select.input: HDMI 1, after: {step: c, scope: device}}\n",
        (5, 51),
        "after: no earlier step is named 'c'",
    ),
    (
        "  - {name: a, switch.tv_power: on}\n"
        "  - {name: b, select.input: HDMI 1, after: {scope: device}}\n",
        (5, 44),
        "after: needs a step",
    ),
]


@pytest.mark.parametrize(("steps", "where", "message"), ERRORS)
def test_bad_flow_keys_name_file_line_and_column(
    write: Write, steps: str, where: tuple[int, int], message: str
) -> None:
    path = write("p.yml", "name: t\ntargets: tvs\nsteps:\n" + steps)
    with pytest.raises(InputError) as caught:
        load_playbook(path)
    err = caught.value
    assert (err.message, err.file, (err.line, err.column)) == (message, str(path), where)
    assert err.hint


def test_a_step_waiting_for_another_step_than_the_delayed_one_is_refused(
    venue: Inventory, write: Write
) -> None:
    path = write(
        "p.yml",
        """\
        targets: patio
        steps:
          - {name: input, select.input: HDMI 2}
          - {name: power on, switch.tv_power: on, delay: 5s}
          - {name: volume, number.volume: 20, after: input}
        """,
    )
    with pytest.raises(InputError) as caught:
        _plan(path, venue)
    err = caught.value
    assert err.message == (
        "step 'volume' waits for 'input', but on patio-tv-1 it follows 'power on', whose "
        "delay: holds it back; a step waits for one step"
    )
    assert (err.line, err.column) == (5, 46)
