"""`cmdctl demo`: the newcomer's first command runs the real job against a simulated venue."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.helpers import Workspace

ROOT = Path(__file__).resolve().parents[2]


def test_bundled_playbook_is_the_example_playbook() -> None:
    bundled = ROOT / "cmdctl" / "data" / "game-night.yml"
    assert bundled.read_bytes() == (ROOT / "playbooks" / "game-night.yml").read_bytes()


@pytest.mark.timeout(90)
def test_demo_runs_and_keeps_a_venue_to_explore(workspace: Workspace, tmp_path: Path) -> None:
    keep = tmp_path / "venue"
    result = workspace.invoke("demo", "--keep", str(keep))
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "24 simulated bar TVs" in out
    assert "queued batch" in out and "$ cmdctl drain" in out and "$ cmdctl status" in out
    assert "bar-tv-23: connection refused" in out  # the staged offline TV is named with its cause
    assert "Point cmdctl at your own devices" in out
    assert "\x1b[" not in out  # not a terminal: no control codes
    for name in ("devices.yml", "secrets.yaml", "game-night.yml", "journal"):
        assert (keep / name).exists(), name

    env = {"CMDCTL_HOME": str(keep / "journal"), "CMDCTL_INVENTORY": str(keep / "devices.yml")}
    status = json.loads(workspace.invoke("status", "--json", extra_env=env).stdout)
    done, pending = status["counts"].get("done", 0), status["counts"].get("pending", 0)
    assert done >= 20 * 7 and pending >= 6  # the offline TV's commands wait for the next drain
    history = workspace.invoke("history", "--device", "bar-tv-1", "--json", extra_env=env)
    assert {h["state"] for h in json.loads(history.stdout)} == {"done"}


def test_demo_refuses_a_non_empty_keep_dir(workspace: Workspace, tmp_path: Path) -> None:
    keep = tmp_path / "busy"
    keep.mkdir()
    (keep / "something").write_text("mine")
    result = workspace.invoke("demo", "--keep", str(keep))
    assert result.returncode == 2
    assert "not an empty directory" in result.stderr
    assert (keep / "something").read_text() == "mine"
