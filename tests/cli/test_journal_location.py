"""Where the journal is: an unsafe, misplaced or missing journal directory is one clear line."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.cli.helpers import Workspace, volume_playbook

OTHER_UID = 65534  # nobody


def _one_clean_line(stderr: str, stdout: str) -> str:
    assert "Traceback" not in stderr + stdout
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def test_bulk_refuses_a_journal_file_swapped_for_a_symlink(workspace: Workspace) -> None:
    """Another user swapped journal.jsonl for a link: root's bulk must not append or chmod."""
    pb = workspace.playbook("ok.yml", volume_playbook(1))
    assert workspace.run("bulk", str(pb)).returncode == 0
    victim = workspace.root / "victim"
    victim.write_text("not a journal\n")
    victim.chmod(0o644)
    journal_file = workspace.journal / "journal.jsonl"
    journal_file.unlink()
    journal_file.symlink_to(victim)
    result = workspace.run("bulk", str(pb))
    line = _one_clean_line(result.stderr, result.stdout)
    assert result.returncode == 3, result
    assert line == (
        f"cmdctl: {journal_file} is a symbolic link: cmdctl never follows links in the journal "
        "directory (hint: remove the link (who made it?) or move the real file there)"
    )
    assert victim.read_text() == "not a journal\n"
    assert stat.S_IMODE(victim.stat().st_mode) == 0o644


@pytest.mark.parametrize("command", [["bulk", "ok.yml"], ["status"], ["journal", "verify"]])
def test_a_world_writable_journal_directory_is_refused(
    workspace: Workspace, command: list[str]
) -> None:
    workspace.playbook("ok.yml", volume_playbook(1))
    workspace.journal.mkdir()
    os.chmod(workspace.journal, 0o777)
    result = workspace.invoke(*command)
    line = _one_clean_line(result.stderr, result.stdout)
    assert result.returncode == 3, result
    assert line == (
        f"cmdctl: journal directory {workspace.journal} has mode 777: writable by group and "
        f"others, refusing to trust it (hint: chmod 700 {workspace.journal})"
    )
    assert os.listdir(workspace.journal) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can give a directory away")
def test_a_journal_directory_owned_by_another_user_is_refused(workspace: Workspace) -> None:
    pb = workspace.playbook("ok.yml", volume_playbook(1))
    assert workspace.invoke("bulk", str(pb)).returncode == 0
    before = (workspace.journal / "journal.jsonl").read_bytes()
    os.chown(workspace.journal, OTHER_UID, -1)
    result = workspace.invoke("bulk", str(pb))
    line = _one_clean_line(result.stderr, result.stdout)
    assert result.returncode == 3, result
    assert f"journal directory {workspace.journal} is owned by uid {OTHER_UID}" in line
    assert "(hint: chown it to yourself, or use a directory of your own" in line
    assert (workspace.journal / "journal.jsonl").read_bytes() == before


@pytest.mark.parametrize(
    ("where", "needle"),
    [
        ("/dev/null", "journal directory /dev/null is not a directory"),
        ("/dev/null/journal", "directory /dev/null/journal: a parent of it is not a directory"),
    ],
)
@pytest.mark.parametrize(
    "command", [["journal", "verify"], ["status"], ["queue", "ls"], ["journal", "compact"]]
)
def test_a_journal_that_is_not_a_directory_is_one_clear_line(
    workspace: Workspace, where: str, needle: str, command: list[str]
) -> None:
    result = workspace.invoke(*command, "--journal", where)
    line = _one_clean_line(result.stderr, result.stdout)
    assert result.returncode == 3, result
    assert needle in line
    assert "(hint: " in line


def test_verify_of_a_journal_not_created_yet_changes_nothing(workspace: Workspace) -> None:
    missing = workspace.root / "nowhere" / "journal"
    result = workspace.invoke("journal", "verify", "--journal", str(missing))
    assert result.returncode == 0, result
    assert not Path(missing).parent.exists()
