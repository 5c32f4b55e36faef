"""A simulated fleet in its own process, for crash tests and benchmarks.

    python tests/drain/simproc.py DIR --count 100 [--latency 0.2] [--encrypted] [--record F]

Starts `count` venue TVs on 127.0.0.1 (ephemeral ports), writes DIR/devices.yml and
DIR/secrets.yaml for cmdctl, prints one line `ready` on stdout, and serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from cmdctl.simulator import FaultSpec, Fleet, venue, write_inventory


def cmdctl_argv(*args: str) -> list[str]:
    """argv that runs `cmdctl ARGS...` in a fresh interpreter (the real entry point)."""
    return [sys.executable, "-m", "cmdctl", *args]


def installed_env(env: dict[str, str], cache: Path) -> dict[str, str]:
    """`env` for timing cmdctl as installed: bytecode cached (in `cache`, not the repo), warm.

    An editable checkout run with PYTHONDONTWRITEBYTECODE recompiles every cmdctl module in every
    process (~0.1 s); `pip install` leaves compiled bytecode behind, so benchmarks use a cache.
    """
    out = dict(env, PYTHONPYCACHEPREFIX=str(cache))
    out.pop("PYTHONDONTWRITEBYTECODE", None)
    # Every module, not a few entry points: much is imported lazily (the client only when
    # something is sent), and a module first compiled inside a timed run would be timed too.
    subprocess.run([sys.executable, "-c", _WARM], env=out, check=True)
    return out


_WARM = """
import importlib, pkgutil, cmdctl
for m in pkgutil.walk_packages(cmdctl.__path__, "cmdctl."):
    if m.name != "cmdctl.__main__":
        importlib.import_module(m.name)
"""


async def serve(args: argparse.Namespace) -> None:
    specs = venue(args.count, encrypted=args.encrypted, seed=args.seed)
    if args.latency:
        specs = [replace(s, faults=FaultSpec(latency=args.latency)) for s in specs]
    async with Fleet(specs, record_path=args.record) as fleet:
        write_inventory(fleet.devices, Path(args.dir) / "devices.yml")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dir")
    parser.add_argument("--count", type=int, default=10)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--encrypted", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--record", default=None)
    asyncio.run(serve(parser.parse_args()))


@contextlib.contextmanager
def running(
    directory: Path, *, count: int, latency: float = 0.0, encrypted: bool = False,
    record: Path | None = None,
) -> Iterator[Path]:
    """Run the fleet in a child process; yields the inventory path."""
    cmd = [sys.executable, __file__, str(directory), "--count", str(count)]
    if latency:
        cmd += ["--latency", str(latency)]
    if encrypted:
        cmd.append("--encrypted")
    if record is not None:
        cmd += ["--record", str(record)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError(f"simulator did not start: {line!r}")
        yield directory / "devices.yml"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


if __name__ == "__main__":
    main()
