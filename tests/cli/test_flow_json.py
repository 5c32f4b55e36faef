"""`queue ls --json` (a real `cmdctl` process) shows why an entry waits: its fleet keys."""

from __future__ import annotations

import json

from .helpers import Workspace

PLAYBOOK = """\
name: warm-up
targets: tvs
tags: rollout
steps:
  - name: power on
    switch.tv_power: on
    tags: power
  - name: volume
    number.volume: 20
    after: power on
"""


def test_queue_ls_json_shows_tags_and_after_of_a_playbooks_entries(workspace: Workspace) -> None:
    workspace.playbook("p.yml", PLAYBOOK)
    assert workspace.run("bulk", "p.yml").returncode == 0
    result = workspace.run("queue", "ls", "--device", "tv-1", "--json")
    assert result.returncode == 0, result.stderr
    rows = {row["step"]: row for row in json.loads(result.stdout)}
    assert {k: rows["power on"].get(k) for k in ("tags", "after")} == {
        "tags": ["rollout", "power"],
        "after": None,
    }
    assert {k: rows["volume"][k] for k in ("tags", "after", "on_failure")} == {
        "tags": ["rollout"],
        "after": "power on",
        "on_failure": "skip",
    }
    sent = workspace.run("send", "tv-1", "number.volume", "5", "--queue", "--json")
    assert sent.returncode == 0, sent.stderr
    plain = json.loads(workspace.run("queue", "ls", "--device", "tv-1", "--json").stdout)
    (row,) = [r for r in plain if r["id"] == json.loads(sent.stdout)["id"]]
    assert not {"tags", "after", "on_failure", "pick", "serial"} & set(row)
