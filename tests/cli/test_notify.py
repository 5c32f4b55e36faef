"""`drain` / `run` `--notify CMD` against the simulator, with real hook processes.

The hook used here dumps what it got (stdin, environment, argv) into a directory of its own per
call, so the tests read exactly what a user's script would see.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.cli.helpers import RunningFleet, Workspace, assert_clean, three_tvs

GOOD = "name: volumes\ntargets: tvs\nsteps:\n  - number.volume: {n}\n"
BAD = GOOD + "  - name: bad input\n    select.input: HDMI 9\n"


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[tuple[RunningFleet, Workspace]]:
    """Three encrypted venue TVs and a workspace pointing at them."""
    with three_tvs(tmp_path) as running:
        yield running


def dump_hook(out: Path) -> str:
    """A hook that keeps its stdin, environment and argv in a new directory under `out`.

    The directory is filled under another name and renamed to `ev.*` when complete, so a test
    polling `calls` never reads a hook that is still writing."""
    out.mkdir(exist_ok=True)
    return (
        f'd=$(mktemp -d "{out}/tmp.XXXXXX") && cat > "$d/stdin" && env > "$d/env" '
        '&& tr "\\000" " " < /proc/$$/cmdline > "$d/argv" '
        f'&& mv "$d" "{out}/ev.${{d##*.}}"'
    )


def calls(out: Path) -> list[dict[str, Any]]:
    """The hook calls, in the order of their events: body, env and argv of each."""
    found = []
    for d in out.glob("ev.*"):
        env = dict(
            line.split("=", 1) for line in (d / "env").read_text().splitlines() if "=" in line
        )
        raw = (d / "stdin").read_text()
        found.append({"body": json.loads(raw), "raw": raw, "env": env, "argv": (d / "argv")})
    found.sort(key=lambda c: c["body"]["at"])
    return found


def queue(ws: Workspace, text: str) -> str:
    """Queue a playbook; its batch id."""
    pb = ws.playbook("pb.yml", text)
    result = ws.invoke("bulk", str(pb), "--json")
    assert_clean(result, 0)
    batch: str = json.loads(result.stdout)["batch"]
    return batch


def entries(ws: Workspace, batch: str) -> list[tuple[str, str, str, str | None, int]]:
    """What the journal says of a batch's entries (without ids and times)."""
    result = ws.invoke("queue", "ls", "--batch", batch, "--state", "failed", "--json")
    rows = json.loads(result.stdout)
    result = ws.invoke("queue", "ls", "--batch", batch, "--state", "done", "--json")
    rows += json.loads(result.stdout)
    items = rows if isinstance(rows, list) else rows["entries"]
    return sorted(
        (e["device"], e["selector"], e["state"], e["outcome"], e["attempts"]) for e in items
    )


def keys(fleet: RunningFleet) -> list[str]:
    return [d.spec.psk for d in fleet.fleet.devices if d.spec.psk]


def test_a_bulk_batch_runs_the_hook_once_with_its_json_and_env(
    sim: tuple[RunningFleet, Workspace],
) -> None:
    _, ws = sim
    out = ws.root / "hook"
    batch = queue(ws, GOOD.format(n=7))
    result = ws.run("drain", "--json", "--notify", dump_hook(out))
    assert_clean(result, 0)
    [call] = calls(out)
    body, env = call["body"], call["env"]
    assert body["event"] == "batch" and body["batch"] == batch
    assert body["playbook"] == "volumes" and body["origin"] == "bulk"
    assert body["outcome"] == "ok" and body["total"] == 3 and body["failures"] == []
    assert body["counts"]["confirmed"] == 3
    assert sum(body["counts"].values()) == 3
    assert body["summary"] == "3 commands: 3 confirmed"
    assert body["run"]["id"] and body["run"]["started"] <= body["first"] <= body["at"]
    assert abs(body["at"] - time.time()) < 60
    assert env["CMDCTL_EVENT"] == "batch" and env["CMDCTL_BATCH"] == batch
    assert env["CMDCTL_PLAYBOOK"] == "volumes" and env["CMDCTL_OUTCOME"] == "ok"
    assert env["CMDCTL_COUNT"] == "3" and env["CMDCTL_RUN"] == body["run"]["id"]
    assert env["CMDCTL_SUMMARY"] == f"batch {batch} (volumes): 3 commands: 3 confirmed"
    assert "CMDCTL_DEVICE" not in env
    assert "--notify" not in result.stderr  # nothing went wrong, nothing said


def test_a_failure_runs_the_hook_per_failed_entry_and_keys_never_reach_it(
    sim: tuple[RunningFleet, Workspace],
) -> None:
    fleet, ws = sim
    out = ws.root / "hook"
    batch = queue(ws, BAD.format(n=8))
    result = ws.run("drain", "--notify", dump_hook(out))
    assert_clean(result, 1)
    got = calls(out)
    failures = [c for c in got if c["body"]["event"] == "failure"]
    batches = [c for c in got if c["body"]["event"] == "batch"]
    assert len(failures) == 3 and len(batches) == 1
    assert got[-1]["body"]["event"] == "batch"  # sent once the drain is through
    for c in failures:
        body, env = c["body"], c["env"]
        assert body["batch"] == batch and body["command"] == "select.input"
        assert body["outcome"] == "failed" and "HDMI 9" in body["error"]
        assert env["CMDCTL_EVENT"] == "failure" and env["CMDCTL_OUTCOME"] == "failed"
        assert env["CMDCTL_DEVICE"] == body["device"] and env["CMDCTL_ENTRY"] == body["entry"]
    assert sorted(c["body"]["device"] for c in failures) == ["bar-tv-1", "bar-tv-2", "bar-tv-3"]
    body = batches[0]["body"]
    assert body["outcome"] == "failed" and body["total"] == 6
    assert (body["counts"]["confirmed"], body["counts"]["failed"]) == (3, 3)
    assert {f["device"] for f in body["failures"]} == {"bar-tv-1", "bar-tv-2", "bar-tv-3"}
    secrets = keys(fleet)
    assert len(secrets) == 3
    for c in got:
        seen = c["raw"] + "\n".join(f"{k}={v}" for k, v in c["env"].items())
        seen += c["argv"].read_text()
        for key in secrets:
            assert key not in seen
    assert c["argv"].read_text().startswith("/bin/sh -c ")


