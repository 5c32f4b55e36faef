"""`drain --metrics-file` / `--log-file` (and `run`) against the real simulator: in-process, but
real processes where a reader races the writer and where `run` is stopped by SIGTERM.

The metrics file is read with a strict parser of the Prometheus text format (0.0.4) written here,
so a malformed file fails the test rather than being half-read.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import signal
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cmdctl.drain import metrics
from cmdctl.drain.totals import Totals
from tests.cli.helpers import RunningFleet, Workspace, assert_clean, three_tvs

# -- a strict parser of the text format --------------------------------------------------------

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)=\"((?:[^\"\\\n]|\\[\\\"n])*)\"")
_SAMPLE = re.compile(rf"({_NAME})(\{{.*\}})? (\S+)\Z")
_TYPES = {"counter", "gauge", "summary", "histogram", "untyped"}
_SUFFIXES = {"summary": ("", "_sum", "_count"), "histogram": ("_bucket", "_sum", "_count")}


@dataclass
class Family:
    name: str
    kind: str = "untyped"
    help: str | None = None
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float] = field(default_factory=dict)

    def value(self, suffix: str = "", **labels: str) -> float:
        return self.samples[(self.name + suffix, tuple(sorted(labels.items())))]


def _unescape(text: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n"}.get(m.group(1), m.group(1)), text)


def _labels(text: str) -> tuple[tuple[str, str], ...]:
    body = text[1:-1]
    out: dict[str, str] = {}
    pos = 0
    while pos < len(body):
        m = _LABEL.match(body, pos)
        assert m, f"bad labels {text!r} at {pos}"
        name = m.group(1)
        assert not name.startswith("__") and name not in out, f"bad label name {name!r}"
        out[name] = _unescape(m.group(2))
        pos = m.end()
        if pos < len(body):
            assert body[pos] == ",", f"bad labels {text!r}"
            pos += 1
    return tuple(sorted(out.items()))


def _value(text: str) -> float:
    if text in ("+Inf", "-Inf", "NaN"):
        return float(text.replace("+", ""))
    assert re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", text), f"bad value {text!r}"
    return float(text)


def parse(text: str) -> dict[str, Family]:
    """Families by name; AssertionError on anything the format (or the collector) refuses."""
    assert text.endswith("\n"), "must end with a newline"
    families: dict[str, Family] = {}
    current: Family | None = None
    closed: set[str] = set()
    for number, line in enumerate(text[:-1].split("\n"), 1):
        where = f"line {number}: {line!r}"
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(" ", 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                assert re.fullmatch(_NAME, name), where
                fam = families.setdefault(name, Family(name))
                assert name not in closed and not fam.samples, f"{where}: after its samples"
                if current is not None and current.name != name:
                    closed.add(current.name)
                current = fam
                if parts[1] == "HELP":
                    assert fam.help is None, f"{where}: second HELP"
                    fam.help = _unescape(parts[3] if len(parts) > 3 else "")
                else:
                    assert len(parts) == 4 and parts[3] in _TYPES, where
                    assert fam.kind == "untyped", f"{where}: second TYPE"
                    fam.kind = parts[3]
            continue
        m = _SAMPLE.match(line)
        assert m, f"{where}: not a sample (or has a timestamp, which the collector refuses)"
        sample_name, labels_text, value = m.groups()
        fam = current
        assert fam is not None, f"{where}: sample before any HELP/TYPE"
        suffix = sample_name[len(fam.name) :] if sample_name.startswith(fam.name) else None
        assert suffix in _SUFFIXES.get(fam.kind, ("",)), f"{where}: not in family {fam.name}"
        labels = _labels(labels_text) if labels_text else ()
        if fam.kind == "summary" and suffix == "":
            assert "quantile" in dict(labels), f"{where}: summary sample without quantile"
        key = (sample_name, labels)
        assert key not in fam.samples, f"{where}: duplicate series"
        fam.samples[key] = _value(value)
    for fam in families.values():
        assert fam.help is not None and fam.kind != "untyped", f"{fam.name}: no HELP/TYPE"
    return families


# -- unit: rendering -----------------------------------------------------------------------------


def test_render_parses_and_escapes_label_values() -> None:
    totals = Totals()
    odd = 'tv "quoted" \\ back\nslash'
    totals.tally(odd).add("confirmed", 3)
    totals.tally("bar-tv-1").add("failed")
    totals.tally("bar-tv-1").retried = 2
    totals.superseded, totals.held = 4, 5
    m = metrics.DrainMetrics(
        totals, queued=7, finished=1_700_000_000.5, latencies={odd: [0.3, 0.1, 0.2]}
    )
    fams = parse(metrics.render(m))
    assert fams["cmdctl_queued_commands"].value() == 7
    assert fams["cmdctl_drain_commands"].value(outcome="confirmed") == 3
    assert fams["cmdctl_drain_commands"].value(outcome="failed") == 1
    assert fams["cmdctl_drain_retries"].value() == 2
    assert fams["cmdctl_drain_superseded_commands"].value() == 4
    assert fams["cmdctl_drain_held_commands"].value() == 5
    assert fams["cmdctl_drain_exit_code"].value() == 1
    assert fams["cmdctl_device_commands"].value(device=odd, outcome="confirmed") == 3
    lat = fams["cmdctl_command_duration_seconds"]
    assert lat.kind == "summary"
    assert lat.value(device=odd, quantile="0.5") == 0.2
    assert lat.value(device=odd, quantile="0.99") == 0.3
    assert lat.value("_count", device=odd) == 3
    assert math.isclose(lat.value("_sum", device=odd), 0.6)


@pytest.mark.parametrize(
    "bad",
    [
        "# TYPE x gauge\nx 1",  # no final newline
        "# HELP x h\n# TYPE x gauge\nx 1 1700000000\n",  # a timestamp
        '# HELP x h\n# TYPE x gauge\nx{a="b} 1\n',  # unterminated label value
        "# HELP x h\n# TYPE x gauge\nx 1\n# HELP y h\n# TYPE y gauge\ny 1\nx 2\n",  # interleaved
        "# HELP x h\n# TYPE x summary\nx 1\n",  # a summary sample without quantile
    ],
)
def test_the_parser_is_strict(bad: str) -> None:
    with pytest.raises(AssertionError):
        parse(bad)


# -- end to end ----------------------------------------------------------------------------------

PLAYBOOK = """\
name: metrics
targets: tvs
steps:
  - name: power
    switch.tv_power: on
  - name: volume
    number.volume: 20
  - name: bad input
    select.input: HDMI 9
