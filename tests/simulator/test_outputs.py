"""What the simulator writes: the inventory for cmdctl and the JSONL record."""

from __future__ import annotations

import asyncio
import json
import stat
import sys
from pathlib import Path
from typing import Any

import yaml
from aioesphomeapi import APIClient

from cmdctl.simulator import Fleet, read_record, venue, write_inventory
from cmdctl.simulator.naming import fnv1

from .helpers import eventually


def _load_inventory(path: Path) -> dict[str, Any]:
    """The inventory with `!secret name` resolved from secrets.yaml, as ESPHome and cmdctl do."""
    secrets = yaml.safe_load((path.parent / "secrets.yaml").read_text())

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!secret", lambda loader, node: secrets[loader.construct_scalar(node)])
    data: dict[str, Any] = yaml.load(path.read_text(), Loader=Loader)
    return data


async def test_written_inventory_reaches_every_device(tmp_path: Path) -> None:
    specs = venue(2, encrypted=True)
    inventory = tmp_path / "devices.yml"
    (tmp_path / "secrets.yaml").write_text("wifi_password: hunter2\n")
    async with Fleet(specs) as fleet:
        write_inventory(fleet.devices, inventory)
        text = inventory.read_text()
        assert "!secret bar_tv_1_key" in text
        for path in (inventory, tmp_path / "secrets.yaml"):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        data = _load_inventory(inventory)
        assert yaml.safe_load((tmp_path / "secrets.yaml").read_text())["wifi_password"] == (
            "hunter2"
        )
        assert set(data["devices"]) == {"bar-tv-1", "bar-tv-2"}
        for name, entry in data["devices"].items():
            assert entry["groups"] == ["bar", "tvs"]
            cli = APIClient(
                entry["host"],
                entry["port"],
                None,
                noise_psk=entry["key"],
                expected_name=entry["expected_name"],
            )
            await cli.connect(login=True)
            info = await cli.device_info()
            assert info.name == name
            await cli.disconnect()


async def test_plaintext_devices_get_no_key(tmp_path: Path) -> None:
    async with Fleet(venue(1, encrypted=False)) as fleet:
        write_inventory(fleet.devices, tmp_path / "devices.yml")
    entry = yaml.safe_load((tmp_path / "devices.yml").read_text())["devices"]["bar-tv-1"]
    assert "key" not in entry and entry["port"] == fleet.devices[0].port


async def test_record_file_is_readable_while_running(tmp_path: Path) -> None:
    record = tmp_path / "received.jsonl"
    async with Fleet(venue(1, encrypted=False), record_path=record) as fleet:
        (dev,) = fleet.devices
        cli = APIClient("127.0.0.1", dev.port, None)
        await cli.connect(login=True)
        cli.switch_command(fnv1("tv_power"), True)
        cli.select_command(fnv1("input"), "Cable")
        await cli.device_info()
        # another process reads the file while the simulator still runs
        reader = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "import sys, json; print(json.dumps([json.loads(l) for l in open(sys.argv[1])]))",
            str(record),
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await reader.communicate()
        lines = json.loads(out)
        commands = [(r["kind"], r["object_id"], r["args"]) for r in lines if r["t"] == "command"]
        assert commands == [
            ("switch", "tv_power", {"state": True}),
            ("select", "input", {"option": "Cable"}),
        ]
        assert lines[0]["t"] == "open" and lines[0]["open_connections"] == 1
        await cli.disconnect()
        await eventually(lambda: fleet.recorder.connections[-1].event == "close")
    events = [r["t"] for r in read_record(record)]
    assert events == ["open", "command", "command", "close"]
