"""End to end against 10 real ESPHome firmware devices: the real `cmdctl` CLI in subprocesses
(`bulk` + `drain`, then `send`), every device read back by a separate aioesphomeapi client."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aioesphomeapi import APIClient, EntityState

from tests.cli.helpers import Workspace

from .fleet import Instance

pytestmark = pytest.mark.firmware

DEVICES = 10
# Loopback ceilings for a loaded 2-core CI box: a connect takes milliseconds, the initial states
# arrive ~20 ms after subscribing; a CLI run takes about a second.
CONNECT_TIMEOUT_S = 10.0
STATES_TIMEOUT_S = 5.0
CLI_TIMEOUT_S = 60.0

PLAYBOOK = """\
name: Game night on real firmware
targets: tvs
steps:
  - switch.tv_power: on
  - select.input: HDMI 2
  - number.volume: 35
  - text.channel: "206"
  - light.backlight: {state: on, brightness: 0.5}
  - action: send_tv_command
    data: {box: 4, channel: "206"}
"""
# What every device must show afterwards, as (object_id, what a separate client reads).
PLAYBOOK_STATE = {
    "tv_power": True,
    "input": "HDMI 2",
    "volume": 35.0,
    "channel": "206",
    "backlight": (True, 0.5),
}
ACTION_LOG_LINE = "send_tv_command box=4 channel=206"


def _workspace(root: Path, devices: list[Instance]) -> Workspace:
    """A plaintext inventory naming each firmware instance, and an environment for cmdctl."""
    lines = ["devices:"]
    for d in devices:
        lines += [
            f"  {d.name}:",
            f"    host: {d.host}",
            f"    port: {d.port}",
            f"    expected_name: {d.name}",  # every instance reports the same MAC
            "    groups: [bar, tvs]",
        ]
    inventory = root / "devices.yml"
    inventory.write_text("\n".join(lines) + "\n")
    env = {
        **os.environ,
        "CMDCTL_HOME": str(root / "journal"),
        "CMDCTL_INVENTORY": str(inventory),
        "NO_COLOR": "1",
        "COLUMNS": "200",
        "XDG_CACHE_HOME": str(root / "cache"),
    }
    env.pop("FORCE_COLOR", None)
    return Workspace(root, inventory, root / "journal", env)


def _plain(state: EntityState) -> Any:
    """The part of a state the playbook sets."""
    if hasattr(state, "brightness"):
        return (state.state, round(state.brightness, 4))
    return state.state


async def read_states(device: Instance) -> dict[str, Any]:
    """Every entity's state as a fresh client sees it (object_id → value)."""
    cli = APIClient(device.host, device.port, None, expected_name=device.name)
    async with asyncio.timeout(CONNECT_TIMEOUT_S):
        await cli.connect(login=True)
    try:
        entities, _ = await cli.list_entities_services()
        # the button has no state; every other entity sends one when we subscribe
        stateful = {e.key: e.object_id for e in entities if e.object_id != "identify"}
        seen: dict[str, EntityState] = {}
        complete = asyncio.Event()

        def on_state(state: EntityState) -> None:
            if state.key in stateful:
                seen[stateful[state.key]] = state
                if len(seen) == len(stateful):
                    complete.set()

        cli.subscribe_states(on_state)
        async with asyncio.timeout(STATES_TIMEOUT_S):
            await complete.wait()
        return {obj: _plain(s) for obj, s in seen.items()}
    finally:
        await cli.disconnect()


async def read_fleet(devices: list[Instance]) -> dict[str, dict[str, Any]]:
    """read_states for every device at once, by name."""
    states = await asyncio.gather(*(read_states(d) for d in devices))
    return {d.name: s for d, s in zip(devices, states, strict=True)}


async def cli(ws: Workspace, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a subprocess without blocking the loop."""
    return await asyncio.to_thread(ws.run, *args, timeout=CLI_TIMEOUT_S)


@pytest.mark.timeout(120)
async def test_bulk_drain_send_on_ten_firmware_devices(
    firmware_fleet: Callable[[int], list[Instance]], tmp_path: Path
) -> None:
    devices = firmware_fleet(DEVICES)
    by_name = {d.name: d for d in devices}
    ws = _workspace(tmp_path, devices)

    before = await read_fleet(devices)
    assert all(s["input"] == "HDMI 1" and s["tv_power"] is False for s in before.values())

    playbook = ws.playbook("playbook.yml", PLAYBOOK)
    queued = await cli(ws, "bulk", str(playbook), "--json")
    assert queued.returncode == 0, queued.stderr
    assert json.loads(queued.stdout)["queued"] == DEVICES * 6  # one batch, nothing immediate

    drained = await cli(ws, "drain", "--json")
    assert drained.returncode == 0, drained.stdout + drained.stderr
    report = json.loads(drained.stdout)
    # the five entity steps are confirmed from state echoes; the action can only be delivered
    assert report["totals"]["confirmed"] == DEVICES * 5, report
    assert report["totals"]["delivered"] == DEVICES, report
    assert report["left"] == 0 and {d["device"] for d in report["devices"]} == set(by_name)

    after = await read_fleet(devices)
    assert after == {name: PLAYBOOK_STATE for name in by_name}
    for d in devices:  # the action ran exactly once on each device, with its arguments
        assert d.log.read_text(errors="replace").count(ACTION_LOG_LINE) == 1, d.log_tail()

    # a second drain finds nothing left to do and changes nothing
    again = await cli(ws, "drain", "--json")
    assert again.returncode == 0, again.stderr
    assert sum(json.loads(again.stdout)["totals"].values()) == 0
    assert await read_fleet(devices) == after

    # send: confirmed from the device's own state echo, then read back by another client
    sent = await cli(ws, "send", "bar-tv-3", "select.input", "Cable", "--json")
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)["status"] == "confirmed"
    tv3 = await read_states(by_name["bar-tv-3"])
    assert tv3 == {**PLAYBOOK_STATE, "input": "Cable"}

    # an option the device does not have: refused against the device's entity list, state untouched
    bad = await cli(ws, "send", "bar-tv-1", "select.input", "HDMI 5")
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert (
        "bar-tv-1: select.input has no option 'HDMI 5' (options: HDMI 1, HDMI 2, Cable)"
        in bad.stderr
    )
    assert await read_states(by_name["bar-tv-1"]) == PLAYBOOK_STATE

    final = await read_fleet(devices)
    assert final == {**after, "bar-tv-3": tv3}
