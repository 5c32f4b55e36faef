"""Helpers for tests that drive the `cmdctl` command: in this process, or as a real one."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Coroutine, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, TypeVar

from cmdctl.simulator import DeviceSpec, Fleet, venue
from cmdctl.simulator import write_inventory as write_simulated_inventory

KEY = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="  # base64 of 32 bytes (a dummy key)


@dataclass(frozen=True)
class Result:
    """How a `cmdctl` command ended: its exit code and everything it printed."""

    returncode: int
    stdout: str
    stderr: str


#: The signals `run`/`drain`/`simulate` handle; `invoke` checks they are handed back.
_WATCHED_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def invoke(*args: str, env: Mapping[str, str], cwd: Path, input: str | None = None) -> Result:
    """Run `cmdctl ARGS` in this process as `python -m cmdctl` would in a child.

    The same entry point (`cmdctl.cli.main`, where errors become exit codes), environment,
    working directory, argv and non-terminal stdin/stdout/stderr; fails the test if the command
    left a signal handler, logging handler, thread, cwd or environment change behind.
    """
    from cmdctl.cli import main

    saved_env, saved_cwd, saved_argv = dict(os.environ), os.getcwd(), sys.argv
    saved_streams = sys.stdin, sys.stdout, sys.stderr
    saved_signals = {sig: signal.getsignal(sig) for sig in _WATCHED_SIGNALS}
    saved_log = list(logging.getLogger().handlers)
    saved_threads = set(threading.enumerate())
    # Real files, like the pipes of a child: they have a fileno and are not terminals.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        stdout = io.TextIOWrapper(out, encoding="utf-8", newline="", write_through=True)
        stderr = io.TextIOWrapper(err, encoding="utf-8", newline="", write_through=True)
        stdin = io.TextIOWrapper(io.BytesIO((input or "").encode()), encoding="utf-8")
        os.environ.clear()
        os.environ.update(env)
        os.chdir(cwd)
        sys.argv = ["cmdctl", *args]
        sys.stdin, sys.stdout, sys.stderr = stdin, stdout, stderr
        try:
            try:
                main(list(args))
                code = 0
            except SystemExit as exc:
                code = _exit_status(exc.code, stderr)
        finally:
            sys.stdin, sys.stdout, sys.stderr = saved_streams
            sys.argv = saved_argv
            os.chdir(saved_cwd)
            os.environ.clear()
            os.environ.update(saved_env)
        stdout.flush()
        stderr.flush()
        result = Result(code, _read(out), _read(err))
        stdout.detach()
        stderr.detach()
    left = {
        "signal handlers": {
            sig.name: handler
            for sig, handler in ((s, signal.getsignal(s)) for s in _WATCHED_SIGNALS)
            if handler is not saved_signals[sig]
        },
        "logging handlers": [h for h in logging.getLogger().handlers if h not in saved_log],
        "threads": [t.name for t in threading.enumerate() if t not in saved_threads],
    }
    assert not any(left.values()), f"cmdctl {' '.join(args)} left behind {left}"
    return result


def _exit_status(code: object, stderr: io.TextIOWrapper) -> int:
    """The status the interpreter would exit with for `SystemExit(code)`."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    stderr.write(f"{code}\n")  # what the interpreter does with sys.exit("message")
    return 1


def _read(file: IO[bytes]) -> str:
    file.seek(0)
    # Decoded as `subprocess.run(text=True)` decodes a child's output (universal newlines).
    return io.TextIOWrapper(io.BytesIO(file.read()), encoding="utf-8").read()


@dataclass
class Workspace:
    """A directory with an inventory, its secrets and a journal location."""

    root: Path
    inventory: Path
    journal: Path
    env: dict[str, str]

    def run(
        self, *args: str, timeout: float = 60, extra_env: dict[str, str] | None = None
    ) -> Result:
        """Run `python -m cmdctl ARGS` here as a real process; never raises on a non-zero exit."""
        proc = subprocess.run(
            [sys.executable, "-m", "cmdctl", *args],
            cwd=self.root,
            env={**self.env, **(extra_env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def invoke(
        self, *args: str, input: str | None = None, extra_env: dict[str, str] | None = None
    ) -> Result:
        """Run `cmdctl ARGS` here in this process (see `invoke`); for output and exit codes."""
        return invoke(*args, env={**self.env, **(extra_env or {})}, cwd=self.root, input=input)

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


# -- a simulated fleet in a background thread ------------------------------------------------

T = TypeVar("T")

#: Any escape sequence (colour, cursor movement): none may reach a pipe.
CONTROL = re.compile(r"\x1b")


class RunningFleet:
    """Virtual devices served by an event loop in a background thread of the test process."""

    def __init__(self, specs: list[DeviceSpec], directory: Path) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.fleet: Fleet = self.call(self._start(specs))
        self.inventory = directory / "devices.yml"
        write_simulated_inventory(self.fleet.devices, self.inventory)

    async def _start(self, specs: list[DeviceSpec]) -> Fleet:
        fleet = Fleet(specs)
        await fleet.start()
        return fleet

    def call(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` on the fleet's loop and wait for it."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=15)

    def close(self) -> None:
        self.call(self.fleet.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()


def assert_clean(result: Result, code: int) -> None:
    """Exit `code`, no traceback, no control codes (stdout and stderr are pipes here)."""
    assert result.returncode == code, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert not CONTROL.search(result.stdout + result.stderr)


def row_of(text: str, device: str) -> str:
    """The table line that starts with `device`."""
    lines = [line for line in text.splitlines() if line.split()[:1] == [device]]
    assert len(lines) == 1, text
    return lines[0]


@contextlib.contextmanager
def three_tvs(tmp_path: Path) -> Iterator[tuple[RunningFleet, Workspace]]:
    """Three encrypted venue TVs (bar-tv-1..3) running, and a workspace pointing at them."""
    ws = make_workspace(tmp_path)
    site = tmp_path / "site"
    site.mkdir()
    running = RunningFleet(venue(3, encrypted=True, seed=5), site)
    ws.env["CMDCTL_INVENTORY"] = str(running.inventory)
    try:
        yield running, ws
    finally:
        running.close()
