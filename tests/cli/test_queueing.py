"""`bulk`, `status`, `queue`, `history` and `journal` end to end through cmdctl's entry point."""

from __future__ import annotations

import json
import re

from tests.cli.helpers import Workspace, volume_playbook

BATCH_RE = re.compile(r"queued batch ([0-9A-Z]{26})")


def test_bulk_queues_one_batch_and_status_counts_it(workspace: Workspace) -> None:
    pb = workspace.playbook("v.yml", volume_playbook(3))
    result = workspace.invoke("bulk", str(pb))
    assert result.returncode == 0, result.stderr
    match = BATCH_RE.search(result.stdout)
    assert match, result.stdout
    assert "30 commands (3 steps over 10 devices)" in result.stdout

    status = workspace.invoke("status", "--json")
    assert status.returncode == 0, status.stderr
    data = json.loads(status.stdout)
    assert data["counts"] == {"pending": 30}
    assert [b["batch"] for b in data["batches"]] == [match.group(1)]
    assert data["batches"][0]["playbook"] == "volumes"

    ls = workspace.invoke("queue", "ls", "--device", "tv-3", "--json")
    rows = json.loads(ls.stdout)
    assert [r["step"] for r in rows] == ["volume 0", "volume 1", "volume 2"]
    assert all(r["device"] == "tv-3" for r in rows)


def test_bulk_check_writes_nothing(workspace: Workspace) -> None:
    pb = workspace.playbook("v.yml", volume_playbook(2))
    result = workspace.invoke("bulk", str(pb), "--check", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert len(plan["commands"]) == 20
    assert not (workspace.journal / "journal.jsonl").exists()


def test_limit_narrows_the_batch(workspace: Workspace) -> None:
    pb = workspace.playbook("v.yml", volume_playbook(1))
    result = workspace.invoke("bulk", str(pb), "--limit", "tv-1,tv-2", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["queued"] == 2


def test_cancel_retry_priority_and_show(workspace: Workspace) -> None:
    pb = workspace.playbook("v.yml", volume_playbook(2))
    batch = BATCH_RE.search(workspace.invoke("bulk", str(pb)).stdout)
    assert batch
    rows = json.loads(workspace.invoke("queue", "ls", "--json").stdout)
    first = rows[0]["id"]

    prio = workspace.invoke("queue", "priority", first, "high")
    assert prio.returncode == 0, prio.stderr
    shown = json.loads(workspace.invoke("queue", "show", first, "--json").stdout)
    assert shown["priority"] == "high"
    assert [e["type"] for e in shown["events"]] == ["queued", "reprioritised"]

    cancel = workspace.invoke("queue", "cancel", "--batch", batch.group(1))
    assert cancel.returncode == 0, cancel.stderr
    assert "cancelled 20 entries" in cancel.stdout
    counts = json.loads(workspace.invoke("status", "--json").stdout)["counts"]
    assert counts == {"cancelled": 20}

    again = workspace.invoke("queue", "cancel", first)
    assert again.returncode == 1
    assert "already cancelled" in again.stderr

    retry = workspace.invoke("queue", "retry", first)
    assert retry.returncode == 0, retry.stderr
    counts = json.loads(workspace.invoke("status", "--json").stdout)["counts"]
    assert counts == {"cancelled": 19, "pending": 1}

    hist = json.loads(workspace.invoke("history", "--json").stdout)
    assert len(hist) == 19 and all(h["state"] == "cancelled" for h in hist)


def test_journal_verify_and_compact_on_a_healthy_journal(workspace: Workspace) -> None:
    pb = workspace.playbook("v.yml", volume_playbook(2))
    assert workspace.invoke("bulk", str(pb)).returncode == 0
    verify = workspace.invoke("journal", "verify")
    assert verify.returncode == 0, verify.stderr
    assert verify.stdout.startswith("ok: ")
    compact = workspace.invoke("journal", "compact", "--keep", "1d")
    assert compact.returncode == 0, compact.stderr
    assert json.loads(workspace.invoke("status", "--json").stdout)["counts"] == {"pending": 20}


def test_journal_files_are_private(workspace: Workspace) -> None:
    pb = workspace.playbook("v.yml", volume_playbook(1))
    assert workspace.invoke("bulk", str(pb)).returncode == 0
    assert workspace.journal.stat().st_mode & 0o777 == 0o700
    for path in workspace.journal.iterdir():
        if path.is_file():
            assert path.stat().st_mode & 0o777 == 0o600, path


def test_no_key_reaches_the_journal(workspace: Workspace) -> None:
    from tests.cli.helpers import KEY

    pb = workspace.playbook("v.yml", volume_playbook(1))
    assert workspace.invoke("bulk", str(pb)).returncode == 0
    for path in workspace.journal.rglob("*"):
        if path.is_file():
            assert KEY not in path.read_text(errors="replace"), path


def test_queue_ls_notes_why_an_entry_waits_before_an_older_error(workspace: Workspace) -> None:
    from cmdctl.journal import events as ev
    from cmdctl.journal.store import Journal

    pb = workspace.playbook("v.yml", volume_playbook(1))
    assert workspace.invoke("bulk", str(pb), "--limit", "tv-1").returncode == 0
    journal = Journal(workspace.journal)
    [entry_id] = list(journal.ledger().ids())
    journal.append([
        ev.attempt_failed(entry_id, 5.0, error="tv-1: connection refused", kind="refused",
                          retry_at=35.0),
        ev.rescheduled(entry_id, 5.0, not_before=35.0, attempts=1),
        ev.held(entry_id, 40.0, reason="batch held: 3 of 4 devices failed (--max-fail 2)"),
    ])
    ls = workspace.invoke("queue", "ls")
    assert ls.returncode == 0, ls.stderr
    assert "batch held: 3 of 4 devices failed" in ls.stdout
    assert "connection refused" not in ls.stdout
