"""`!secret NAME` command arguments (issue 15 §3), as real `cmdctl` processes against simulated
devices: the device receives the value, and the value appears in no file under the journal
directory, no output of any command and no argument of any process."""

from __future__ import annotations

import json
from pathlib import Path

from cmdctl.core.errors import ExitCode
from cmdctl.journal.store import Journal
from cmdctl.simulator import (
    ActionSpec,
    ArgSpec,
    DeviceSpec,
    EntitySpec,
    Fleet,
    VirtualDevice,
    write_inventory,
)

from .conftest import acmdctl, cli_env

PIN = "Zq7-4827-xK"  # letters and digits: never part of an id, a time or a count by chance
DOOR_ENTITIES = (
    EntitySpec("lock", "Front", requires_code=True, initial="locked"),
    EntitySpec("text", "Note", max_length=4),  # shorter than the PIN: the device refuses it
)
DOOR_ACTIONS = (ActionSpec("open_gate", (ArgSpec("pin", "string"), ArgSpec("box", "int"))),)
PLAYBOOK = """\
name: doors
targets: all
steps:
  - name: unlock
    lock.front: {command: unlock, code: !secret front_door_pin}
  - name: gate
    action: open_gate
    data: {pin: !secret front_door_pin, box: 2}
"""


def doors(count: int) -> list[DeviceSpec]:
    return [
        DeviceSpec(
            f"door-{i}",
            f"Door {i}",
            mac=f"A0:B7:65:00:10:0{i}",
            entities=DOOR_ENTITIES,
            actions=DOOR_ACTIONS,
        )
        for i in range(1, count + 1)
    ]


def codes(dev: VirtualDevice) -> list[tuple[str, object]]:
    """What the simulated device received (its own record): (selector, the secret argument)."""
    out = []
    for r in dev.received:
        if r.accepted:
            value = r.args.get("code") if r.kind == "lock" else (r.args.get("data") or {})["pin"]
            out.append((r.selector, value))
    return out


