"""`bench/run_all --quick` and a 20-second `bench/soak.py` run for real and their output parses.

The soak starts first, in the background, and runs while `run_all --quick` does: the two
together stay within about a minute (the quick figures are not checked against targets).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
RAN = {"ok", "missed", "info", "skipped", "not measured yet"}
SOAK_WAIT = 100.0  # 20 s of chaos, 8 s of settling and the final checks, on a busy 2-core box
QUICK_WAIT = 200.0  # every benchmark at its quick size, one after another, on a busy 2-core box


def _run(*argv: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv], capture_output=True, text=True, timeout=timeout, check=False
    )


@pytest.fixture(scope="module", autouse=True)
def soak(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[subprocess.Popen[str], Path]]:
    """`soak.py --duration 20s`, started before the first test of this module."""
    work = tmp_path_factory.mktemp("soak")
    out = work / "soak.json"
    argv = [
        sys.executable,
        str(BENCH / "soak.py"),
        "--duration",
        "20s",
        "--seed",
        "7",
        "--devices",
        "4",
        "--phase",
        "7s",
        "--settle",
        "8s",
        "--kill-rate",
        "0.4",
        "--workdir",
        str(work / "w"),
        "--json",
        str(out),
    ]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    yield proc, out
    if proc.poll() is None:
        proc.kill()
        proc.communicate()


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Any]:
    """`run_all --quick`, once for this module: its process and the JSON it wrote."""
    out = tmp_path_factory.mktemp("run_all") / "latest.json"
    proc = _run(str(BENCH / "run_all"), "--quick", "--json", str(out), timeout=QUICK_WAIT)
    return proc, json.loads(out.read_text())


@pytest.mark.timeout(QUICK_WAIT + 10)
def test_run_all_quick_runs_every_benchmark_and_writes_the_table(
    quick: tuple[subprocess.CompletedProcess[str], Any],
) -> None:
    proc, report = quick
    listed = _run(str(BENCH / "run_all"), "--list", timeout=30).stdout.split()
    assert proc.returncode == report["exit_code"], proc.stdout + proc.stderr
    broken = [b for b in report["benchmarks"] if b["status"] not in ("ran", "not measured yet")]
    assert not broken, "\n".join(f"{b['name']}: {b['status']}\n{b['output_tail']}" for b in broken)
    assert proc.returncode in (0, 2), proc.stdout  # 2: a target missed on this busy box
    figures = report["figures"]
    assert {f["bench"] for f in figures} == {b["name"] for b in report["benchmarks"]}
    assert {b["name"] for b in report["benchmarks"]} <= set(listed)
    assert all(f["status"] in RAN for f in figures), figures
    assert len({f["key"] for f in figures}) == len(figures)
    measured = [f for f in figures if f["status"] in ("ok", "missed")]
    assert len(measured) >= 10
    assert all(isinstance(f["value"], float) for f in measured)
    assert all(f["value"] >= 0 for f in measured if f["unit"] != "%")  # overheads may be < 0
    assert all(f["met"] == (f["status"] == "ok") for f in measured)
    # The printed table shows every figure with its target and measurement.
    for f in measured:
        line = next(x for x in proc.stdout.splitlines() if x.startswith(f["label"]))
        assert f["shown"] in line and f["target_text"] in line


#: Issue 17's figures, each with its target: key -> (op, target).
ISSUE_17 = {
    "drain_throughput.engine_ratio": (">=", 0.35),
    "drain_throughput.cli_ratio": (">=", 0.25),
    "send_latency.median_17": ("<=", 0.35),
    "queue_ls.first": ("<", 2.0),
    "queue_ls.rss": ("<", 300.0),
    "journal_verify.seconds": ("<", 15.0),
    "journal_verify.rss": ("<", 300.0),
    "cli_speed.status_1m_first_s_17": ("<", 1.5),
    "cli_speed.status_1m_s_17": ("<", 0.5),
    "bulk_speed.seconds": ("<", 1.2),
    "bulk_speed.rss": ("<", 150.0),
    "drain_memory.rss_17": ("<", 120.0),
    "archive_bounded.growth": ("<", 2.0),  # "stays bounded on disk": size after 1,000 / 100
}


@pytest.mark.timeout(QUICK_WAIT + 10)
def test_every_issue_17_figure_is_in_the_json_with_its_target(
    quick: tuple[subprocess.CompletedProcess[str], Any],
) -> None:
    _, report = quick
    rows = {f["key"]: f for f in report["figures"] if f["issue"] == 17 and f["target"] is not None}
    assert set(rows) == set(ISSUE_17)
    for key, (op, target) in ISSUE_17.items():
        row = rows[key]
        assert (row["op"], row["target"]) == (op, target), row
        assert set(row) >= {"key", "label", "value", "unit", "target", "met", "issue"}
        if row["status"] == "skipped":  # the 1M-event status runs: full runs only
            assert key.startswith("cli_speed.status_1m") and row["value"] is None
            continue
        value = row["value"]
        assert isinstance(value, float), row
        met = value >= target if op == ">=" else value <= target if op == "<=" else value < target
        assert row["met"] is met, row


@pytest.mark.timeout(60)
def test_run_all_reports_a_timed_out_benchmark_and_exits_1(tmp_path: Path) -> None:
    out = tmp_path / "r.json"
    proc = _run(
        str(BENCH / "run_all"),
        "--only",
        "journal_append",
        "--timeout",
        "0.05",
        "--json",
        str(out),
        timeout=50,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    report = json.loads(out.read_text())
    assert [b["status"] for b in report["benchmarks"]] == ["timeout"]
    assert {f["status"] for f in report["figures"]} == {"timeout"}
    assert "TIMEOUT" in proc.stdout and "journal_append: timeout" in proc.stdout


@pytest.mark.timeout(SOAK_WAIT + 20)
def test_soak_20s_finds_no_violation(soak: tuple[subprocess.Popen[str], Path]) -> None:
    proc, out = soak
    printed, _ = proc.communicate(timeout=SOAK_WAIT)
    result = json.loads(out.read_text())
    assert printed.rstrip().endswith(f"violations = {result['violations']}")
    assert proc.returncode == (1 if result["violations"] else 0), printed[-3000:]
    assert result["violations"] == len(result["violation_list"]) or result["violations"] > 50
    assert result["operations_total"] >= 5
    assert result["simulator_restarts"] >= 2  # a fault phase change, then the healthy final one
    assert result["entries"] > 0 and result["commands_received"] > 0
    assert sum(result["entries_by_state"].values()) == result["entries"]
    assert result["final_drains"] and result["final_drains"][0].startswith("drain -> ")
    assert not result["violation_list"]
