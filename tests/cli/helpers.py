"""Helpers for tests that drive the real `cmdctl` command in subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="  # base64 of 32 bytes (a dummy key)


@dataclass
class Workspace:
    """A directory with an inventory, its secrets and a journal location."""

    root: Path
    inventory: Path
    journal: Path
    env: dict[str, str]

    def run(
        self, *args: str, timeout: float = 60, extra_env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run `python -m cmdctl ARGS` here; never raises on a non-zero exit."""
        return subprocess.run(
            [sys.executable, "-m", "cmdctl", *args],
            cwd=self.root,
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def popen(self, *args: str) -> subprocess.Popen[str]:
        """Start `python -m cmdctl ARGS` without waiting."""
        return subprocess.Popen(
            [sys.executable, "-m", "cmdctl", *args],
            cwd=self.root,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def playbook(self, name: str, text: str) -> Path:
        """Write a playbook file and return its path."""
        path = self.root / name
        path.write_text(text)
        return path


def write_inventory(root: Path, devices: int, *, prefix: str = "tv", group: str = "tvs") -> Path:
    """An inventory of `devices` devices on 127.0.0.1 (nothing needs to listen for queueing)."""
    lines = ["devices:"]
    for i in range(1, devices + 1):
        lines += [
            f"  {prefix}-{i}:",
            "    host: 127.0.0.1",
            f"    port: {30000 + i}",
            "    key: !secret tv_key",
            f"    groups: [{group}]",
        ]
    inventory = root / "devices.yml"
    inventory.write_text("\n".join(lines) + "\n")
    (root / "secrets.yaml").write_text(f'tv_key: "{KEY}"\n')
    return inventory


def volume_playbook(steps: int, *, name: str = "volumes", targets: str = "tvs") -> str:
    """A playbook of `steps` queued volume changes over `targets`."""
    body = [f"name: {name}", f"targets: {targets}", "steps:"]
    for s in range(steps):
        body += [f"  - name: volume {s}", f"    number.volume: {s % 100}"]
    return "\n".join(body) + "\n"


def make_workspace(tmp_path: Path) -> Workspace:
    """Ten devices, a journal dir, and an environment pointing cmdctl at them."""
    inventory = write_inventory(tmp_path, 10)
    journal = tmp_path / "journal"
    env = {
        **os.environ,
        "CMDCTL_HOME": str(journal),
        "CMDCTL_INVENTORY": str(inventory),
        "NO_COLOR": "1",
        "COLUMNS": "200",
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
    }
    env.pop("FORCE_COLOR", None)
    return Workspace(tmp_path, inventory, journal, env)