"""


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[tuple[RunningFleet, Workspace]]:
    """Three encrypted venue TVs and a workspace pointing at them."""
    with three_tvs(tmp_path) as running:
        yield running


def _queue(ws: Workspace, text: str = PLAYBOOK) -> None:
    pb = ws.playbook("pb.yml", text)
    assert_clean(ws.invoke("bulk", str(pb)), 0)


def _pending(ws: Workspace) -> int:
    counts: dict[str, int] = json.loads(ws.invoke("status", "--json").stdout)["counts"]
    return counts.get("pending", 0)


def test_drain_metrics_match_the_json_totals_and_log_has_a_line_per_outcome(
    sim: tuple[RunningFleet, Workspace],
) -> None:
    fleet, ws = sim
    out = ws.root / "textfile"
    out.mkdir()
    prom, log = out / "cmdctl.prom", out / "outcomes.jsonl"
    _queue(ws)
    fleet.call(fleet.fleet.device("bar-tv-3").set_offline(True))

    result = ws.invoke("drain", "--json", "--metrics-file", str(prom), "--log-file", str(log))
    assert_clean(result, 1)
    report = json.loads(result.stdout)
    assert sorted(os.listdir(out)) == ["cmdctl.prom", "outcomes.jsonl"]  # no temp file left
    fams = parse(prom.read_text())

    totals = report["totals"]
    drained = fams["cmdctl_drain_commands"]
    for outcome in ("confirmed", "delivered", "failed", "unknown", "unreachable", "expired"):
        assert drained.value(outcome=outcome) == totals[outcome], outcome
    assert (totals["confirmed"], totals["failed"], totals["unreachable"]) == (4, 2, 3)
    assert fams["cmdctl_drain_retries"].value() == totals["retried"]
    assert fams["cmdctl_drain_superseded_commands"].value() == report["superseded"]
    assert fams["cmdctl_drain_held_commands"].value() == report["held"]
    assert fams["cmdctl_drain_exit_code"].value() == report["exit_code"] == 1
    assert fams["cmdctl_queued_commands"].value() == _pending(ws) == 3  # bar-tv-3's, requeued
    assert math.isclose(fams["cmdctl_drain_duration_seconds"].value(), report["seconds"])
    assert abs(fams["cmdctl_drain_last_timestamp_seconds"].value() - time.time()) < 60
    latency = fams["cmdctl_command_duration_seconds"]
    for device in report["devices"]:
        done = device["confirmed"] + device["delivered"]
        name = device["device"]
        per = fams["cmdctl_device_commands"].samples
        key = ("cmdctl_device_commands", (("device", name), ("outcome", "failed")))
        assert per.get(key, 0) == device["failed"]
        if not done:
            assert ("cmdctl_command_duration_seconds_count", (("device", name),)) not in (
                latency.samples
            )
            continue
        assert latency.value("_count", device=name) == done
        assert 0 < latency.value(device=name, quantile="0.5") <= latency.value("_sum", device=name)

    lines = log.read_text().splitlines()
    assert stat.S_IMODE(log.stat().st_mode) == 0o600
    records = [json.loads(line) for line in lines]
    assert len(records) == sum(totals[k] for k in totals if k != "retried") == 9
    assert len({r["id"] for r in records}) == 9
    by_result: dict[str, int] = {}
    for r in records:
        by_result[r["result"]] = by_result.get(r["result"], 0) + 1
        assert {"id", "device", "selector", "args", "state", "outcome", "attempts"} <= r.keys()
    assert by_result == {"confirmed": 4, "failed": 2, "unreachable": 3}
    bad = [r for r in records if r["result"] == "failed"]
    assert {r["selector"] for r in bad} == {"select.input"}
    assert all(r["state"] == "failed" and "has no option 'HDMI 9'" in r["last_error"] for r in bad)
    assert all(r["state"] == "done" for r in records if r["result"] == "confirmed")

    # A second drain appends to the log and replaces the metrics file (a new inode, by rename).
    # bar-tv-3's first entries wait out their backoff: only the new batch is due.
    before = prom.stat().st_ino
    fleet.call(fleet.fleet.device("bar-tv-3").set_offline(False))
    _queue(ws, "name: v\ntargets: tvs\nsteps:\n  - number.volume: 40\n")
    second = ws.invoke(
        "drain", "--json", "--metrics-file", str(prom), "--log-file", str(log), "--quiet"
    )
    assert_clean(second, 0)
    again = json.loads(second.stdout)["totals"]
    assert (again["confirmed"], again["failed"], again["unreachable"]) == (3, 0, 0)
    assert prom.stat().st_ino != before
    fams = parse(prom.read_text())
    assert fams["cmdctl_drain_commands"].value(outcome="confirmed") == 3
    assert fams["cmdctl_drain_commands"].value(outcome="unreachable") == 0
    assert fams["cmdctl_drain_exit_code"].value() == 0
    # bar-tv-3's volume 20 waits out its backoff; the newer volume 40 supersedes it (a stale
    # value must not land later), leaving its power and input pending.
    assert json.loads(second.stdout)["superseded"] == 1
    assert fams["cmdctl_drain_superseded_commands"].value() == 1
    assert fams["cmdctl_queued_commands"].value() == _pending(ws) == 2
    assert len(log.read_text().splitlines()) == 9 + 3
    assert sorted(os.listdir(out)) == ["cmdctl.prom", "outcomes.jsonl"]


def test_metrics_file_is_never_seen_partial(sim: tuple[RunningFleet, Workspace]) -> None:
    """A reader polling the file during repeated drains only ever sees whole, valid files."""
    _, ws = sim
    prom = ws.root / "cmdctl.prom"
    seen: set[str] = set()  # distinct contents read
    reads = 0
    stop = threading.Event()

    def reader() -> None:
        nonlocal reads
        while not stop.is_set():
            with contextlib.suppress(FileNotFoundError):
                seen.add(prom.read_text())
                reads += 1
            time.sleep(0.0005)  # leave the GIL to the simulator's thread now and then

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    try:
        for _ in range(3):
            _queue(ws, "name: v\ntargets: tvs\nsteps:\n  - number.volume: 5\n")
            assert_clean(ws.run("drain", "--quiet", "--metrics-file", str(prom)), 0)
    finally:
        stop.set()
        thread.join(timeout=5)
    assert reads > 100 and len(seen) >= 3  # three drains, three different files (timestamps)
    for text in seen:
        parse(text)  # complete: ends with a newline, every family whole
        assert "cmdctl_command_duration_seconds_count" in text
    assert [p.name for p in ws.root.iterdir() if p.name.startswith(".cmdctl.prom")] == []


def test_run_rewrites_metrics_after_each_pass(sim: tuple[RunningFleet, Workspace]) -> None:
    _, ws = sim
    prom, log = ws.root / "run.prom", ws.root / "run.jsonl"
    proc = ws.popen("run", "--quiet", "--metrics-file", str(prom), "--log-file", str(log))
    try:
        _queue(ws, "name: v\ntargets: tvs\nsteps:\n  - number.volume: 7\n")
        deadline = time.monotonic() + 20
        confirmed = 0.0
        while time.monotonic() < deadline and confirmed < 3:
            if prom.exists():
                confirmed = parse(prom.read_text())["cmdctl_drain_commands"].value(
                    outcome="confirmed"
                )
            time.sleep(0.05)
        assert confirmed == 3, "metrics were not written after the pass"
        assert proc.poll() is None  # still running: written after the pass, not at the end
        fams = parse(prom.read_text())
        assert fams["cmdctl_queued_commands"].value() == 0
        assert fams["cmdctl_command_duration_seconds"].value("_count", device="bar-tv-2") == 1
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, proc.stderr
    assert len(log.read_text().splitlines()) == 3
    assert parse(prom.read_text())["cmdctl_drain_commands"].value(outcome="confirmed") == 3


def test_bad_metrics_or_log_path_is_an_input_error_before_any_work(workspace: Workspace) -> None:
    _queue(workspace, "name: v\ntargets: tvs\nsteps:\n  - number.volume: 5\n")
    missing = workspace.root / "nope" / "m.prom"
    result = workspace.invoke("drain", "--metrics-file", str(missing))
    assert result.returncode == 2, result.stderr
    assert f"--metrics-file: no directory {missing.parent}" in result.stderr
    result = workspace.invoke("drain", "--log-file", str(workspace.root))
    assert result.returncode == 2
    assert "is a directory" in result.stderr
    assert _pending(workspace) == 10  # nothing was drained
