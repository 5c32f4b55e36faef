"""`cmdctl events [--follow]` as real processes: the feed while others append, compact, signal."""

from __future__ import annotations

import json
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from cmdctl.journal import archive
from cmdctl.journal.store import Journal
from tests.cli.helpers import (
    RunningFleet,
    Workspace,
    assert_clean,
    three_tvs,
    volume_playbook,
)

PLAYBOOK = """\
name: evening
targets: tvs
steps:
  - name: power
    switch.tv_power: on
  - name: bad input
    select.input: HDMI 9
"""


class Lines:
    """A follower's stdout, read by a thread: `take(n)` waits (bounded) for n more lines."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.queue: queue.Queue[str] = queue.Queue()
        assert proc.stdout is not None
        stdout = proc.stdout
        threading.Thread(target=lambda: [self.queue.put(x) for x in stdout], daemon=True).start()

    def take(self, n: int, timeout: float = 15) -> list[str]:
        end = time.monotonic() + timeout
        out = []
        while len(out) < n:
            try:
                out.append(self.queue.get(timeout=max(0.01, end - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f"only {len(out)} of {n} lines: {out}") from None
        return out

    def nothing_more(self, wait: float = 0.6) -> None:
        time.sleep(wait)
        assert self.queue.empty(), self.queue.get()

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=10)
        assert self.proc.stderr is not None
        return code, self.proc.stderr.read()


@pytest.fixture
def follower(workspace: Workspace) -> Iterator[list[Lines]]:
    started: list[Lines] = []
    yield started
    for lines in started:
        if lines.proc.poll() is None:
            lines.proc.kill()
            lines.proc.wait()


def _follow(ws: Workspace, started: list[Lines], *args: str) -> Lines:
    lines = Lines(ws.popen("events", "--follow", "--json", *args))
    started.append(lines)
    time.sleep(0.8)  # let it start reading (python start-up) before others append
    return lines


def _bulk(ws: Workspace, steps: int = 2) -> None:
    pb = ws.playbook("pb.yml", volume_playbook(steps))
    assert_clean(ws.run("bulk", str(pb)), 0)


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[tuple[RunningFleet, Workspace]]:
    """Three encrypted venue TVs and a workspace pointing at them."""
    with three_tvs(tmp_path) as running:
        yield running


def test_events_of_a_bulk_and_drain_in_order_with_their_fields(
    sim: tuple[RunningFleet, Workspace],
) -> None:
    _fleet, ws = sim
    assert_clean(ws.run("bulk", str(ws.playbook("pb.yml", PLAYBOOK))), 0)
    ws.run("drain", "--quiet")  # `HDMI 9` is rejected: exit 1, failures are data here
    result = ws.run("events", "--json")
    assert_clean(result, 0)
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    by_entry: dict[str, list[dict[str, object]]] = {}
    for row in rows:
        by_entry.setdefault(str(row["id"]), []).append(row)
    assert len(by_entry) == 6
    for events in by_entry.values():
        types = [e["type"] for e in events]
        assert types[0] == "queued" and types[1] == "started", types
        assert types[-1] in ("done", "failed"), types
        times = [float(str(e["ts"])) for e in events]
        assert times == sorted(times)
        first = events[0]
        assert all(
            (e["batch"], e["device"], e["selector"])
            == (first["batch"], first["device"], first["selector"])
            for e in events
        )
        if first["selector"] == "select.input":
            assert types[-1] == "failed" and "HDMI 9" in str(events[-1]["error"])
        else:
            assert types[-1] == "done" and events[-1]["outcome"] in ("confirmed", "delivered")
    text = ws.run("events", "--device", "bar-tv-2")
    assert_clean(text, 0)
    lines = text.stdout.splitlines()
    assert lines and all("  bar-tv-2  " in line for line in lines)
    assert any(" switch.tv_power: on  " in line and "  queued  " in line for line in lines)
    failed = [line for line in lines if "  failed  " in line]
    assert len(failed) == 1 and "select.input: HDMI 9" in failed[0] and "HDMI 9" in failed[0]


def test_follow_prints_what_another_process_appends(
    workspace: Workspace, follower: list[Lines]
) -> None:
    lines = _follow(workspace, follower)
    lines.nothing_more(0.2)
    _bulk(workspace)  # 2 steps × 10 devices
    got = [json.loads(x) for x in lines.take(20)]
    assert {g["type"] for g in got} == {"queued"}
    assert sorted(g["device"] for g in got) == sorted([f"tv-{i}" for i in range(1, 11)] * 2)
    sent = workspace.run("send", "--queue", "tv-3", "number.volume", "7")
    assert_clean(sent, 0)
    (one,) = [json.loads(x) for x in lines.take(1)]
    assert (one["type"], one["device"], one["selector"]) == ("queued", "tv-3", "number.volume")
    lines.nothing_more()
    code, err = lines.stop()
    assert code == 0 and "Traceback" not in err


def test_a_compaction_while_following_loses_and_repeats_nothing(
    workspace: Workspace, follower: list[Lines]
) -> None:
    ws = workspace
    _bulk(ws, 1)
    lines = _follow(ws, follower)
    first = lines.take(10)
    assert_clean(ws.run("queue", "cancel", "--device", "tv-1"), 0)
    inode = (ws.journal / "journal.jsonl").stat().st_ino
    compacted = ws.run("journal", "compact", "--keep", "0s")
    assert_clean(compacted, 0)
    assert (ws.journal / "journal.jsonl").stat().st_ino != inode
    _bulk(ws, 1)
    rest = lines.take(11)  # the cancel, then 10 new queued
    lines.nothing_more()
    seen = [json.loads(x) for x in first + rest]
    keys = [(s["type"], s["id"], s["ts"]) for s in seen]
    assert len(set(keys)) == len(keys) == 21
    archived = archive.read_all(ws.journal)[0]
    assert len(archived) == 2  # the cancelled entry: queued and cancelled
    everything = [json.loads(x) for x in ws.run("events", "--json").stdout.splitlines()]
    everything += [json.loads(x) for x in archived]
    assert sorted(keys) == sorted((e.get("type", e.get("t")), e["id"], e["ts"]) for e in everything)
    assert lines.stop()[0] == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_ends_follow_with_exit_0_and_no_traceback(
    workspace: Workspace, follower: list[Lines], sig: int
) -> None:
    _bulk(workspace, 1)
    lines = _follow(workspace, follower)
    lines.take(10)
    started = time.monotonic()
    code, err = lines.stop(sig)
    assert code == 0, err
    assert err == ""
    assert time.monotonic() - started < 3


def test_a_closed_pipe_ends_follow_quickly(workspace: Workspace) -> None:
    _bulk(workspace, 1)
    cmd = f"{sys.executable} -m cmdctl events --follow | head -3; echo ${{PIPESTATUS[0]}} >&2"
    started = time.monotonic()
    proc = subprocess.run(
        ["bash", "-c", cmd],
        cwd=workspace.root,
        env=workspace.env,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert time.monotonic() - started < 10
    assert len(proc.stdout.splitlines()) == 3
    assert proc.stderr.strip() == "0", proc.stderr  # nothing said, exit 0


def test_filters_batch_prefix_device_and_since(workspace: Workspace) -> None:
    ws = workspace
    _bulk(ws, 1)
    _bulk(ws, 1)
    journal = Journal(ws.journal)
    batches = list(journal.ledger().batches())
    assert len(batches) == 2
    # An event from two hours ago, appended as another cmdctl would have then.
    old = next(e for e in journal.events() if e.type == "queued")
    journal.append([replace(old, id=old.id[:-1] + "Z", ts=old.ts - 7200)])
    everything = ws.run("events", "--json").stdout.splitlines()
    assert len(everything) == 21
    recent = ws.run("events", "--json", "--since", "1h").stdout.splitlines()
    assert len(recent) == 20
    assert len(ws.run("events", "--json", "--since", "3h").stdout.splitlines()) == 21
    prefix = batches[1][:-4]
    assert not batches[0].startswith(prefix)
    one = [json.loads(x) for x in ws.run("events", "--json", "--batch", prefix).stdout.splitlines()]
    assert len(one) == 10 and {o["batch"] for o in one} == {batches[1]}
    tv = [json.loads(x) for x in ws.run("events", "--json", "--device", "tv-4").stdout.splitlines()]
    assert len(tv) == 2 and {t["device"] for t in tv} == {"tv-4"}


def test_json_lines_have_the_entry_and_the_event_fields(workspace: Workspace) -> None:
    _bulk(workspace, 1)
    assert_clean(workspace.run("queue", "cancel", "--device", "tv-2"), 0)
    rows = [json.loads(x) for x in workspace.run("events", "--json").stdout.splitlines()]
    cancel = next(r for r in rows if r["type"] == "cancelled")
    assert list(cancel)[:6] == ["id", "batch", "device", "selector", "type", "ts"]
    assert cancel["device"] == "tv-2" and cancel["selector"] == "number.volume"
    assert "who" in cancel
    queued = rows[0]
    assert queued["command"] == {"domain": "number", "target": "volume", "args": {"value": 0.0}}
    assert not any("key" in r for r in rows)


def test_bad_input_is_one_line_and_exit_2(workspace: Workspace) -> None:
    _bulk(workspace, 1)
    bad = workspace.run("events", "--since", "soon")
    assert_clean(bad, 2)
    assert bad.stderr.startswith("cmdctl: bad duration 'soon'") and bad.stdout == ""
    none = workspace.run("events", "--batch", "NOPE")
    assert_clean(none, 2)
    assert "no batch 'NOPE'" in none.stderr


def test_an_empty_journal_prints_nothing(workspace: Workspace) -> None:
    result = workspace.run("events")
    assert_clean(result, 0)
    assert result.stdout == ""
