"""Playbook variables end to end: `validate`, `bulk --var`, and ten simulated TVs that each end
on their own channel and input from one playbook, read back with a separate client."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
from aioesphomeapi import APIClient, SelectState, TextState

from cmdctl.simulator import venue
from tests.cli.helpers import RunningFleet, Workspace, assert_clean, make_workspace
from tests.simulator.helpers import StateWatch

TUNE = """\
name: Tune
targets: tvs
steps:
  - name: input
    select.input: ${input}
  - name: channel
    text.channel: "Channel ${channel}"
  - number.volume: ${volume}
"""


def _journal(ws: Workspace) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in ws.journal.iterdir() if p.is_file()}


def _with_vars(ws: Workspace, extra: str) -> None:
    """Add `vars:` to the workspace's inventory (ten TVs tv-1..tv-10 in group tvs)."""
    ws.inventory.write_text(ws.inventory.read_text() + extra)


def test_unset_variable_is_exit_2_naming_the_device_and_the_journal_is_untouched(
    workspace: Workspace,
) -> None:
    _with_vars(workspace, "vars:\n  tvs: {input: HDMI 1, volume: 20}\n  tv-3: {channel: 5}\n")
    first = workspace.playbook("first.yml", TUNE.replace("${channel}", "5"))
    assert workspace.invoke("bulk", str(first)).returncode == 0
    before = _journal(workspace)
    pb = workspace.playbook("tune.yml", TUNE)
    for command in ("bulk", "validate"):
        result = workspace.invoke(command, str(pb))
        assert_clean(result, 2)
        assert result.stderr == (
            f"cmdctl: {pb}:7:19: ${{channel}} is not set for tv-1 (hint: set vars: "
            "{channel: ...} on the device, a group or the inventory's defaults, in the"
            " playbook's vars:, or pass --var channel=...)\n"
        )
        assert "queued" not in result.stdout
    result = workspace.invoke("bulk", str(pb), "--check")
    assert_clean(result, 2)
    assert "is not set for tv-1" in result.stderr
    assert _journal(workspace) == before  # byte for byte, nothing appended


def test_a_value_that_does_not_fit_is_exit_2_naming_the_device(workspace: Workspace) -> None:
    _with_vars(workspace, "vars:\n  tvs: {input: HDMI 1, volume: 20, channel: 1}\n")
    _with_vars(workspace, "  tv-7: {volume: loud}\n")
    pb = workspace.playbook("tune.yml", TUNE)
    result = workspace.invoke("bulk", str(pb))
    assert_clean(result, 2)
    assert result.stderr.startswith(
        f"cmdctl: {pb}:8:20: tv-7: number.volume: a number must be a number, not 'loud'"
        " (hint: ${volume} is 'loud' (device tv-7, "
    )
    assert not (workspace.journal / "journal.jsonl").exists()


def test_var_beats_every_vars_and_is_typed(workspace: Workspace) -> None:
    _with_vars(workspace, "vars:\n  tvs: {input: HDMI 1, volume: 20, channel: 1}\n")
    _with_vars(workspace, "  tv-2: {volume: 50, channel: 2}\n")
    pb = workspace.playbook("tune.yml", "vars: {volume: 10}\n" + TUNE)
    plan = json.loads(workspace.invoke("bulk", str(pb), "--check", "--json").stdout)
    got = {(c["device"], c["selector"]): c["args"] for c in plan["commands"]}
    assert got["tv-1", "number.volume"] == {"value": 20.0}  # the group beats the playbook
    assert got["tv-2", "number.volume"] == {"value": 50.0}
    assert got["tv-2", "text.channel"] == {"value": "Channel 2"}
    result = workspace.invoke(
        "bulk", str(pb), "--check", "--json", "--var", "volume=30", "--var", "channel=9"
    )
    got = {(c["device"], c["selector"]): c["args"] for c in json.loads(result.stdout)["commands"]}
    assert {got[f"tv-{i}", "number.volume"]["value"] for i in range(1, 11)} == {30.0}
    assert {got[f"tv-{i}", "text.channel"]["value"] for i in range(1, 11)} == {"Channel 9"}
    result = workspace.invoke("validate", str(pb), "--var", "volume=30")
    assert_clean(result, 0)
    result = workspace.invoke("validate", str(pb), "--var", "volum=30")
    assert_clean(result, 2)
    assert result.stderr == (
        f"cmdctl: --var volum: no step of {pb} refers to ${{volum}} (hint: did you mean"
        " 'volume'?)\n"
    )


def test_check_shows_a_row_per_value(workspace: Workspace) -> None:
    _with_vars(workspace, "vars:\n  tvs: {input: HDMI 1, volume: 20, channel: 1}\n")
    _with_vars(workspace, "  tv-2: {input: Cable}\n")
    pb = workspace.playbook("tune.yml", TUNE)
    result = workspace.invoke("bulk", str(pb), "--check")
    assert_clean(result, 0)
    rows = [line for line in result.stdout.splitlines() if "select.input" in line]
    assert len(rows) == 2, result.stdout
    assert "HDMI 1" in rows[0] and "tv-1, tv-3, tv-4, … (9 devices)" in rows[0]
    assert "Cable" in rows[1] and "tv-2 " in rows[1]


