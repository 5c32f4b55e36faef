"""`cmdctl scene save` against the real simulator over TCP: save, change every state, `bulk` the
scene and drain it, and a separate aioesphomeapi client sees every saved state back."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from cmdctl.inputs.playbook import parse_playbook
from cmdctl.simulator import VirtualDevice, venue
from tests.cli.helpers import RunningFleet, Workspace, assert_clean, make_workspace
from tests.device.scene_helpers import (
    apply,
    differences,
    lounge_changed,
    lounge_saved,
    lounge_spec,
    states,
    tv_changed,
    tv_saved,
)


@pytest.fixture
def venue_sim(tmp_path: Path) -> Iterator[tuple[RunningFleet, Workspace]]:
    """Two encrypted bar TVs and the lounge (every kind), and a workspace pointing at them."""
    ws = make_workspace(tmp_path)
    site = tmp_path / "site"
    site.mkdir()
    running = RunningFleet([*venue(2, encrypted=True, seed=3), lounge_spec()], site)
    ws.env["CMDCTL_INVENTORY"] = str(running.inventory)
    try:
        yield running, ws
    finally:
        running.close()


def where(dev: VirtualDevice) -> tuple[str, int, str | None]:
    return "127.0.0.1", dev.port, dev.spec.psk


def read_all(fleet: RunningFleet) -> dict[str, dict[Any, Any]]:
    """Every device's states, each read over a connection of its own (not cmdctl's)."""
    return {d.name: asyncio.run(states(*where(d))) for d in fleet.fleet.devices}


def set_all(fleet: RunningFleet, tv: Any, lounge: Any) -> None:
    for dev in fleet.fleet.devices:
        asyncio.run(apply(*where(dev), lounge if dev.name == "lounge" else tv))


def test_save_change_everything_bulk_the_scene_and_every_state_is_back(
    venue_sim: tuple[RunningFleet, Workspace],
) -> None:
    fleet, ws = venue_sim
    set_all(fleet, tv_saved, lounge_saved)
    before = read_all(fleet)

    saved = ws.invoke("scene", "save", "all", "-o", "before.yml")
    assert_clean(saved, 0)
    assert saved.stderr.splitlines() == [
        "saved 3 devices (21 settings, 12 left out) to before.yml",
        "restore: cmdctl bulk before.yml",
    ]
    text = (ws.root / "before.yml").read_text()
    assert_clean(ws.invoke("validate", "before.yml"), 0)
    # What was left out, per device, with why; and nothing of it became a step.
    assert "  # bar-tv-2 (Bar TV 2): 4 settings; left out:\n" in text
    assert "  #   no state reported (nothing to put back): text.channel\n" in text
    assert "  #   buttons (a press, not a state): button.identify\n" in text
    assert "  #   actions (calls, not states): action.get_status, action.send_tv_command\n" in text
    assert "  #   locks (a scene never locks or unlocks a door; add a step by hand if you\n" in text
    assert "  #     mean it): lock.door (locked)\n" in text
    book = yaml.safe_load(text)
    steps = book["steps"]
    assert len(steps) == 21
    assert {next(k for k in s if "." in k) for s in steps}.isdisjoint(
        {"button.identify", "button.restart", "lock.door", "text.note"}
    )
    assert all(s["name"].startswith(f"{s['targets']} ") for s in steps)
    assert (book["priority"], book["expires"], book["defaults"]) == (
        "high", "+1h", {"attempts": 3, "verify": True},
    )  # fmt: skip
    assert all(len(line) <= 80 for line in text.splitlines() if line.lstrip().startswith("#"))

    set_all(fleet, tv_changed, lounge_changed)
    changed = read_all(fleet)
    for name in before:  # the change reached every device (else the restore proves nothing)
        assert differences(before[name], changed[name]), name

    assert_clean(ws.invoke("bulk", "before.yml"), 0)
    drained = ws.invoke("drain")
    assert_clean(drained, 0)
    assert "21 confirmed" in drained.stdout + drained.stderr
    after = read_all(fleet)
    assert {name: differences(before[name], after[name]) for name in before} == {
        name: [] for name in before
    }


def test_an_unreachable_device_is_named_and_the_file_holds_the_others(
    venue_sim: tuple[RunningFleet, Workspace],
) -> None:
    fleet, ws = venue_sim
    fleet.call(fleet.fleet.device("bar-tv-2").stop())
    result = ws.invoke("scene", "save", "bar-tv-*,lounge", "-o", "partial.yml")
    assert_clean(result, 4)
    lines = result.stderr.splitlines()
    assert lines[0].startswith("cmdctl: bar-tv-2: connection refused")
    assert lines[1:] == [
        "saved 2 devices (16 settings, 9 left out) to partial.yml",
        "not saved: bar-tv-2 (unreachable)",
        "restore: cmdctl bulk partial.yml",
    ]
    text = (ws.root / "partial.yml").read_text()
    assert "# NOT SAVED: bar-tv-2 (unreachable: connection refused).\n" in text
    book = yaml.safe_load(text)
    assert book["targets"] == ["bar-tv-1", "lounge"]
    assert {s["targets"] for s in book["steps"]} == {"bar-tv-1", "lounge"}
    assert_clean(ws.invoke("validate", "partial.yml"), 0)


def test_nothing_is_written_when_no_device_answers(
    venue_sim: tuple[RunningFleet, Workspace],
) -> None:
    fleet, ws = venue_sim
    for dev in fleet.fleet.devices:
        fleet.call(dev.stop())
    result = ws.invoke("scene", "save", "all", "-o", "scene.yml")
    assert_clean(result, 4)
    assert result.stderr.splitlines()[-1] == (
        "cmdctl: nothing saved: no device could be read; no file written"
    )
    assert not (ws.root / "scene.yml").exists()
    assert [p.name for p in ws.root.iterdir() if p.name.startswith(".scene")] == []


def test_an_existing_file_is_kept_unless_forced(
    venue_sim: tuple[RunningFleet, Workspace],
) -> None:
    fleet, ws = venue_sim
    target = ws.root / "before.yml"
    target.write_text("# mine\n")
    target.chmod(0o600)
    result = ws.invoke("scene", "save", "tvs", "-o", "before.yml")
    assert_clean(result, 2)
    assert result.stderr == (
        "cmdctl: -o before.yml: the file exists; nothing was saved "
        "(hint: --force replaces it, or choose another name)\n"
    )
    assert target.read_text() == "# mine\n"
    assert sum(d.connections_made for d in fleet.fleet.devices) == 0  # asked nobody

    forced = ws.invoke("scene", "save", "tvs", "-o", "before.yml", "--force", "--quiet")
    assert_clean(forced, 0)
    assert forced.stderr == ""
    assert target.read_text().startswith("# Scene saved by cmdctl ")
    assert target.stat().st_mode & 0o777 == 0o600  # replaced: who may read it is kept
    assert [p.name for p in ws.root.iterdir() if p.name.endswith(".tmp")] == []


def test_dash_writes_the_playbook_to_stdout(venue_sim: tuple[RunningFleet, Workspace]) -> None:
    _, ws = venue_sim
    result = ws.invoke("scene", "save", "bar-tv-1", "-o", "-")
    assert_clean(result, 0)
    assert result.stderr.splitlines() == ["saved 1 device (4 settings, 4 left out) to stdout"]
    assert "# Restore: cmdctl bulk FILE.yml" in result.stdout
    book = parse_playbook(result.stdout)
    assert [s.command.selector for s in book.steps] == [
        "light.backlight", "number.volume", "select.input", "switch.tv_power",
    ]  # fmt: skip
    assert not any(p.suffix == ".yml" for p in ws.root.iterdir() if p.name != "devices.yml")


def test_bad_input_is_exit_2_and_contacts_nobody(
    venue_sim: tuple[RunningFleet, Workspace],
) -> None:
    fleet, ws = venue_sim
    result = ws.invoke("scene", "save", "nosuch", "-o", "x.yml")
    assert_clean(result, 2)
    assert result.stderr.startswith("cmdctl: pattern 'nosuch' matches no device")
    result = ws.invoke("scene", "save", "all", "-o", "no/such/dir/x.yml")
    assert_clean(result, 2)
    assert result.stderr == "cmdctl: -o no/such/dir/x.yml: no directory no/such/dir\n"
    result = ws.invoke("scene", "save", "all", "-o", "x.yml", "--timeout", "soon")
    assert_clean(result, 2)
    assert result.stderr.startswith("cmdctl: --timeout: ")
    assert sum(d.connections_made for d in fleet.fleet.devices) == 0
    assert not (ws.root / "x.yml").exists()


def test_help_has_an_example(workspace: Workspace) -> None:
    result = workspace.invoke("scene", "save", "--help")
    assert_clean(result, 0)
    assert "Example: cmdctl scene save tvs -o before.yml" in result.stdout
    assert result.stderr == ""
