"""`cmdctl devices ls / probe / entities` against the real simulator; in-process, except the
fan-out bound (connection timing) and the import check, which need a process of their own."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from cmdctl.core.model import Command, Entry, Priority
from cmdctl.journal import events as ev
from cmdctl.journal.store import Journal
from cmdctl.simulator import (
    ActionSpec,
    ArgSpec,
    DeviceSpec,
    EntitySpec,
    FaultSpec,
    SubDevice,
    venue,
)
from tests.cli.helpers import (
    KEY,
    RunningFleet,
    Workspace,
    assert_clean,
    make_workspace,
    row_of,
)

#: Seconds between a client dropping a connection and the simulator noticing (same host).
CLOSE_SLACK = 0.05


def _specs() -> list[DeviceSpec]:
    """Three venue TVs; bar-tv-2's input starts on the last option, not the template default."""
    specs = venue(3, encrypted=True, seed=7)
    tv2 = specs[1]
    entities = tuple(
        replace(e, initial=e.options[-1]) if e.kind == "select" else e for e in tv2.entities
    )
    specs[1] = replace(tv2, entities=entities)
    return specs


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[tuple[RunningFleet, Workspace]]:
    """A running 3-device fleet and a workspace whose inventory points at it."""
    workspace = make_workspace(tmp_path)
    site = tmp_path / "site"
    site.mkdir()
    running = RunningFleet(_specs(), site)
    workspace.env["CMDCTL_INVENTORY"] = str(running.inventory)
    try:
        yield running, workspace
    finally:
        running.close()


# -- probe ---------------------------------------------------------------------------------------


def test_probe_all_online(sim: tuple[RunningFleet, Workspace]) -> None:
    fleet, ws = sim
    result = ws.invoke("devices", "probe")
    assert_clean(result, 0)
    for device in fleet.fleet.devices:
        row = row_of(result.stdout, device.name)
        assert " online " in row
        assert device.spec.esphome_version in row
        assert device.spec.mac.upper() in row
    assert "3 online" in result.stderr

    data = json.loads(ws.invoke("devices", "probe", "bar-tv-1,bar-tv-3", "--json").stdout)
    assert [d["device"] for d in data["devices"]] == ["bar-tv-1", "bar-tv-3"]
    specs = {d.name: d.spec for d in fleet.fleet.devices}
    for d in data["devices"]:
        spec = specs[d["device"]]
        assert d["status"] == "online" and d["error"] is None
        assert (d["esphome_version"], d["name"]) == (spec.esphome_version, spec.name)
        assert d["encrypted"] is True
        assert d["entities"] == len(spec.entities) + len(spec.actions)  # the transport's count
        assert 0 < d["latency_ms"] < 5000 and 0 < d["connect_ms"] < 5000
    assert data["totals"] == {"online": 2, "offline": 0, "rejected": 0}
    assert data["exit_code"] == 0


def test_probe_offline_device_exits_4_naming_it(sim: tuple[RunningFleet, Workspace]) -> None:
    fleet, ws = sim
    fleet.call(fleet.fleet.device("bar-tv-2").set_offline(True))
    result = ws.invoke("devices", "probe", "--timeout", "2s")
    assert_clean(result, 4)
    assert "connection refused" in row_of(result.stdout, "bar-tv-2")
    assert " offline " in row_of(result.stdout, "bar-tv-2")
    assert " online " in row_of(result.stdout, "bar-tv-1")
    assert "cmdctl: bar-tv-2: connection refused" in result.stderr
    assert "bar-tv-1:" not in result.stderr

    quiet = ws.invoke("devices", "probe", "--quiet")
    assert_clean(quiet, 4)
    assert quiet.stdout == ""
    assert quiet.stderr.strip().splitlines() == [
        line for line in quiet.stderr.strip().splitlines() if line.startswith("cmdctl: bar-tv-2:")
    ]


