"""A command imports and builds only what it uses, and the process ends without collecting.

`cmdctl send` is mostly start-up: aioesphomeapi, typer and rich are imported on every run, so
a stray import (another command's module, rich's progress bars, zeroconf) or building every
command's options shows in every send. These check what a real process imported, not times.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main

from cmdctl.cli.app import COMMANDS, app
from tests.cli.helpers import Workspace, three_tvs

#: Command modules of cmdctl.cli: a command imports its own and no other.
COMMAND_MODULES = {f"cmdctl.cli.{name}" for name in COMMANDS.values()} | {
    "cmdctl.cli.discover_cmds"  # `devices discover`, registered by devices_cmds
}
#: Only a terminal shows bars and live views; send and drain print a table only there (the recap).
BARS = {"rich.progress", "rich.live"}


def imported(
    args: list[str], env: dict[str, str], cwd: Path
) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """Run `python -X importtime -m cmdctl ARGS`; (the process, the modules it imported)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "cmdctl", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=60,
    )
    names = {
        line.rsplit("|", 1)[1].strip()
        for line in proc.stderr.splitlines()
        if line.startswith("import time:") and line.count("|") == 2
    }
    assert "cmdctl.cli.app" in names, proc.stderr[-2000:]  # the tracer saw cmdctl: this can fail
    return proc, names


def test_send_imports_only_what_a_send_needs(tmp_path: Path) -> None:
    with three_tvs(tmp_path) as (_, ws):
        proc, names = imported(["send", "bar-tv-1", "switch.tv_power", "on"], ws.env, ws.root)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    assert "bar-tv-1: switch.tv_power confirmed in" in proc.stdout
    assert "aioesphomeapi" in names  # it did talk to the device
    assert names & COMMAND_MODULES == {"cmdctl.cli.exec_cmds"}
    assert names & (BARS | {"rich.table"}) == set()
    # aioesphomeapi needs zeroconf to browse or resolve .local names, not to reach an address
    assert {n for n in names if n.split(".")[0] == "zeroconf"} == set()


def _client(names: set[str]) -> set[str]:
    return {n for n in names if n.split(".")[0] == "aioesphomeapi"}


def test_a_drain_with_nothing_due_and_a_queued_send_do_not_load_the_client(
    tmp_path: Path,
) -> None:
    # cron runs `cmdctl drain` every minute, mostly with nothing to do; `send --queue` only
    # writes the journal. Neither talks to a device, so neither pays the client's import.
    with three_tvs(tmp_path) as (_, ws):
        proc, names = imported(["drain"], ws.env, ws.root)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert _client(names) == set()
        proc, names = imported(["send", "--queue", "bar-tv-1", "switch.tv_power", "on"],
                               ws.env, ws.root)
        assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
        assert "queued" in proc.stdout
        assert _client(names) == set()
        # the queued command is due: this drain connects, and the client is loaded for it
        proc, names = imported(["drain"], ws.env, ws.root)
        assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
        assert "aioesphomeapi" in names
        status = ws.run("queue", "ls", "--state", "done")
        assert "switch.tv_power" in status.stdout, status.stdout + status.stderr


@pytest.mark.parametrize(
    ("args", "own"),
    [
        # `status --health --max-age` reads its duration with exec_cmds.seconds
        (["status"], {"cmdctl.cli.status_cmds", "cmdctl.cli.exec_cmds"}),
        (["drain"], {"cmdctl.cli.exec_cmds"}),
        (["queue", "ls"], {"cmdctl.cli.queue_cmds"}),
        (["journal", "verify"], {"cmdctl.cli.journal_cmds"}),
        (["--version"], set()),
    ],
)
def test_a_command_imports_no_other_command(
    workspace: Workspace, args: list[str], own: set[str]
) -> None:
    proc, names = imported(args, workspace.env, workspace.root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert names & COMMAND_MODULES == own
    assert names & BARS == set()
    if args == ["drain"]:
        assert "rich.table" not in names  # a cron drain shows no recap table either


def _shape(command: Any) -> object:
    """What click shows and parses of a command: class, help, parameters, subcommands."""
    return (
        type(command).__name__,
        command.help,
        [(p.name, tuple(p.opts), tuple(p.secondary_opts)) for p in command.params],
        {name: _shape(sub) for name, sub in getattr(command, "commands", {}).items()},
    )


def test_the_command_table_is_what_the_modules_register() -> None:
    # The app builds commands lazily from COMMANDS: registering every module at once, as the
    # app did before, must give the same names, in the same (--help) order, the same commands.
    eager = typer.Typer(rich_markup_mode=None)
    for module in dict.fromkeys(COMMANDS.values()):
        importlib.import_module(f"cmdctl.cli.{module}").register(eager)
    everything = typer.main.get_group(eager).commands
    root: Any = typer.main.get_command(app)
    assert root.list_commands(None) == list(everything)
    for name, command in everything.items():
        assert _shape(root.get_command(None, name)) == _shape(command), name
    assert root.get_command(None, "sned") is None


def test_the_process_ends_without_collecting_what_it_imported(workspace: Workspace) -> None:
    # Python's shutdown would run full collections over every object the imports made (~60 ms
    # of a send); main() freezes them for the end of the process, not before.
    script = (
        "import atexit, gc\n"
        "atexit.register(lambda: print('frozen at exit:', gc.get_freeze_count() > 0))\n"
        "from cmdctl.cli import main\n"
        "for argv in (['--version'], ['status']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit as done:\n"
        "        print('exit', done.code, 'frozen:', gc.get_freeze_count() > 0)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=workspace.root, env=workspace.env,
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [line for line in proc.stdout.splitlines() if line.startswith(("exit", "frozen"))]
    assert lines == ["exit 0 frozen: False", "exit 0 frozen: False", "frozen at exit: True"]

