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

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"
RAN = {"ok", "missed", "info", "skipped", "not measured yet"}
SOAK_WAIT = 100.0  # 20 s of chaos, 8 s of settling and the final checks, on a busy 2-core box


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


@pytest.mark.timeout(150)
def test_run_all_quick_runs_every_benchmark_and_writes_the_table(tmp_path: Path) -> None:
    out = tmp_path / "latest.json"
    listed = _run(str(BENCH / "run_all"), "--list", timeout=30).stdout.split()
    proc = _run(str(BENCH / "run_all"), "--quick", "--json", str(out), timeout=140)
    report = json.loads(out.read_text())
    assert proc.returncode == report["exit_code"], proc.stdout + proc.stderr
    broken = [b for b in report["benchmarks"] if b["status"] not in ("ran", "not measured yet")]
    assert not broken, "\n".join(f"{b['name']}: {b['status']}\n{b['output_tail']}" for b in broken)
    assert proc.returncode in (0, 2), proc.stdout  # 2: a target missed on this busy box
    figures = report["figures"]
    assert {f["bench"] for f in figures} == {b["name"] for b in report["benchmarks"]}
    assert {b["name"] for b in report["benchmarks"]} <= set(listed)
    assert all(f["status"] in RAN for f in figures), figures
    measured = [f for f in figures if f["status"] in ("ok", "missed")]
    assert len(measured) >= 10
    assert all(isinstance(f["measured"], float) for f in measured)
    assert all(f["measured"] >= 0 for f in measured if f["unit"] != "%")  # overheads may be < 0
    assert all(f["ok"] == (f["status"] == "ok") for f in measured)
    # The printed table shows every figure with its target and measurement.
    for f in measured:
        line = next(x for x in proc.stdout.splitlines() if x.startswith(f["figure"]))
        assert f["shown"] in line and f["target"] in line


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