def test_probe_wrong_key_exits_1_and_wins_over_unreachable(
    sim: tuple[RunningFleet, Workspace],
) -> None:
    fleet, ws = sim
    secrets_path = fleet.inventory.with_name("secrets.yaml")
    secrets = yaml.safe_load(secrets_path.read_text())
    assert secrets["bar_tv_3_key"] != KEY
    secrets["bar_tv_3_key"] = KEY  # valid base64 of 32 bytes, but not the device's key
    secrets_path.write_text(yaml.safe_dump(secrets))

    result = ws.invoke("devices", "probe", "bar-tv-3", "--json")
    assert_clean(result, 1)
    (probe,) = json.loads(result.stdout)["devices"]
    assert probe["status"] == "rejected"
    assert probe["error"]["kind"] == "rejected"
    assert probe["error"]["message"] == "wrong encryption key"
    assert "cmdctl: bar-tv-3: wrong encryption key" in result.stderr
    assert KEY not in result.stdout + result.stderr

    fleet.call(fleet.fleet.device("bar-tv-1").set_offline(True))
    both = ws.invoke("devices", "probe")
    assert_clean(both, 1)  # rejected wins over unreachable
    assert "wrong encryption key" in row_of(both.stdout, "bar-tv-3")
    assert "connection refused" in row_of(both.stdout, "bar-tv-1")
    assert " online " in row_of(both.stdout, "bar-tv-2")


def test_probe_another_device_at_the_address(tmp_path: Path) -> None:
    """Plaintext devices: bar-tv-1's port answered by bar-tv-2 is named as such."""
    ws = make_workspace(tmp_path)
    running = RunningFleet(venue(2, encrypted=False), tmp_path)
    try:
        text = running.inventory.read_text()
        ports = [str(d.port) for d in running.fleet.devices]
        running.inventory.write_text(text.replace(f"port: {ports[0]}", f"port: {ports[1]}"))
        result = ws.invoke("devices", "probe", "--inventory", str(running.inventory))
    finally:
        running.close()
    assert_clean(result, 1)
    assert "answered as 'bar-tv-2'" in row_of(result.stdout, "bar-tv-1")
    assert " online " in row_of(result.stdout, "bar-tv-2")


def test_probe_fan_out_is_bounded_one_connection_per_device(tmp_path: Path) -> None:
    """--concurrency 2 over 6 slow devices: never more than 2 connections open at once."""
    ws = make_workspace(tmp_path)
    slow = [replace(s, faults=FaultSpec(latency=0.03)) for s in venue(6, encrypted=True)]
    running = RunningFleet(slow, tmp_path)
    try:
        result = ws.run(
            "devices", "probe", "--concurrency", "2", "--inventory", str(running.inventory)
        )
        events = list(running.fleet.recorder.connections)
    finally:
        running.close()
    assert_clean(result, 0)
    opens = [e for e in events if e.event == "open"]
    assert sorted(e.device for e in opens) == [f"bar-tv-{i}" for i in range(1, 7)]
    closes = {(e.device, e.conn): e.ts for e in events if e.event == "close"}
    # A close reaches the simulator a moment after the client dropped the socket and may be
    # stamped just after the next open: allow it that slack, far below one probe (~0.3 s).
    spans = [(e.ts, closes[(e.device, e.conn)] - CLOSE_SLACK) for e in opens]
    most = max(sum(1 for a, b in spans if a <= start < b) for start, _ in spans)
    assert most == 2


# -- entities ------------------------------------------------------------------------------------


