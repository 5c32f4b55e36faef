"""Internal errors: every crash keeps its own report, however many happen in one second."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.helpers import Workspace

#: Makes `cmdctl status` hit a bug, with the clock's second frozen, then runs the real CLI.
_CRASHING = """
import sys, time
import cmdctl.cli.app as app
from cmdctl.journal.store import Journal

def boom(self):
    raise RuntimeError("boom " + sys.argv[1])

Journal.load = boom
app.time.strftime = lambda *a: "20261205T120000"  # every report in the same second
app.main(["status"])
"""


def _report_path(stderr: str) -> Path:
    match = re.search(r"internal error \(RuntimeError\); this is a bug in cmdctl\. Details: (\S+)",
                      stderr)
    assert match, stderr
    return Path(match.group(1))


def test_two_crashes_in_one_second_in_one_process_keep_both_reports(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13, item 8: crash files written in the same second overwrote each other."""
    import cmdctl.cli.app as app
    from cmdctl.journal.store import Journal

    calls = iter(range(1, 100))

    def boom(self: Journal) -> None:
        raise RuntimeError(f"boom {next(calls)}")

    monkeypatch.setattr(Journal, "load", boom)
    monkeypatch.setattr(app.time, "strftime", lambda *a: "20261205T120000")
    first, second = workspace.invoke("status"), workspace.invoke("status")
    assert first.returncode == second.returncode == 70
    paths = [_report_path(first.stderr), _report_path(second.stderr)]
    assert paths[0] != paths[1]
    assert "RuntimeError: boom 1" in paths[0].read_text()
    assert "RuntimeError: boom 2" in paths[1].read_text()
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in paths)


def test_crashing_processes_in_one_second_keep_every_report(workspace: Workspace) -> None:
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CRASHING, str(n)],
            cwd=workspace.root,
            env=workspace.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    reports = {}
    for n, proc in enumerate(procs):
        _out, err = proc.communicate(timeout=60)
        assert proc.returncode == 70, err
        reports[n] = _report_path(err)
    assert len(set(reports.values())) == 4
    for n, path in reports.items():
        assert f"RuntimeError: boom {n}" in path.read_text()
    crash_dir = workspace.root / "cache" / "cmdctl" / "crashes"
    assert len(list(crash_dir.iterdir())) == 4
