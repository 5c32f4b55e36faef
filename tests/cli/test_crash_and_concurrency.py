"""Real processes: `kill -9` of `cmdctl bulk` at random moments, and 8 concurrent writers; a
torn or garbage line (what a crash leaves) read back in-process.

After any number of kills the journal verifies, every batch is wholly present or wholly absent,
and nothing else changed; concurrent writers never interleave or lose a line.
"""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.cli.helpers import Workspace, volume_playbook, write_inventory

BATCH_RE = re.compile(r"queued batch ([0-9A-Z]{26})")


def batches_in_journal(workspace: Workspace) -> Counter[str]:
    """Entries per batch, as `status --json` sees them."""
    data = json.loads(workspace.run("status", "--json").stdout or "{}")
    return Counter({b["batch"]: b["total"] for b in data.get("batches", [])})


@pytest.mark.timeout(240)
def test_kill_9_during_bulk_loses_nothing_accepted_and_tears_nothing(
    workspace: Workspace,
) -> None:
    write_inventory(workspace.root, 100)
    per_batch = 100 * 40  # devices × steps
    pb = workspace.playbook("big.yml", volume_playbook(40))
    rng = random.Random(20261123)
    accepted: set[str] = set()
    # One uninterrupted run sets the window: kills land anywhere in a bulk's lifetime, whatever
    # the machine's speed (a fixed window let a fast machine finish before most kills).
    start = time.perf_counter()
    first = workspace.run("bulk", str(pb))
    lifetime = time.perf_counter() - start
    assert first.returncode == 0, first.stderr
    accepted.add(BATCH_RE.search(first.stdout).group(1))  # type: ignore[union-attr]
    kills = 0
    for _ in range(14):
        proc = workspace.popen("bulk", str(pb))
        time.sleep(rng.uniform(0.02, lifetime * 0.95))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        out, _err = proc.communicate(timeout=30)
        match = BATCH_RE.search(out)
        if match:  # it said "queued": the batch must be there, whole
            accepted.add(match.group(1))
    assert kills >= 5, "the kills should mostly land while bulk is running"

    verify = workspace.run("journal", "verify", "--json")
    report = json.loads(verify.stdout)
    assert verify.returncode == 0, verify.stdout
    assert report["damaged"] == [] and report["problems"] == []

    present = batches_in_journal(workspace)
    assert accepted <= set(present), "a batch reported as queued is missing"
    assert all(n == per_batch for n in present.values()), present  # wholly present or absent

    # The next bulk repairs any torn tail (quarantine) and lands intact.
    result = workspace.run("bulk", str(pb))
    assert result.returncode == 0, result.stderr
    match = BATCH_RE.search(result.stdout)
    assert match
    after = batches_in_journal(workspace)
    assert after[match.group(1)] == per_batch
    assert {b: n for b, n in after.items() if b != match.group(1)} == dict(present)
    assert workspace.run("journal", "verify").returncode == 0


def test_torn_last_line_is_quarantined_and_next_bulk_lands(workspace: Workspace) -> None:
    pb = workspace.playbook("v.yml", volume_playbook(2))
    assert workspace.invoke("bulk", str(pb)).returncode == 0
    path = workspace.journal / "journal.jsonl"
    with path.open("ab") as f:
        f.write(b'{"t":"queued","id":"01KZZZZZZZZZZZZZZZZZZZZZZZ","ts":17')  # a torn write
    status = workspace.invoke("status", "--json")
    assert json.loads(status.stdout)["counts"] == {"pending": 20}  # readers don't see it

    result = workspace.invoke("bulk", str(pb))
    assert result.returncode == 0, result.stderr
    assert "quarantine" in result.stderr  # reported
    assert json.loads(workspace.invoke("status", "--json").stdout)["counts"] == {"pending": 40}
    assert workspace.invoke("journal", "verify").returncode == 0
    quarantined = list((workspace.journal / "quarantine").iterdir())
    assert len(quarantined) == 1
    assert quarantined[0].read_bytes().endswith(b'"ts":17')
    assert quarantined[0].stat().st_mode & 0o777 == 0o600


def test_garbage_line_in_the_middle_is_reported_and_skipped(workspace: Workspace) -> None:
    pb = workspace.playbook("v.yml", volume_playbook(1))
    assert workspace.invoke("bulk", str(pb)).returncode == 0
    path = workspace.journal / "journal.jsonl"
    with path.open("ab") as f:
        f.write(b"this is not json at all\n")
    assert workspace.invoke("bulk", str(pb)).returncode == 0
    verify = workspace.invoke("journal", "verify")
    assert verify.returncode == 3
    assert ":11: damaged line" in verify.stderr
    data = json.loads(workspace.invoke("status", "--json").stdout)
    assert data["counts"] == {"pending": 20}  # both batches intact, the garbage skipped
    assert data["damaged_lines"] == 1


@pytest.mark.timeout(180)
def test_eight_writers_and_a_reader(workspace: Workspace, tmp_path: Path) -> None:
    write_inventory(workspace.root, 100)
    pb = workspace.playbook("k.yml", volume_playbook(10))  # 100 devices × 10 = 1,000 commands
    reader = subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("status_reader.py")), "8000", "1000"],
        env=workspace.env,
        cwd=workspace.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    writers = [workspace.popen("bulk", str(pb)) for _ in range(8)]
    batches = []
    for w in writers:
        out, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
        match = BATCH_RE.search(out)
        assert match
        batches.append(match.group(1))
    out, err = reader.communicate(timeout=150)
    assert reader.returncode == 0, out + err
    reads, last_total = (int(x) for x in out.split())
    assert reads >= 1 and last_total == 8000

    ids = [
        row["id"]
        for row in json.loads(workspace.run("queue", "ls", "--last", "100000", "--json").stdout)
    ]
    assert len(ids) == 8000 and len(set(ids)) == 8000
    assert batches_in_journal(workspace) == Counter({b: 1000 for b in batches})
    lines = (workspace.journal / "journal.jsonl").read_bytes().split(b"\n")
    assert lines[-1] == b""
    assert all(line.startswith(b'{"t":') and line.endswith(b'"}') for line in lines[:-1])
    assert workspace.run("journal", "verify").returncode == 0