def test_entities_lists_selectors_details_and_current_state(
    sim: tuple[RunningFleet, Workspace],
) -> None:
    fleet, ws = sim
    device = fleet.fleet.device("bar-tv-2")
    select = next(e for e in device.spec.entities if e.kind == "select")
    current = device.state_of("select.input")
    assert current == select.options[-1] != select.options[0]  # not the template default

    result = ws.invoke("devices", "entities", "bar-tv-2")
    assert_clean(result, 0)
    row = row_of(result.stdout, "select.input")
    assert current in row
    assert "options: " + ", ".join(select.options) in row
    assert "0..100 step 1" in row_of(result.stdout, "number.volume")
    assert "(box: int, channel: string)" in row_of(result.stdout, "action.send_tv_command")
    assert "response (only)" in row_of(result.stdout, "action.get_status")

    data = json.loads(ws.invoke("devices", "entities", "bar-tv-2", "--json").stdout)
    by_selector = {e["selector"]: e for e in data["entities"]}
    assert set(by_selector) == {e.selector for e in device.spec.entities}
    assert by_selector["select.input"]["options"] == list(select.options)
    assert by_selector["select.input"]["state"] == current
    assert by_selector["number.volume"]["state"] == device.state_of("number.volume")
    assert by_selector["switch.tv_power"]["state"] is device.state_of("switch.tv_power")
    assert by_selector["text.channel"]["max_length"] == 16
    light = by_selector["light.backlight"]
    assert light["color_modes"] == ["rgb"] and "Rainbow" in light["effects"]
    assert light["state"]["color_mode"] == "rgb"
    actions = {a["selector"]: a for a in data["actions"]}
    assert actions["action.send_tv_command"]["args"] == [
        {"name": "box", "type": "int"},
        {"name": "channel", "type": "string"},
    ]
    assert actions["action.send_tv_command"]["returns_response"] is False
    assert actions["action.get_status"]["returns_response"] is True
    assert data["esphome_version"] == device.spec.esphome_version


HOME = DeviceSpec(
    name="home",
    entities=(
        EntitySpec("cover", "Blind", supports_tilt=True),
        EntitySpec("fan", "Ceiling Fan", speed_count=4, preset_modes=("Breeze",)),
        EntitySpec("lock", "Door", supports_open=True),
        EntitySpec("valve", "Water"),
        EntitySpec("media_player", "Speaker"),
        EntitySpec("climate", "Heat Pump", fan_modes=("auto", "low"), presets=("home", "away")),
        EntitySpec("light", "Lamp", color_modes=("color_temperature",)),
        EntitySpec("switch", "Relay"),
        EntitySpec("switch", "Relay", device_id=7),
    ),
    actions=(ActionSpec("scene", (ArgSpec("levels", "float[]"),), response="optional"),),
    sub_devices=(SubDevice(7, "Garden Shed"),),
)


