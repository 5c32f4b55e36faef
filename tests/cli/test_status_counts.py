"""`status` counts what the journal holds, whichever cache it read it through."""

from __future__ import annotations

import re

import pytest

from cmdctl.journal import snapshot
from tests.cli.helpers import Workspace, volume_playbook


def _counts(workspace: Workspace) -> tuple[int, int]:
    result = workspace.invoke("status")
    assert result.returncode == 0, result
    match = re.match(r"(\d+) entries \((\d+) events\): ", result.stdout)
    assert match, result.stdout
    return int(match.group(1)), int(match.group(2))


def _lines(workspace: Workspace) -> int:
    return len((workspace.journal / "journal.jsonl").read_bytes().splitlines())


def test_status_counts_every_event_when_it_reads_through_the_delta(
    workspace: Workspace,
) -> None:
    """Issue 13: `168 entries (0 events)` whenever the snapshot or delta cache was used."""
    pb = workspace.playbook("ok.yml", volume_playbook(2))
    for _ in range(3):
        assert workspace.invoke("bulk", str(pb), "--at", "+1h").returncode == 0
    assert workspace.invoke("queue", "cancel", "--device", "tv-1").returncode == 0
    assert (workspace.journal / "journal.delta").exists()
    assert _counts(workspace) == (60, _lines(workspace))
    (workspace.journal / "journal.delta").unlink()
    assert _counts(workspace) == (60, _lines(workspace))  # the same without the cache


def test_status_counts_every_event_when_it_starts_from_a_snapshot(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshot, "SNAPSHOT_AFTER_BYTES", 0)  # every read writes a snapshot
    pb = workspace.playbook("ok.yml", volume_playbook(2))
    assert workspace.invoke("bulk", str(pb), "--at", "+1h").returncode == 0
    first = _counts(workspace)  # writes the snapshot
    assert (workspace.journal / "journal.snapshot").exists()
    assert workspace.invoke("bulk", str(pb), "--at", "+1h").returncode == 0
    assert first == (20, _lines(workspace) - 20)
    assert _counts(workspace) == (40, _lines(workspace))  # snapshot + delta + the tail
    assert _counts(workspace) == (40, _lines(workspace))  # snapshot only


def test_one_entry_is_one_entry(workspace: Workspace) -> None:
    """Issue 13: plurals. One queued command is `1 entry (1 event)`, not `1 entries`."""
    assert workspace.invoke("send", "tv-1", "number.volume", "3", "--queue").returncode == 0
    assert workspace.invoke("status").stdout.startswith("1 entry (1 event): pending 1\n")
