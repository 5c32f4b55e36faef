"""A playbook over 50 simulated devices: `bulk`, then `drain` — every command once, in order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cmdctl.core.errors import ExitCode
from cmdctl.journal.store import Journal
from cmdctl.simulator import Fleet, write_inventory

from .conftest import acmdctl, cli_env, received, tvs

PLAYBOOK = """\
name: Game night
targets: tvs
priority: high
defaults:
  attempts: 5
  verify: true
steps:
  - name: blink
    button.identify: press
    mode: immediate
  - name: power on
    switch.tv_power: on
  - select.input: HDMI 2
  - name: volume
    number.volume: 30
  - name: backlight
    light.backlight: {state: on, brightness: 0.4}
  - name: banner
    text.channel: "Game night"
"""

QUEUED = [
    ("switch.tv_power", {"state": True}),
    ("select.input", {"option": "HDMI 2"}),
    ("number.volume", {"value": 30.0}),
    ("text.channel", {"value": "Game night"}),
]


@pytest.mark.timeout(120)
async def test_bulk_then_drain_runs_every_command_once_in_order_confirmed(
    tmp_path: Path,
) -> None:
    async with Fleet(tvs(50, encrypted=True)) as fleet:
        inventory = tmp_path / "devices.yml"
        write_inventory(fleet.devices, inventory)
        playbook = tmp_path / "game-night.yml"
        playbook.write_text(PLAYBOOK)
        journal = Journal(tmp_path / "journal")
        env = cli_env(journal.directory, inventory)

        code, out, err = await acmdctl("bulk", str(playbook), env=env, timeout=60)
        assert code == ExitCode.OK, err
        # The immediate step ran inline, before anything was queued.
        assert all(received(d) == [("button.identify", {})] for d in fleet.devices)

        code, out, err = await acmdctl("drain", "--json", env=env, timeout=60)
        assert code == ExitCode.OK, err
        result = json.loads(out)
        for dev in fleet.devices:
            got = received(dev)
            assert got[0] == ("button.identify", {})
            lights = [args for sel, args in got if sel == "light.backlight"]
            assert len(lights) == 1 and lights[0]["state"] is True
            assert [c for c in got[1:] if c[0] != "light.backlight"] == QUEUED, dev.name
            assert len(got) == 6
    entries = journal.ledger().entries()
    assert len(entries) == 50 * 6
    queued = [e for e in entries if e.step != "blink"]
    assert {(e.state.value, e.outcome) for e in queued} == {("done", "confirmed")}
    blinks = [e for e in entries if e.step == "blink"]
    assert {(e.state.value, e.outcome) for e in blinks} == {("done", "delivered")}
    assert result["totals"]["confirmed"] == 50 * 5
    assert len(result["devices"]) == 50
