"""`cmdctl bulk --check --online` (in-process) against the real simulator: a diff, no sends."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from cmdctl.simulator import venue
from tests.cli.helpers import KEY, RunningFleet, Workspace, assert_clean, make_workspace, row_of

PLAYBOOK = """\
name: Game night
targets: tvs
steps:
  - name: power on
    switch.tv_power: on
  - name: input
    select.input: HDMI 1
  - name: volume
    number.volume: 30
  - name: blink
    button.identify: press
    mode: immediate
  - name: channel
    text.channel: "206"
"""


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[tuple[RunningFleet, Workspace]]:
    """Three encrypted venue TVs; bar-tv-2 is already on and on Cable."""
    from dataclasses import replace

    specs = venue(3, encrypted=True, seed=11)
    tv2 = specs[1]
    entities = tuple(
        replace(e, initial="Cable")
        if e.kind == "select"
        else replace(e, initial=True)
        if e.kind == "switch"
        else e
        for e in tv2.entities
    )
    specs[1] = replace(tv2, entities=entities)
    ws = make_workspace(tmp_path)
    site = tmp_path / "site"
    site.mkdir()
    running = RunningFleet(specs, site)
    ws.env["CMDCTL_INVENTORY"] = str(running.inventory)
    try:
        yield running, ws
    finally:
        running.close()


def assert_untouched(fleet: RunningFleet, ws: Workspace) -> None:
    """No device received a command and no journal was written."""
    assert {d.name: d.received for d in fleet.fleet.devices} == {
        d.name: [] for d in fleet.fleet.devices
    }
    assert not (ws.journal / "journal.jsonl").exists()


def _line(text: str, device: str, selector: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.startswith(f"{device}: {selector}:")]
    assert len(lines) == 1, (device, selector, text)
    return lines[0]


def test_diff_shows_current_to_target_and_sends_nothing(
    sim: tuple[RunningFleet, Workspace],
) -> None:
    fleet, ws = sim
    pb = ws.playbook("pb.yml", PLAYBOOK)
    tv1, tv2 = fleet.fleet.device("bar-tv-1"), fleet.fleet.device("bar-tv-2")
    assert tv1.state_of("switch.tv_power") is False and tv2.state_of("switch.tv_power") is True

    result = ws.invoke("bulk", str(pb), "--check", "--online")
    assert_clean(result, 0)
    out = result.stdout
    assert _line(out, "bar-tv-1", "switch.tv_power").startswith(
        "bar-tv-1: switch.tv_power: off → on  [power on]"
    )
    assert "on (unchanged)" in _line(out, "bar-tv-2", "switch.tv_power")
    assert 'HDMI 1 (unchanged)' in _line(out, "bar-tv-1", "select.input")
    assert 'Cable → HDMI 1' in _line(out, "bar-tv-2", "select.input")
    assert "0 → 30" in _line(out, "bar-tv-3", "number.volume")
    assert 'unknown → 206' in _line(out, "bar-tv-3", "text.channel")
    assert "will send (no state to compare)" in _line(out, "bar-tv-1", "button.identify")
    assert "[blink, immediate]" in _line(out, "bar-tv-1", "button.identify")
    assert "invalid" not in out
    assert "check: 9 change, 3 unchanged, 3 send" in result.stderr

    data = json.loads(ws.invoke("bulk", str(pb), "--check", "--online", "--json").stdout)
    assert data["exit_code"] == 0 and data["online"] is True
    assert data["totals"] == {
        "change": 9, "unchanged": 3, "send": 3, "invalid": 0, "not_checked": 0
    }  # fmt: skip
    devices = {d["device"]: d for d in data["devices"]}
    assert [d["status"] for d in data["devices"]] == ["ok", "ok", "ok"]
    power = next(c for c in devices["bar-tv-1"]["commands"] if c["step"] == "power on")
    assert devices["bar-tv-1"]["commands"][0]["mode"] == "immediate"  # run order: inline first
    assert (power["selector"], power["status"]) == ("switch.tv_power", "change")
    assert (power["current"], power["target"]) == ({"state": False}, {"state": True})
    tv2_input = next(c for c in devices["bar-tv-2"]["commands"] if c["step"] == "input")
    assert tv2_input["current"] == {"state": "Cable"}
    assert tv2_input["target"] == {"state": "HDMI 1"}
    assert_untouched(fleet, ws)
    assert tv1.state_of("switch.tv_power") is False  # still: nothing was sent


def test_invalid_option_and_unknown_entity_exit_1_with_precise_messages(
    sim: tuple[RunningFleet, Workspace],
) -> None:
    fleet, ws = sim
    pb = ws.playbook(
        "bad.yml",
        "name: bad\ntargets: bar-tv-1,bar-tv-2\nsteps:\n"
        "  - select.input: HDMI 9\n  - switch.tv_powr: on\n  - number.volume: 5\n",
    )
    result = ws.invoke("bulk", str(pb), "--check", "--online")
    assert_clean(result, 1)
    line = _line(result.stdout, "bar-tv-1", "select.input")
    assert "invalid: select.input has no option 'HDMI 9' (options: HDMI 1, HDMI 2, Cable)" in line
    assert "no switch 'tv_powr' (did you mean switch.tv_power?)" in _line(
        result.stdout, "bar-tv-2", "switch.tv_powr"
    )
    assert "0 → 5" in _line(result.stdout, "bar-tv-2", "number.volume")  # still checked
    assert "cmdctl: bar-tv-1: select.input has no option 'HDMI 9'" in result.stderr
    assert "2 change, 4 invalid" in result.stderr

    data = json.loads(ws.invoke("bulk", str(pb), "--check", "--online", "--json").stdout)
    assert data["exit_code"] == 1
    assert [d["status"] for d in data["devices"]] == ["invalid", "invalid"]
    bad = next(c for c in data["devices"][0]["commands"] if c["selector"] == "switch.tv_powr")
    assert bad["status"] == "invalid" and bad["resolved"] is None
    assert bad["error"]["kind"] == "rejected"
    assert bad["error"]["message"].startswith("no switch 'tv_powr'")
    assert_untouched(fleet, ws)


def test_offline_device_exits_4_and_wrong_key_exits_1(
    sim: tuple[RunningFleet, Workspace],
) -> None:
    fleet, ws = sim
    pb = ws.playbook("pb.yml", PLAYBOOK)
    fleet.call(fleet.fleet.device("bar-tv-2").set_offline(True))
    offline = ws.invoke("bulk", str(pb), "--check", "--online")
    assert_clean(offline, 4)
    row = row_of(offline.stdout, "bar-tv-2:")
    assert "unreachable: connection refused" in row and "5 commands not checked" in row
    assert "cmdctl: bar-tv-2: connection refused" in offline.stderr
    assert "1 of 3 devices not checked" in offline.stderr
    assert "off → on" in _line(offline.stdout, "bar-tv-1", "switch.tv_power")

    secrets_path = fleet.inventory.with_name("secrets.yaml")
    secrets = yaml.safe_load(secrets_path.read_text())
    secrets["bar_tv_3_key"] = KEY  # valid base64 of 32 bytes, but not the device's key
    secrets_path.write_text(yaml.safe_dump(secrets))
    both = ws.invoke("bulk", str(pb), "--check", "--online", "--json")
    assert_clean(both, 1)  # a rejected device wins over an unreachable one
    data = json.loads(both.stdout)
    statuses = {d["device"]: (d["status"], d["error"]) for d in data["devices"]}
    assert statuses["bar-tv-1"] == ("ok", None)
    assert statuses["bar-tv-2"][0] == "unreachable"
    assert statuses["bar-tv-3"][0] == "rejected"
    assert statuses["bar-tv-3"][1]["message"] == "wrong encryption key"
    assert data["totals"]["not_checked"] == 10
    assert KEY not in both.stdout + both.stderr
    assert_untouched(fleet, ws)


def test_online_without_check_is_an_input_error(workspace: Workspace) -> None:
    pb = workspace.playbook("pb.yml", PLAYBOOK)
    result = workspace.invoke("bulk", str(pb), "--online")
    assert result.returncode == 2
    assert "--online only goes with --check" in result.stderr
    assert not (workspace.journal / "journal.jsonl").exists()