def test_entities_of_every_kind_and_sub_devices(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    running = RunningFleet([HOME], tmp_path)
    try:
        result = ws.invoke("devices", "entities", "home", "--json", "-i", str(running.inventory))
    finally:
        running.close()
    assert_clean(result, 0)
    data = json.loads(result.stdout)
    by_selector = {e["selector"]: e for e in data["entities"]}
    # the same object_id on two devices: each selector names its (sub-)device, as `send` needs
    assert {"switch.0/relay", "switch.garden_shed/relay"} <= set(by_selector)
    assert "switch.relay" not in by_selector
    assert all(e["state"] is not None for e in data["entities"]), data["entities"]
    assert by_selector["cover.blind"]["tilt"] is True
    assert by_selector["cover.blind"]["state"]["current_operation"] == "idle"
    assert by_selector["fan.ceiling_fan"]["preset_modes"] == ["Breeze"]
    assert by_selector["lock.door"]["open"] is True
    assert by_selector["climate.heat_pump"]["presets"] == ["home", "away"]
    assert by_selector["light.lamp"]["color_modes"] == ["color_temperature"]
    assert "mireds" in by_selector["light.lamp"]
    assert "color_temperature" in by_selector["light.lamp"]["state"]
    (scene,) = data["actions"]
    assert scene["args"] == [{"name": "levels", "type": "float_array"}]
    assert (scene["response"], scene["returns_response"]) == ("optional", True)


def test_entities_of_an_offline_device_exits_4(sim: tuple[RunningFleet, Workspace]) -> None:
    fleet, ws = sim
    fleet.call(fleet.fleet.device("bar-tv-1").set_offline(True))
    result = ws.invoke("devices", "entities", "bar-tv-1")
    assert_clean(result, 4)
    assert "bar-tv-1: connection refused" in result.stderr
    assert result.stdout == ""


# -- ls ------------------------------------------------------------------------------------------


def _entry(device: str, created: float) -> Entry:
    from cmdctl.core.ids import new_id

    return Entry(
        id=new_id(),
        batch="01TESTBATCH0000000000000000",
        device=device,
        command=Command("select", "input", {"option": "HDMI 2"}),
        priority=Priority.NORMAL,
        created=created,
        not_before=created,
        expires=None,
        idempotent=True,
        verify=True,
        max_attempts=3,
        who="test@host",
        origin="send",
        step="",
    )


def test_ls_shows_inventory_and_last_outcome_from_the_journal(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)  # tv-1 … tv-10, nothing listening: ls never connects
    t0 = 1_700_000_000.0
    ok, refused, later_fail, retrying = (
        _entry("tv-1", t0),
        _entry("tv-2", t0),
        _entry("tv-1", t0 + 5),
        _entry("tv-3", t0),
    )
    Journal(ws.journal).append(
        [
            *(ev.queued(e) for e in (ok, refused, later_fail, retrying)),
            ev.done(ok.id, t0 + 1, outcome="confirmed", duration=0.2),
            ev.failed(refused.id, t0 + 2, error="tv-2: connection refused", kind="unreachable"),
            ev.failed(later_fail.id, t0 + 9, error="tv-1: state mismatch", kind="mismatch"),
            ev.attempt_failed(
                retrying.id, t0 + 3, error="tv-3: timed out", kind="unreachable", retry_at=t0 + 60
            ),
            ev.rescheduled(retrying.id, t0 + 3, not_before=t0 + 60, attempts=1),
        ]
    )
    result = ws.invoke("devices", "ls", "--json")
    assert_clean(result, 0)
    rows = {r["name"]: r for r in json.loads(result.stdout)}
    assert len(rows) == 10
    assert rows["tv-1"]["host"] == "127.0.0.1" and rows["tv-1"]["port"] == 30001
    assert rows["tv-1"]["encrypted"] is True and rows["tv-1"]["groups"] == ["tvs"]
    assert rows["tv-1"]["last_seen"] == t0 + 9  # a mismatch: the device took the command
    assert rows["tv-1"]["last"]["outcome"] == "mismatch"
    assert rows["tv-1"]["last"]["state"] == "failed"
    assert rows["tv-2"]["last_seen"] is None  # never answered
    assert rows["tv-2"]["last"]["outcome"] == "unreachable"
    assert rows["tv-2"]["last"]["error"] == "tv-2: connection refused"
    assert rows["tv-3"]["last"]["state"] == "pending"
    assert rows["tv-4"]["last"] is None and rows["tv-4"]["last_seen"] is None
    assert KEY not in result.stdout

    table = ws.invoke("devices", "ls", "tv-1,tv-2,tv-4")
    assert_clean(table, 0)
    assert "failed (mismatch): select.input" in row_of(table.stdout, "tv-1")
    assert "failed (unreachable)" in row_of(table.stdout, "tv-2")
    assert "never" in row_of(table.stdout, "tv-2")
    assert row_of(table.stdout, "tv-4").split()[1:4] == ["127.0.0.1:30004", "yes", "tvs"]
    assert "tv-3" not in table.stdout
    assert KEY not in table.stdout + table.stderr


def test_ls_does_not_import_the_client(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path)
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "cmdctl", "devices", "ls"],
        cwd=ws.root,
        env=ws.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "cmdctl.device.fleetview" in result.stderr  # the tracer saw the command run
    assert [line for line in result.stderr.splitlines() if "aioesphomeapi" in line] == []


# -- failure paths -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "needles"),
    [
        (["devices", "entities", "tv-99"], ["no device 'tv-99'"]),
        (["devices", "entities", "tv-1O"], ["no device 'tv-1O'", "did you mean 'tv-1"]),
        (["devices", "probe", "patio"], ["pattern 'patio'", "matches no device"]),
        (["devices", "ls", "tvs:&patio"], ["'patio'"]),
        (["devices", "probe", "--timeout", "soon"], ["--timeout"]),
    ],
)
def test_bad_device_or_pattern_exits_2(
    workspace: Workspace, args: list[str], needles: list[str]
) -> None:
    result = workspace.invoke(*args)
    assert_clean(result, 2)
    assert result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    for needle in needles:
        assert needle in line, line
