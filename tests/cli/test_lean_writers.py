"""What every run and every writer no longer imports (real processes, `-X importtime`).

The journal's locks are `flock`s taken by `cmdctl.core.lockfile` (filelock cost ~15 ms of
imports in each writing command), and the CLI sets the entity cache's place through
`cmdctl.device.cacheplace`, so a run that talks to no device never imports the cache or the
domain model for it.
"""

from __future__ import annotations

from pathlib import Path

from tests.cli.helpers import Workspace, three_tvs
from tests.cli.test_lean_start import imported


def test_a_send_takes_the_journal_lock_without_filelock(tmp_path: Path) -> None:
    with three_tvs(tmp_path) as (_, ws):
        proc, names = imported(["send", "bar-tv-1", "switch.tv_power", "on"], ws.env, ws.root)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]
    assert "bar-tv-1: switch.tv_power confirmed in" in proc.stdout
    assert "cmdctl.core.lockfile" in names  # it did take the journal lock
    assert {n for n in names if n.split(".")[0] == "filelock"} == set()


def test_help_and_version_leave_the_entity_cache_and_the_model_unimported(
    workspace: Workspace,
) -> None:
    for args in (["--version"], ["--help"]):
        proc, names = imported(args, workspace.env, workspace.root)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "cmdctl.device.cacheplace" in names  # the place was set, as on every run
        assert names & {"cmdctl.device.cache", "cmdctl.core.model"} == set(), args