# -- ten simulated TVs, one playbook -----------------------------------------------------------

INPUTS = ("HDMI 1", "HDMI 2", "Cable")


async def _read_back(host: str, port: int, psk: str) -> tuple[str, str]:
    """(channel text, input option) as a separate aioesphomeapi client sees them."""
    client = APIClient(host, port, None, noise_psk=psk)
    await asyncio.wait_for(client.connect(login=True), 10)
    try:
        _, entities, _ = await client.device_info_and_list_entities()
        keys = {e.object_id: e.key for e in entities}
        watch = StateWatch()
        client.subscribe_states(watch)
        text = await watch.until(keys["channel"], lambda s: isinstance(s, TextState))
        select = await watch.until(keys["input"], lambda s: isinstance(s, SelectState))
        return text.state, select.state
    finally:
        await client.disconnect()


@pytest.mark.timeout(120)
def test_ten_tvs_each_end_on_their_own_channel_and_input(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    site = tmp_path / "site"
    site.mkdir()
    running = RunningFleet(venue(10, encrypted=True, seed=15), site)
    try:
        inventory = running.inventory.read_text()
        # Each TV's channel on the device itself; the input from the group bar (over the
        # inventory's defaults), the odd TVs' own in entries of the top-level vars: mapping.
        for i in range(1, 11):
            inventory = re.sub(
                rf"(\n  bar-tv-{i}:\n(?:    .*\n)*?    expected_name: bar-tv-{i}\n)",
                rf'\1    vars: {{channel: "{100 + i}"}}\n',
                inventory,
            )
        entries = "".join(f"  bar-tv-{i}: {{input: {INPUTS[i % 3]}}}\n" for i in range(1, 11, 2))
        inventory += "defaults:\n  vars: {input: HDMI 1}\nvars:\n  bar: {input: HDMI 2}\n"
        inventory += entries
        running.inventory.write_text(inventory)
        ws.env["CMDCTL_INVENTORY"] = str(running.inventory)
        pb = ws.playbook(
            "tune.yml",
            "name: Tune\ntargets: tvs\nsteps:\n"
            "  - select.input: ${input}\n"
            '  - text.channel: "ch ${channel}"\n',
        )
        result = ws.run("bulk", str(pb))
        assert_clean(result, 0)
        result = ws.run("drain", "--json")
        assert_clean(result, 0)
        assert json.loads(result.stdout)["totals"]["confirmed"] == 20

        expected = {
            f"bar-tv-{i}": (f"ch {100 + i}", INPUTS[i % 3] if i % 2 else "HDMI 2")
            for i in range(1, 11)
        }
        assert len(set(expected.values())) == 10  # every TV its own channel
        assert {value[1] for value in expected.values()} == set(INPUTS)

        async def read_all() -> dict[str, Any]:
            found = {}
            for device in running.fleet.devices:
                spec = device.spec
                assert spec.psk is not None
                found[spec.name] = await _read_back("127.0.0.1", device.port, spec.psk)
            return found

        assert asyncio.run(read_all()) == expected
    finally:
        running.close()
    # The journal holds each device's resolved command
    lines = (ws.journal / "journal.jsonl").read_text().splitlines()
    queued = [event for event in map(json.loads, lines) if event["t"] == "queued"]
    texts = {e["device"]: e["command"]["args"] for e in queued if e["command"]["domain"] == "text"}
    assert texts == {name: {"value": channel} for name, (channel, _) in expected.items()}


@pytest.mark.timeout(60)
def test_each_devices_value_is_checked_against_its_cached_entities(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    site = tmp_path / "site"
    site.mkdir()
    running = RunningFleet(venue(3, encrypted=True, seed=4), site)
    try:
        ws.env["CMDCTL_INVENTORY"] = str(running.inventory)
        assert_clean(ws.run("devices", "probe"), 0)  # records each TV's entity list
    finally:
        running.close()  # the TVs are away: only the cache can say what they accept
    running.inventory.write_text(
        running.inventory.read_text()
        + "vars:\n  bar: {input: HDMI 2}\n  bar-tv-2: {input: HDMI 9}\n"
    )
    pb = ws.playbook("input.yml", "name: In\ntargets: tvs\nsteps:\n  - select.input: ${input}\n")
    result = ws.run("bulk", str(pb))
    assert_clean(result, 2)
    assert result.stderr.startswith(
        f"cmdctl: {pb}:4:19: bar-tv-2: select.input has no option 'HDMI 9' "
        "(options: HDMI 1, HDMI 2, Cable) (hint: did you mean 'HDMI 2'?; checked against "
    )
    assert result.stderr.endswith("; the value comes from ${input} as set for bar-tv-2)\n")
    assert not (ws.journal / "journal.jsonl").exists()
    result = ws.run("bulk", str(pb), "--var", "input=Cable")
    assert_clean(result, 0)
