"""Every command's failure path: the documented exit code and one clear line, no traceback."""

from __future__ import annotations

import json
import os

import pytest

from tests.cli.helpers import Result, Workspace, volume_playbook


def assert_clean_failure(result: Result, code: int, *needles: str) -> None:
    """Exit `code`, the message contains every needle, and no traceback leaked."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr + result.stdout
    for needle in needles:
        assert needle in result.stderr, (needle, result.stderr)


def test_validate_names_file_line_and_column(workspace: Workspace) -> None:
    pb = workspace.playbook("bad.yml", "name: x\ntargets: tvs\nsteps:\n  - numbr.volume: 3\n")
    result = workspace.invoke("validate", str(pb))
    assert_clean_failure(result, 2, "bad.yml:4:")
    assert len(result.stderr.strip().splitlines()) == 1


def test_validate_ok(workspace: Workspace) -> None:
    pb = workspace.playbook("ok.yml", volume_playbook(2))
    result = workspace.invoke("validate", str(pb))
    assert result.returncode == 0, result.stderr
    assert "20 commands (2 steps over 10 devices): 0 immediate, 20 queued" in result.stdout


def test_bulk_bad_playbook_leaves_the_journal_untouched(workspace: Workspace) -> None:
    good = workspace.playbook("ok.yml", volume_playbook(1))
    assert workspace.invoke("bulk", str(good)).returncode == 0
    before = (workspace.journal / "journal.jsonl").read_bytes()
    bad = workspace.playbook("bad.yml", volume_playbook(1, targets="nothing-matches-*"))
    result = workspace.invoke("bulk", str(bad))
    assert_clean_failure(result, 2, "bad.yml:", "nothing-matches-*")
    assert (workspace.journal / "journal.jsonl").read_bytes() == before


def test_missing_inventory(workspace: Workspace) -> None:
    pb = workspace.playbook("ok.yml", volume_playbook(1))
    result = workspace.invoke(
        "bulk", str(pb), extra_env={"CMDCTL_INVENTORY": "/nonexistent/devices.yml"}
    )
    assert_clean_failure(result, 2, "/nonexistent/devices.yml")


def test_missing_playbook(workspace: Workspace) -> None:
    result = workspace.invoke("bulk", "nope.yml")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


def test_unmatched_limit(workspace: Workspace) -> None:
    pb = workspace.playbook("ok.yml", volume_playbook(1))
    result = workspace.invoke("bulk", str(pb), "--limit", "patio")
    assert_clean_failure(result, 2, "patio")


def test_bad_priority(workspace: Workspace) -> None:
    pb = workspace.playbook("ok.yml", volume_playbook(1))
    result = workspace.invoke("bulk", str(pb), "--priority", "urgent")
    assert_clean_failure(result, 2, "unknown priority 'urgent'", "high, normal, low")


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_unwritable_journal_is_not_accepted(workspace: Workspace) -> None:
    workspace.journal.mkdir(mode=0o500)
    pb = workspace.playbook("ok.yml", volume_playbook(1))
    result = workspace.invoke("bulk", str(pb))
    assert_clean_failure(result, 3)
    assert "queued batch" not in result.stdout


def test_journal_on_a_file_is_not_accepted(workspace: Workspace) -> None:
    # Works as root too: a journal "directory" that is a regular file cannot be written.
    workspace.journal.write_text("not a directory")
    pb = workspace.playbook("ok.yml", volume_playbook(1))
    result = workspace.invoke("bulk", str(pb))
    assert_clean_failure(result, 3, "journal")
    assert "queued batch" not in result.stdout


def test_status_reports_damage_with_exit_3(workspace: Workspace) -> None:
    pb = workspace.playbook("ok.yml", volume_playbook(2))
    assert workspace.invoke("bulk", str(pb)).returncode == 0
    assert workspace.invoke("bulk", str(pb)).returncode == 0
    path = workspace.journal / "journal.jsonl"
    lines = path.read_bytes().split(b"\n")
    lines[5] = b'{"t":"garbage' + lines[5][13:40]
    path.write_bytes(b"\n".join(lines))
    status = workspace.invoke("status")
    assert status.returncode == 3
    assert "damaged journal lines" in status.stderr
    verify = workspace.invoke("journal", "verify")
    assert_clean_failure(verify, 3, ":6: damaged line")


def test_verify_names_each_problem_and_exits_3(workspace: Workspace) -> None:
    from cmdctl.journal import events as ev
    from cmdctl.journal.framing import frame

    pb = workspace.playbook("v.yml", volume_playbook(1))
    assert workspace.invoke("bulk", str(pb)).returncode == 0
    path = workspace.journal / "journal.jsonl"
    first = ev.decode(path.read_bytes().split(b"\n")[0])
    with path.open("ab") as f:
        f.write(frame([ev.encode(ev.done("NOSUCH", 1.0, outcome="confirmed", duration=0.1))]))
        f.write(frame([ev.encode(ev.Event(ev.REPRIORITISED, first.id, 2.0, {"priority": "x"}))]))
    verify = workspace.invoke("journal", "verify")
    assert_clean_failure(
        verify,
        3,
        f"{path}: done NOSUCH: event for an unknown id",
        f"{path}: entry {first.id}: 'x' is not a valid Priority",
    )
    assert verify.stdout.startswith(f"CORRUPT: {path}: 12 events, 10 entries, 0 damaged lines, 2 ")
    report = workspace.invoke("journal", "verify", "--json")
    assert report.returncode == 3
    assert json.loads(report.stdout)["problems"] == [
        "done NOSUCH: event for an unknown id",
        f"entry {first.id}: 'x' is not a valid Priority",
    ]


def test_queue_show_unknown_id(workspace: Workspace) -> None:
    result = workspace.invoke("queue", "show", "01ZZZZ")
    assert_clean_failure(result, 2, "no entry with id '01ZZZZ'")


def test_queue_cancel_needs_a_target(workspace: Workspace) -> None:
    result = workspace.invoke("queue", "cancel")
    assert_clean_failure(result, 2, "give one ID, or --batch B, or --device D")


def test_queue_retry_nothing_failed(workspace: Workspace) -> None:
    result = workspace.invoke("queue", "retry", "--failed")
    assert_clean_failure(result, 2, "no failed entries")


def test_queue_priority_bad_level(workspace: Workspace) -> None:
    result = workspace.invoke("queue", "priority", "01ABC", "asap")
    assert_clean_failure(result, 2, "unknown priority 'asap'")


def test_queue_ls_bad_state(workspace: Workspace) -> None:
    result = workspace.invoke("queue", "ls", "--state", "sleeping")
    assert_clean_failure(result, 2, "unknown state 'sleeping'")


def test_history_bad_since(workspace: Workspace) -> None:
    result = workspace.invoke("history", "--since", "yesterday-ish")
    assert_clean_failure(result, 2, "yesterday-ish")


def test_status_unknown_batch(workspace: Workspace) -> None:
    result = workspace.invoke("status", "01NOPE")
    assert_clean_failure(result, 2, "no batch '01NOPE'")


def test_compact_bad_keep(workspace: Workspace) -> None:
    result = workspace.invoke("journal", "compact", "--keep", "forever")
    assert_clean_failure(result, 2, "forever")


def test_compact_bad_archive_keep(workspace: Workspace) -> None:
    result = workspace.invoke("journal", "compact", "--archive-keep", "3 weeks")
    assert_clean_failure(result, 2, "bad duration '3 weeks'")


def test_simulate_bad_count(workspace: Workspace) -> None:
    result = workspace.invoke("simulate", "--count", "0")
    assert_clean_failure(result, 2, "--count must be between 1 and 10000")


def test_unknown_command_is_a_usage_error(workspace: Workspace) -> None:
    result = workspace.invoke("frobnicate")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--window", "0"], "--window must be at least 1, got 0"),
        (["--max-fail", "lots"], "--max-fail must be N or N% (1-100%), got 'lots'"),
        (["--max-fail", "150%"], "--max-fail must be N or N% (1-100%), got '150%'"),
        (["--tags", ","], "no tags in ','"),
    ],
)
def test_drain_rollout_options_are_checked(
    workspace: Workspace, args: list[str], needle: str
) -> None:
    result = workspace.invoke("drain", *args)
    assert_clean_failure(result, 2, needle)
    assert not (workspace.journal / "journal.jsonl").exists()


def test_bulk_unknown_tag(workspace: Workspace) -> None:
    pb = workspace.playbook("ok.yml", volume_playbook(1))
    result = workspace.invoke("bulk", str(pb), "--tags", "nightly")
    assert_clean_failure(result, 2, "nightly")
    assert not (workspace.journal / "journal.jsonl").exists()
