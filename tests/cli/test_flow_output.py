"""What `bulk --check`, `queue ls` and `queue show` say about delays, waits, conditions and
the scope of barriers (issue 15): a batch barrier says "whole batch", never nothing."""

from __future__ import annotations

import json

from .helpers import Workspace, assert_clean

PLAYBOOK = """\
name: warm-up
targets: tvs
steps:
  - name: power on
    switch.tv_power: on
    targets: [tv-1, tv-2]
    delay: 5s
    wait_until: {binary_sensor.tv_on: on, timeout: 20s}
  - name: input
    select.input: HDMI 1
    when: {switch.tv_power: on}
  - name: volume
    number.volume: 20
    after: input
"""


def test_check_shows_waits_delays_conditions_and_scopes(workspace: Workspace) -> None:
    workspace.playbook("p.yml", PLAYBOOK)
    result = workspace.invoke("bulk", "p.yml", "--check")
    assert_clean(result, 0)
    tail = result.stdout.split("waits and conditions:\n", 1)[1].splitlines()
    assert tail[:4] == [
        "  power on: then waits until binary_sensor.tv_on is on (up to 20s)",
        '  input: 5s after "power on" (this device); only where switch.tv_power is on'
        " [on tv-1, tv-2]",
        "  input: only where switch.tv_power is on [on tv-3, tv-4, tv-5, … (8 devices)]",
        '  volume: after "input" (whole batch)',
    ]
    data = json.loads(workspace.invoke("bulk", "p.yml", "--check", "--json").stdout)
    first = {(c["step"], c["device"]): c for c in data["commands"]}
    assert first[("power on", "tv-1")]["wait_until"] == {
        "entity": "binary_sensor.tv_on",
        "value": True,
        "timeout": 20.0,
    }
    assert {k: first[("input", "tv-1")][k] for k in ("after", "scope", "delay", "when")} == {
        "after": "power on",
        "scope": "device",
        "delay": 5.0,
        "when": {"entity": "switch.tv_power", "value": True},
    }
    assert "after" not in first[("input", "tv-3")]
    assert first[("volume", "tv-3")]["scope"] == "batch"


def test_queue_ls_and_show_say_what_a_pending_entry_waits_for(workspace: Workspace) -> None:
    workspace.playbook("p.yml", PLAYBOOK)
    assert_clean(workspace.invoke("bulk", "p.yml"), 0)
    listing = workspace.invoke("queue", "ls", "--device", "tv-1")
    assert_clean(listing, 0)
    rows = {line.split()[2]: line for line in listing.stdout.splitlines()[1:]}
    assert rows["switch.tv_power:"].rstrip().endswith("0/3")  # waits for nothing
    assert rows["select.input:"].rstrip().endswith('5s after "power on" (this device)')
    assert rows["number.volume:"].rstrip().endswith('after "input" (whole batch)')
    narrow = workspace.invoke("queue", "ls", "--device", "tv-2", extra_env={"COLUMNS": "80"})
    assert 'pending: after "input"\n' in narrow.stdout and "(whole batch)" in narrow.stdout
    input_id = rows["select.input:"].split()[0]
    show = workspace.invoke("queue", "show", input_id)
    assert_clean(show, 0)
    assert '        after: 5s after "power on" (this device)\n' in show.stdout
    assert "         when: only where switch.tv_power is on\n" in show.stdout
    power_id = rows["switch.tv_power:"].split()[0]
    show = workspace.invoke("queue", "show", power_id)
    assert "   wait_until: then waits until binary_sensor.tv_on is on (up to 20s)\n" in show.stdout