def _comparable(result: Any) -> tuple[int, dict[str, Any]]:
    totals = json.loads(result.stdout)
    for name in ("seconds",):
        totals.pop(name, None)
    for device in totals.get("devices", []):
        device.pop("seconds", None)
    return result.returncode, totals


@pytest.mark.parametrize(
    ("hook", "says"),
    [
        ("echo oops >&2; exit 1", "failed: exited 1: oops"),
        ("sleep 30", "timed out after 0.5s and was killed"),
        ("/nonexistent/notify-me", "failed: exited 127:"),
    ],
)
def test_a_failing_hook_is_one_stderr_line_and_changes_nothing(
    sim: tuple[RunningFleet, Workspace], hook: str, says: str
) -> None:
    _, ws = sim
    baseline_batch = queue(ws, BAD.format(n=9))
    baseline = ws.run("drain", "--json")
    assert baseline.returncode == 1
    expected = entries(ws, baseline_batch)
    assert len(expected) == 6 and {e[2] for e in expected} == {"done", "failed"}

    shutil.rmtree(ws.journal / "entities")  # else bulk refuses HDMI 9 up front, as it should
    batch = queue(ws, BAD.format(n=11))
    began = time.monotonic()
    result = ws.run("drain", "--json", "--notify", hook, "--notify-timeout", "500ms")
    assert time.monotonic() - began < 25  # 4 hooks × 0.5 s at most, not 4 × 30 s
    assert_clean(result, 1)
    assert _comparable(result) == _comparable(baseline)
    assert entries(ws, batch) == expected
    lines = [ln for ln in result.stderr.splitlines() if "--notify" in ln]
    # Three failure events and the batch event: one line each, and only one.
    assert len(lines) == 4, result.stderr
    assert sum(f"--notify hook for batch {batch} " in ln for ln in lines) == 1
    assert all(ln.startswith("warning: --notify hook for ") and says in ln for ln in lines)


def test_run_calls_the_hook_as_batches_finish(sim: tuple[RunningFleet, Workspace]) -> None:
    _, ws = sim
    out = ws.root / "hook"
    proc = ws.popen("run", "--quiet", "--notify", dump_hook(out))
    try:
        seen: list[dict[str, Any]] = []
        for n in (3, 4):
            batch = queue(ws, GOOD.format(n=n))
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                seen = [c for c in calls(out) if c["body"]["batch"] == batch]
                if seen:
                    break
                time.sleep(0.05)
            assert len(seen) == 1, "no batch event while run was running"
            assert seen[0]["body"]["counts"]["confirmed"] == 3
            assert proc.poll() is None  # told as the batch finished, not at the end
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0
    assert len(calls(out)) == 2  # nothing more at the end
    assert len({c["body"]["run"]["id"] for c in calls(out)}) == 1


def test_bad_notify_options_are_input_errors_before_any_work(workspace: Workspace) -> None:
    queue(workspace, "name: v\ntargets: tvs\nsteps:\n  - number.volume: 5\n")
    result = workspace.invoke("drain", "--notify", "true", "--notify-timeout", "0s")
    assert result.returncode == 2
    assert "--notify-timeout: must be more than zero" in result.stderr
    result = workspace.invoke("drain", "--notify", "  ")
    assert result.returncode == 2
    assert "--notify: empty command" in result.stderr
    status = json.loads(workspace.invoke("status", "--json").stdout)
    assert status["counts"]["pending"] == 10


def test_a_key_taken_from_the_environment_is_not_handed_to_the_hook(
    sim: tuple[RunningFleet, Workspace],
) -> None:
    """An inventory may say `key: ${BAR_KEY}`: the hook inherits cmdctl's environment, less any
    variable holding a device key."""
    fleet, ws = sim
    key = keys(fleet)[0]
    text = fleet.inventory.read_text()
    assert "key: !secret bar_tv_1_key" in text
    fleet.inventory.write_text(text.replace("key: !secret bar_tv_1_key", "key: ${BAR_KEY}"))
    ws.env["BAR_KEY"] = key
    ws.env["CMDCTL_TEST_PLAIN"] = "kept"
    out = ws.root / "hook"
    queue(ws, GOOD.format(n=9))
    assert_clean(ws.run("drain", "--notify", dump_hook(out)), 0)
    got = calls(out)
    assert got and all(c["env"].get("CMDCTL_TEST_PLAIN") == "kept" for c in got)
    for c in got:
        assert "BAR_KEY" not in c["env"]
        assert key not in c["raw"] + "\n".join(f"{k}={v}" for k, v in c["env"].items())
