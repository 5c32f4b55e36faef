"""Where the CLI finds the inventory when none is named: cron's and systemd's working directory."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.helpers import Workspace, invoke, write_inventory


def test_the_inventory_in_the_config_directory_is_found_from_any_directory(
    workspace: Workspace, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    (config / "cmdctl").mkdir(parents=True)
    write_inventory(config / "cmdctl", 2)
    elsewhere = tmp_path / "cron-cwd"
    elsewhere.mkdir()
    env = {k: v for k, v in workspace.env.items() if k != "CMDCTL_INVENTORY"}
    env["XDG_CONFIG_HOME"] = str(config)
    result = invoke("devices", "ls", "--json", env=env, cwd=elsewhere)
    assert result.returncode == 0, result.stderr
    assert [d["name"] for d in json.loads(result.stdout)] == ["tv-1", "tv-2"]


def test_no_inventory_anywhere_names_every_place_it_looked(
    workspace: Workspace, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "cron-cwd"
    elsewhere.mkdir()
    env = {k: v for k, v in workspace.env.items() if k != "CMDCTL_INVENTORY"}
    env["XDG_CONFIG_HOME"] = str(tmp_path / "config")
    result = invoke("devices", "ls", env=env, cwd=elsewhere)
    assert result.returncode == 2
    assert result.stderr == (
        "cmdctl: no inventory: --inventory not given, $CMDCTL_INVENTORY not set, "
        f"no {elsewhere}/devices.yml, no {tmp_path}/config/cmdctl/devices.yml "
        "(hint: pass --inventory FILE, set $CMDCTL_INVENTORY, or put it at "
        f"{tmp_path}/config/cmdctl/devices.yml)\n"
    )


def test_a_named_inventory_that_is_missing_is_an_error_not_a_fallback(
    workspace: Workspace, tmp_path: Path
) -> None:
    config = tmp_path / "config"
    (config / "cmdctl").mkdir(parents=True)
    write_inventory(config / "cmdctl", 2)
    env = {**workspace.env, "XDG_CONFIG_HOME": str(config)}
    result = invoke("devices", "ls", "--inventory", "nope.yml", env=env, cwd=tmp_path)
    assert result.returncode == 2
    assert "no inventory at" in result.stderr and "nope.yml" in result.stderr
