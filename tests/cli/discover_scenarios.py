"""Bodies of the discovery tests: run by tests/netns.py inside a private network namespace.

Each function returns what the test asserts on (exit codes, output, files), as JSON values.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

SIMULATE = ("simulate", "--spec", "spec.yml", "--mdns", "--write-inventory", "sim.yml")
KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="
# A responder answers a query in 20–120 ms, but one that multicast the same answer less than a
# second ago (its own start-up announcement, the previous discover) holds it back for a second
# (RFC 6762 §14): 2.5 s covers that, under load too.
BROWSE = "2500ms"

SPEC = f"""\
devices:
  bar-tv-1:
    template: tv
    friendly_name: Bar TV 1
    mac: "A0:B7:65:01:02:03"
    key: {KEY}
  bar-tv-2:
    template: tv
    friendly_name: Bar TV 2
    mac: "A0:B7:65:01:02:04"
    key: {KEY}
    host: 127.0.0.2
  patio:
    template: tv
    mac: "A0:B7:65:01:02:05"
    model: esp01_1m
    platform: ESP8266
    esphome_version: 2026.9.1
"""


def _env(root: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "CMDCTL_HOME": str(root / "journal"),
        "NO_COLOR": "1",
        "COLUMNS": "200",
        "XDG_CACHE_HOME": str(root / "cache"),
    }
    env.pop("CMDCTL_INVENTORY", None)
    env.pop("FORCE_COLOR", None)
    return env


def cmdctl(root: Path, *args: str) -> dict[str, Any]:
    """Run `python -m cmdctl ARGS` in `root`: exit code and output."""
    proc = subprocess.run(
        [sys.executable, "-m", "cmdctl", *args],
        cwd=root,
        env=_env(root),
        capture_output=True,
        text=True,
        timeout=60,
    )
    return {"code": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr}


class Simulator:
    """`cmdctl simulate --spec SPEC --mdns --write-inventory sim.yml` in the background."""

    def __init__(self, root: Path) -> None:
        (root / "spec.yml").write_text(SPEC)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cmdctl", *SIMULATE],
            cwd=root,
            env=_env(root),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 30
        self.banner: list[str] = []
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(
                    f"simulate ended: {self.proc.stderr and self.proc.stderr.read()}"
                )
            self.banner.append(line.rstrip("\n"))
            if line.startswith("announced over mDNS"):
                return
        raise RuntimeError("simulate did not start in 30 s")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=30)


def announced(directory: str) -> dict[str, Any]:
    """Every simulated device is found, first with no inventory, then against its own."""
    root = Path(directory)
    sim = Simulator(root)
    try:
        fresh = cmdctl(root, "devices", "discover", "--timeout", BROWSE, "--json")
        table = cmdctl(root, "devices", "discover", "-t", BROWSE, "-i", "sim.yml")
        known = cmdctl(root, "devices", "discover", "-t", BROWSE, "-i", "sim.yml", "--json")
    finally:
        stopped = sim.stop()
    return {
        "banner": sim.banner,
        "fresh": fresh,
        "table": table,
        "known": known,
        "inventory": (root / "sim.yml").read_text(),
        "simulate_exit": stopped,
    }


def moved(directory: str) -> dict[str, Any]:
    """Moved address and port are reported; --merge fixes them and adds the new device."""
    root = Path(directory)
    sim = Simulator(root)
    try:
        ports = _ports(root / "sim.yml")
        # the user's inventory: bar-tv-1 on an old port, bar-tv-2 at the old address, no patio
        text = (
            "# the bar (hand-written; this comment must survive)\n"
            "devices:\n"
            "  bar-tv-1:\n"
            "    host: 127.0.0.1\n"
            "    port: 1   # old firmware port\n"
            "    key: !secret tv_key\n"
            "    groups: [bar]\n"
            "  bar-tv-2:\n"
            "    host: '127.0.0.1'\n"
            f"    port: {ports['bar-tv-2']}\n"
            "    key: !secret tv_key\n"
            "    expected_name: bar-tv-2\n"
            "    groups: [bar]\n"
        )
        (root / "devices.yml").write_text(text)
        (root / "secrets.yaml").write_text(f"tv_key: {KEY}\n")
        before = cmdctl(root, "devices", "discover", "-t", BROWSE)
        merge = cmdctl(root, "devices", "discover", "-t", BROWSE, "--merge", "devices.yml")
        merged = (root / "devices.yml").read_text()
        again = cmdctl(
            root, "devices", "discover", "-t", BROWSE, "--merge", "devices.yml", "--json"
        )
        probe = cmdctl(root, "devices", "probe", "--json", "-t", "5s")
    finally:
        sim.stop()
    return {
        "ports": ports,
        "original": text,
        "before": before,
        "merge": merge,
        "merged": merged,
        "again": again,
        "probe": probe,
    }


def bad_input(directory: str) -> dict[str, Any]:
    """Bad arguments fail before anything is browsed; a quiet network is not an error."""
    root = Path(directory)
    (root / "broken.yml").write_text("devices:\n  a: {host: 127.0.0.1, colour: red}\n")
    (root / "a.yml").write_text("devices:\n  a: {host: 127.0.0.1}\n")
    (root / "adir").mkdir()
    runs = {
        "timeout_word": ("--timeout", "soon"),
        "timeout_zero": ("--timeout", "0s"),
        "timeout_huge": ("--timeout", "1h"),
        "merge_dir": ("--merge", "adir"),
        "merge_and_inventory": ("--merge", "a.yml", "--inventory", "broken.yml"),
        "merge_no_dir": ("--merge", "nowhere/devices.yml"),
        "missing_inventory": ("--inventory", "missing.yml"),
        "broken_inventory": ("--inventory", "broken.yml"),
        "broken_merge": ("--merge", "broken.yml"),
    }
    out: dict[str, Any] = {}
    for name, args in runs.items():
        started = time.monotonic()
        result = cmdctl(root, "devices", "discover", *args)
        result["seconds"] = time.monotonic() - started
        out[name] = result
    out["nothing"] = cmdctl(root, "devices", "discover", "-t", "300ms", "--merge", "new.yml")
    out["nothing_json"] = json.loads(
        cmdctl(root, "devices", "discover", "-t", "300ms", "--json")["stdout"]
    )
    out["new_file_exists"] = (root / "new.yml").exists()
    return out


def _ports(inventory: Path) -> dict[str, int]:
    ports: dict[str, int] = {}
    name = ""
    for line in inventory.read_text().splitlines():
        if line.startswith("  ") and not line.startswith("    ") and line.endswith(":"):
            name = line.strip().rstrip(":")
        elif line.strip().startswith("port:"):
            ports[name] = int(line.split(":")[1])
    return ports
