"""One device's missing `!secret` fails that device's work only (issue 13 item 11), as real
`cmdctl` processes against simulated devices."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from cmdctl.core.errors import ExitCode
from cmdctl.journal.store import Journal
from cmdctl.simulator import Fleet, write_inventory

from .conftest import acmdctl, cli_env, received, tvs

PLAYBOOK = "name: inputs\ntargets: all\nsteps:\n  - select.input: HDMI 2\n"


def _drop_secret(inventory: Path, device: str) -> tuple[str, int]:
    """Remove `device`'s key from secrets.yaml; (the secret's name, its line in the inventory)."""
    secrets_path = inventory.with_name("secrets.yaml")
    secrets = yaml.safe_load(secrets_path.read_text())
    lines = inventory.read_text().splitlines()
    start = lines.index(f"  {device}:")
    line = next(i for i in range(start, len(lines)) if "!secret" in lines[i]) + 1
    name = lines[line - 1].split("!secret", 1)[1].strip()
    del secrets[name]
    secrets_path.write_text(yaml.safe_dump(secrets))
    return name, line


async def test_a_missing_secret_fails_only_its_device(tmp_path: Path) -> None:
    inventory = tmp_path / "devices.yml"
    playbook = tmp_path / "inputs.yml"
    playbook.write_text(PLAYBOOK)
    async with Fleet(tvs(3, encrypted=True)) as fleet:
        write_inventory(fleet.devices, inventory)
        journal = Journal(tmp_path / "journal")
        env = cli_env(journal.directory, inventory)
        name, line = _drop_secret(inventory, "bar-tv-2")
        where = f"{inventory}:{line}:"
        missing = f"secret {name!r} is not in {inventory.with_name('secrets.yaml')}"

        # validate and devices ls still work, and say what is wrong and where.
        code, out, err = await acmdctl("validate", str(playbook), env=env)
        assert code == ExitCode.OK, err
        assert f"warning: {where}" in err and missing in err and "bar-tv-2" in err
        code, out, err = await acmdctl("devices", "ls", env=env)
        assert code == ExitCode.OK, err
        assert f"warning: {where}" in err and missing in err
        code, out, err = await acmdctl("devices", "ls", "--json", env=env)
        assert code == ExitCode.OK, err
        problems = {row["name"]: row["problem"] for row in json.loads(out)}
        assert problems["bar-tv-1"] is None and missing in problems["bar-tv-2"]

        # `send` to another device works.
        code, out, err = await acmdctl("send", "bar-tv-1", "select.input", "Cable", env=env)
        assert code == ExitCode.OK, err
        assert received(fleet.devices[0]) == [("select.input", {"option": "Cable"})]

        # `send` to the device itself fails, with the cause, and nothing reaches it.
        code, out, err = await acmdctl("send", "bar-tv-2", "select.input", "Cable", env=env)
        assert code == ExitCode.FAILED, err
        assert missing in err and "Traceback" not in err

        # A playbook over all three queues; a drain does the other two and fails bar-tv-2's.
        code, out, err = await acmdctl("bulk", str(playbook), env=env)
        assert code == ExitCode.OK, err
        code, out, err = await acmdctl("drain", env=env)
        assert code == ExitCode.FAILED, err
        assert missing in err
        assert received(fleet.devices[2]) == [("select.input", {"option": "HDMI 2"})]
        assert received(fleet.devices[1]) == []
    ledger = journal.ledger()
    bulk = [e for e in ledger.entries() if e.origin == "bulk"]
    assert {e.device: e.state.value for e in bulk} == {
        "bar-tv-1": "done", "bar-tv-2": "failed", "bar-tv-3": "done",
    }
    (failed,) = (e for e in bulk if e.device == "bar-tv-2")
    assert failed.last_error is not None and missing in failed.last_error
