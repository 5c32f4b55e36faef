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


def test_history_archive_reads_what_compact_moved_out(workspace: Workspace) -> None:
    pb = workspace.playbook("v.yml", volume_playbook(2))
    assert workspace.invoke("bulk", str(pb)).returncode == 0
    assert workspace.invoke("queue", "cancel", "--device", "tv-1").returncode == 0
    compact = workspace.invoke("journal", "compact", "--keep", "0s", "--json")
    assert compact.returncode == 0, compact.stderr
    assert json.loads(compact.stdout)["archive_files"] == 1
    assert json.loads(workspace.invoke("history", "--json").stdout) == []
    hist = json.loads(workspace.invoke("history", "--archive", "--json").stdout)
    assert len(hist) == 2 and {h["device"] for h in hist} == {"tv-1"}
    assert all(h["state"] == "cancelled" for h in hist)
    verify = workspace.invoke("journal", "verify")
    assert verify.returncode == 0, verify.stderr
    assert "ok: archive " in verify.stdout and "1 file, 4 events, 0 damaged" in verify.stdout


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


def test_cancel_dry_run_previews_and_the_real_cancel_says_what_it_cancelled(
    workspace: Workspace,
) -> None:
    pb = workspace.playbook("v.yml", volume_playbook(2))
    assert workspace.invoke("bulk", str(pb)).returncode == 0
    rows = json.loads(workspace.invoke("queue", "ls", "--device", "tv-3", "--json").stdout)
    ids = [r["id"] for r in rows]
    # One line per entry: its id, device and command (the value's spelling is not the point).
    listed = [f"  {ids[0]}  tv-3  number.volume: 0", f"  {ids[1]}  tv-3  number.volume: 1"]

    def said(text: str) -> list[str]:
        return [re.sub(r"(volume: \d+)\.0$", r"\1", line) for line in text.splitlines()]

    dry = workspace.invoke("queue", "cancel", "--device", "tv-3", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert said(dry.stdout) == [
        "would cancel 2 entries (dry run: nothing changed):", *listed
    ]
    counts = json.loads(workspace.invoke("status", "--json").stdout)["counts"]
    assert counts == {"pending": 20}
    as_json = json.loads(
        workspace.invoke("queue", "cancel", "--device", "tv-3", "--dry-run", "--json").stdout
    )
    assert as_json == {"would_cancel": ids, "refused": [], "dry_run": True}

    real = workspace.invoke("queue", "cancel", "--device", "tv-3")
    assert real.returncode == 0, real.stderr
    assert said(real.stdout) == ["cancelled 2 entries:", *listed]
    counts = json.loads(workspace.invoke("status", "--json").stdout)["counts"]
    assert counts == {"pending": 18, "cancelled": 2}


def test_history_takes_a_limit_pattern_with_i_and_q_like_the_other_commands(
    workspace: Workspace,
) -> None:
    pb = workspace.playbook("v.yml", volume_playbook(1))
    assert workspace.invoke("bulk", str(pb)).returncode == 0
    for device in ("tv-3", "tv-4", "tv-5"):
        assert workspace.invoke("queue", "cancel", "--device", device).returncode == 0

    result = workspace.invoke(
        "history", "-i", str(workspace.inventory), "-l", "tv-3,tv-4", "-q", "--json"
    )
    assert result.returncode == 0, result.stderr
    assert sorted(r["device"] for r in json.loads(result.stdout)) == ["tv-3", "tv-4"]

    quiet = workspace.invoke("history", "-i", str(workspace.inventory), "-l", "tv-5", "-q")
    assert quiet.returncode == 0, quiet.stderr
    [row] = quiet.stdout.splitlines()  # the row alone, no header
    assert row.split()[2] == "tv-5" and "cancelled" in row

    none = workspace.invoke("history", "-l", "tv-9", "-q")
    assert (none.returncode, none.stdout, none.stderr) == (0, "", "")
    loud = workspace.invoke("history", "-l", "tv-9")
    assert loud.stdout == "no finished entries\n"

    bad = workspace.invoke("history", "-l", "nope")
    assert bad.returncode == 2 and "nope" in bad.stderr


def test_status_shows_direct_sends_as_one_row_and_each_still_by_id(workspace: Workspace) -> None:
    pb = workspace.playbook("v.yml", volume_playbook(1))
    batch = BATCH_RE.search(workspace.invoke("bulk", str(pb)).stdout)
    assert batch
    for device in ("tv-1", "tv-2", "tv-3"):
        sent = workspace.invoke("send", device, "number.volume", "5", "--queue")
        assert sent.returncode == 0, sent.stderr

    status = workspace.invoke("status")
    assert status.returncode == 0, status.stderr
    rows = [line.split() for line in status.stdout.splitlines()]
    assert [r[:3] for r in rows if r and r[0] in (batch.group(1), "(3")] == [
        [batch.group(1), "volumes", "bulk"],
        ["(3", "sends)", "-"],
    ]
    assert ["(3", "sends)", "-", "send", "0/3", "3", "0", "0", "0"] in rows

    data = json.loads(workspace.invoke("status", "--json").stdout)
    sends = [b["batch"] for b in data["batches"] if b["origin"] == "send"]
    assert len(data["batches"]) == 4 and len(sends) == 3  # JSON keeps every batch
    one = workspace.invoke("status", sends[0])
    assert one.returncode == 0, one.stderr
    assert sends[0] in one.stdout and "sends)" not in one.stdout
