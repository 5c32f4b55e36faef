"""`cmdctl simulate --write-inventory`, then a plain aioesphomeapi script, as a newcomer would."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.helpers import Workspace

NEWCOMER_SCRIPT = r"""
import asyncio, sys, yaml
from pathlib import Path
from aioesphomeapi import APIClient

inv_path = Path(sys.argv[1])
secrets = yaml.safe_load((inv_path.parent / "secrets.yaml").read_text())

class Loader(yaml.SafeLoader):
    pass

Loader.add_constructor("!secret", lambda loader, node: secrets[loader.construct_scalar(node)])
inventory = yaml.load(inv_path.read_text(), Loader=Loader)

async def main():
    for name, dev in inventory["devices"].items():
        cli = APIClient(dev["host"], dev["port"], None, noise_psk=dev.get("key"))
        await cli.connect(login=True)
        info, entities, services = await cli.device_info_and_list_entities()
        ids = sorted(f"{type(e).__name__}:{e.object_id}" for e in entities)
        switch = next(e for e in entities if e.object_id == "tv_power")
        cli.switch_command(switch.key, True)
        await cli.device_info()  # delivery barrier
        print(info.name, len(entities), len(services), ",".join(ids))
        await cli.disconnect()

asyncio.run(main())
"""


@pytest.mark.timeout(60)
def test_write_inventory_then_plain_aioesphomeapi(workspace: Workspace, tmp_path: Path) -> None:
    inv = tmp_path / "sim" / "devices.yml"
    record = tmp_path / "received.jsonl"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "cmdctl",
            "simulate",
            "--count",
            "5",
            "--write-inventory",
            str(inv),
            "--record",
            str(record),
        ],
        env=workspace.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 20
        while not (inv.exists() and (inv.parent / "secrets.yaml").exists()):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "simulate never wrote its inventory"
            time.sleep(0.05)
        time.sleep(0.2)  # the files are written atomically; give the table time to print
        script = tmp_path / "newcomer.py"
        script.write_text(NEWCOMER_SCRIPT)
        run = subprocess.run(
            [sys.executable, str(script), str(inv)], capture_output=True, text=True, timeout=30
        )
        assert run.returncode == 0, run.stderr
        lines = run.stdout.strip().splitlines()
        assert [line.split()[0] for line in lines] == [f"bar-tv-{i}" for i in range(1, 6)]
        for line in lines:
            _name, entities, services, ids = line.split()
            assert (entities, services) == ("6", "2")
            assert "SwitchInfo:tv_power" in ids and "SelectInfo:input" in ids
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert "5 simulated devices listening" in out
    assert (inv.stat().st_mode & 0o777) == 0o600
    received = [line for line in record.read_text().splitlines() if '"switch"' in line]
    assert len(received) == 5


def _refused(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    """Run `cmdctl ARGV` in this process; it must exit 2 (bad input). Its stderr."""
    from cmdctl.cli.app import main

    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    return capsys.readouterr().err


def test_bad_spec_file_names_file_line_and_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "sim.yml"
    spec.write_text("devices:\n  a:\n    faults: {latency: soon}\n")
    assert _refused(["simulate", "--spec", str(spec)], capsys) == (
        f"cmdctl: {spec}:3:23: latency: bad duration 'soon'"
        " (hint: write a duration like 200ms, 30s, 10m, 2h, 7d or 1h30m)\n"
    )


def test_bad_simulate_block_names_the_inventory_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    inventory = tmp_path / "devices.yml"
    inventory.write_text("devices:\n  tv:\n    host: 127.0.0.1\n    simulate: {template: radio}\n")
    assert _refused(["simulate", "--inventory", str(inventory)], capsys) == (
        f"cmdctl: {inventory}:4:26: unknown template 'radio' (hint: one of: tv)\n"
    )
