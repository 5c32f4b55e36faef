"""Far-future times: refused at input, and whatever the journal holds, listing never breaks."""

from __future__ import annotations

import json

import pytest

from cmdctl.journal.framing import frame
from tests.cli.helpers import Workspace, volume_playbook


@pytest.mark.parametrize(
    ("at", "needle"),
    [
        ("+3000000d", "relative time '+3000000d': duration '3000000d' is longer than 100 years"),
        ("+36526d", "duration '36526d' is longer than 100 years"),
        ("10000-01-01", "bad time '10000-01-01'"),
        ("9999-12-31T23:59:59-14:00", "is out of range: it must fall between 1970 and the end of"),
    ],
)
def test_bulk_refuses_a_time_beyond_what_can_be_shown(
    workspace: Workspace, at: str, needle: str
) -> None:
    """Issue 13, item 6: `--at +3000000d` was accepted; then every listing exited 70."""
    pb = workspace.playbook("ok.yml", volume_playbook(1))
    result = workspace.invoke("bulk", str(pb), "--at", at)
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert needle in line
    assert "(hint: " in line
    assert not (workspace.journal / "journal.jsonl").exists()


def test_a_playbook_expiry_beyond_9999_is_refused_with_its_location(workspace: Workspace) -> None:
    text = volume_playbook(1) + 'at: "9999-12-01T00:00:00Z"\nexpires: "+100d"\n'
    pb = workspace.playbook("far.yml", text)
    result = workspace.invoke("bulk", str(pb))
    assert result.returncode == 2, result
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"cmdctl: {pb}:")
    assert "is out of range" in line


#: What a journal written by hand or by an older version may hold where a time should be.
ODD_TIMES = [1e300, -1e300, float("nan"), -5.0, 1e12]


def _hand_written_journal(workspace: Workspace) -> list[str]:
    """Queue two commands, then rewrite the journal with odd times in every time field."""
    pb = workspace.playbook("ok.yml", volume_playbook(1, targets="tv-1,tv-2"))
    assert workspace.invoke("bulk", str(pb), "--at", "+1h").returncode == 0
    path = workspace.journal / "journal.jsonl"
    records = [json.loads(line) for line in path.read_text().splitlines()]
    lines, ids = [], []
    for n, odd in enumerate(ODD_TIMES):
        for record in records:
            record = {k: v for k, v in record.items() if k not in ("m", "c")}
            record["id"] = f"{record['id'][:-2]}{n}{record['device'][-1]}"
            for key in ("ts", "created", "not_before", "expires"):
                record[key] = odd
            lines.append(json.dumps(record))
            ids.append(record["id"])
        finished = {"t": "done", "id": ids[-1], "ts": odd, "v": 1, "outcome": "confirmed"}
        lines.append(json.dumps({**finished, "duration": odd}))
    for name in ("journal.snapshot", "journal.delta"):
        (workspace.journal / name).unlink(missing_ok=True)
    path.write_bytes(frame(lines))
    return ids


def test_no_listing_breaks_on_any_time_a_journal_may_hold(workspace: Workspace) -> None:
    ids = _hand_written_journal(workspace)
    for args in (
        ["queue", "ls"],
        ["queue", "ls", "--json"],
        ["status"],
        ["history"],
        *(["queue", "show", entry_id] for entry_id in ids),
    ):
        result = workspace.invoke(*args)
        assert result.returncode == 0, (args, result)
        assert "Traceback" not in result.stderr
        assert "internal error" not in result.stderr
    shown = workspace.invoke("queue", "show", ids[0]).stdout
    assert "not_before: after year 9999" in shown
    assert "not_before: ?" in workspace.invoke("queue", "show", ids[4]).stdout