class Run:
    """Runs cmdctl, keeping every argv and every byte of output to search for the PIN."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.argv: list[str] = []
        self.output: list[str] = []

    async def __call__(self, *args: str) -> tuple[int, str, str]:
        self.argv.extend(args)
        code, out, err = await acmdctl(*args, env=self.env)
        self.output += [out, err]
        return code, out, err


def files_holding(directory: Path, text: str) -> list[Path]:
    return [p for p in directory.rglob("*") if p.is_file() and text.encode() in p.read_bytes()]


async def test_a_secret_reaches_the_device_and_nothing_else(tmp_path: Path) -> None:
    inventory = tmp_path / "devices.yml"
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text(f'front_door_pin: "{PIN}"\n')
    playbook = tmp_path / "doors.yml"
    playbook.write_text(PLAYBOOK)
    journal = Journal(tmp_path / "journal")
    log, metrics = tmp_path / "journal" / "outcomes.jsonl", tmp_path / "journal" / "cmdctl.prom"
    cmdctl = Run(cli_env(journal.directory, inventory))
    async with Fleet(doors(2)) as fleet:
        write_inventory(fleet.devices, inventory)
        door1, door2 = fleet.devices

        code, out, err = await cmdctl("validate", str(playbook))
        assert code == ExitCode.OK, err
        code, out, err = await cmdctl("bulk", str(playbook), "--check")
        assert code == ExitCode.OK, err
        assert "***" in out  # the plan's table shows the secret masked
        code, out, err = await cmdctl("bulk", str(playbook))
        assert code == ExitCode.OK, err
        queued = journal.path.read_text()
        assert '"code":{"!secret":"front_door_pin"}' in queued  # a reference, never the value
        assert '"pin":{"!secret":"front_door_pin"}' in queued

        code, out, err = await cmdctl(
            "drain", "--log-file", str(log), "--metrics-file", str(metrics), "--json"
        )
        assert code == ExitCode.OK, err
        for dev in fleet.devices:
            assert codes(dev) == [("lock.front", PIN), ("action.open_gate", PIN)]

        # send, direct: the value is read as YAML, so the reference goes by name only.
        value = "{command: lock, code: !secret front_door_pin}"
        code, out, err = await cmdctl("send", "door-1", "lock.front", value, "--json")
        assert code == ExitCode.OK, err
        assert json.loads(out)["args"] == {"command": "lock", "code": {"!secret": "front_door_pin"}}
        assert codes(door1)[-1] == ("lock.front", PIN)
        # send, queued (the device is away) and run by the next drain.
        await door2.set_offline(True)
        code, out, err = await cmdctl("send", "door-2", "lock.front", value)
        assert code == ExitCode.QUEUED, err
        await door2.set_offline(False)
        code, out, err = await cmdctl("drain")
        assert code == ExitCode.OK, err
        assert codes(door2)[-1] == ("lock.front", PIN)

        # A device refusing the value says why without echoing it (the validator quotes the
        # text it refuses; the message is scrubbed), both sent directly and by a drain.
        code, out, err = await cmdctl(
            "send", "--now", "door-1", "text.note", "!secret front_door_pin"
        )
        assert code == ExitCode.FAILED
        assert "'***' is 11 characters, max 4" in err, err
        code, out, err = await cmdctl(
            "send", "--queue", "door-2", "text.note", "!secret front_door_pin"
        )
        assert code == ExitCode.OK, err
        code, out, err = await cmdctl("drain", "--json", "--log-file", str(log))
        assert code == ExitCode.FAILED
        assert "'***' is 11 characters, max 4" in out, out

    ids = [e.id for e in journal.ledger().entries()]
    for args in (
        ("status",),
        ("status", "--json"),
        ("queue", "ls", "--state", "done"),
        ("queue", "ls", "--state", "failed", "--json"),
        ("history",),
        ("history", "--json"),
        ("events",),
        ("events", "--json"),
        ("journal", "verify"),
        *(("queue", "show", i) for i in ids),
        *(("queue", "show", i, "--json") for i in ids),
    ):
        code, out, err = await cmdctl(*args)
        assert code in (ExitCode.OK, ExitCode.FAILED), (args, err)
    assert any("code: ***" in text for text in cmdctl.output)  # tables show it masked
    code, out, err = await cmdctl("journal", "compact", "--keep", "0s")
    assert code == ExitCode.OK, err
    assert list((journal.directory / "archive").glob("*.jsonl"))  # archived: a day file
    code, out, err = await cmdctl("history", "--archive", "--json")
    assert code == ExitCode.OK, err

    assert log.exists() and metrics.exists()
    assert files_holding(journal.directory, PIN) == []
    assert files_holding(journal.directory, "front_door_pin") != []  # the name, as a reference
    assert [text for text in cmdctl.output if PIN in text] == []
    assert PIN not in " ".join(cmdctl.argv)


async def test_a_missing_secret_is_refused_before_queueing_and_fails_after(
    tmp_path: Path,
) -> None:
    inventory = tmp_path / "devices.yml"
    secrets = tmp_path / "secrets.yaml"
    playbook = tmp_path / "doors.yml"
    playbook.write_text(PLAYBOOK)
    journal = Journal(tmp_path / "journal")
    env = cli_env(journal.directory, inventory)
    async with Fleet(doors(1)) as fleet:
        write_inventory(fleet.devices, inventory)
        secrets.write_text("front_door_pim: x\n")  # a typo
        missing = f"secret 'front_door_pin' is not in {secrets}"

        for verb in ("validate", "bulk"):
            code, out, err = await acmdctl(verb, str(playbook), env=env)
            assert code == ExitCode.INPUT, err
            assert err.startswith(f"cmdctl: {playbook}:5:41: {missing}"), err
            assert "did you mean 'front_door_pim'?" in err and "Traceback" not in err
        code, out, err = await acmdctl(
            "send",
            "door-1",
            "lock.front",
            "{command: unlock, code: !secret front_door_pin}",
            env=env,
        )
        assert code == ExitCode.INPUT and missing in err, err
        assert not journal.path.exists() or journal.ledger().entries() == []

        # Queued while it existed, gone when the drain runs: that entry fails, naming it.
        secrets.write_text(f'front_door_pin: "{PIN}"\n')
        code, out, err = await acmdctl("bulk", str(playbook), env=env)
        assert code == ExitCode.OK, err
        secrets.write_text("other: x\n")
        code, out, err = await acmdctl("drain", env=env)
        assert code == ExitCode.FAILED
        assert "Traceback" not in err and PIN not in out + err
        entries = journal.ledger().entries()
        assert [e.state.value for e in entries] == ["failed", "failed"]
        for entry in entries:
            assert f"secret 'front_door_pin' is not in {secrets}" in (entry.last_error or "")
        assert fleet.devices[0].received == []  # nothing was sent
