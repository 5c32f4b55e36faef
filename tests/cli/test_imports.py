"""Commands that never talk to devices must not import aioesphomeapi (it costs ~0.25 s)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.cli.helpers import Workspace, volume_playbook


@pytest.mark.parametrize(
    "args",
    [
        ["--help"],
        ["validate", "{pb}"],
        ["bulk", "{pb}"],
        ["bulk", "{pb}", "--check"],
        ["status"],
        ["status", "--health"],
        ["queue", "ls"],
        ["history"],
        ["journal", "verify"],
        ["journal", "compact"],
        ["devices", "ls"],
    ],
)
def test_no_device_command_imports_aioesphomeapi(workspace: Workspace, args: list[str]) -> None:
    pb = workspace.playbook("v.yml", volume_playbook(1))
    argv = [a.replace("{pb}", str(pb)) for a in args]
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "cmdctl", *argv],
        cwd=workspace.root,
        env=workspace.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode in (0, 1, 2), result.stderr[-2000:]
    imported = [line for line in result.stderr.splitlines() if "aioesphomeapi" in line]
    assert imported == [], imported[:3]
    # and the import tracer did see cmdctl's own modules, so this test can fail
    assert "cmdctl.cli.app" in result.stderr


@pytest.mark.parametrize("args", [["status"], ["bulk", "{pb}"], ["queue", "ls"], ["history"]])
def test_everyday_commands_leave_compaction_and_verify_unimported(
    workspace: Workspace, args: list[str]
) -> None:
    # The archive, compaction and streaming verify are for `journal compact / verify` and
    # `history --archive`; a cron `status` or a `bulk` does not pay for importing them.
    pb = workspace.playbook("v.yml", volume_playbook(1))
    argv = [a.replace("{pb}", str(pb)) for a in args]
    result = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "cmdctl", *argv],
        cwd=workspace.root,
        env=workspace.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode in (0, 1, 2), result.stderr[-2000:]
    heavy = ("cmdctl.journal.archive", "cmdctl.journal.compaction", "cmdctl.journal.verification")
    assert [line for line in result.stderr.splitlines() if line.endswith(heavy)] == []
    assert "cmdctl.journal.store" in result.stderr
