"""Drain throughput: 10,000 commands over 100 simulated devices, no simulated latency.

The simulator runs in its own process. Measures, each on a fresh journal:

* `cmdctl drain` as a whole process (import, journal read, recovery, drain, fsyncs, exit);
* the engine in this process (the same drain without process start-up);
* the ceiling: a bare aioesphomeapi loop sending the same commands (connect, list entities,
  send, one barrier per device) with no journal, no validation and no verification.

Target: drain >= 2,000 commands/s end to end (delivered, barriers included).

Each is run `--repeat` times (default 3), the three kinds taking turns, each drain on a fresh
journal; the figures are each kind's best run, and the ratios are of those. (One run each
swung the bare loop alone between 0.10 and 0.20 s on a shared 2-core machine.)

    python bench/drain_throughput.py [--devices 100] [--per-device 100] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "drain"))

from simproc import cmdctl_argv, installed_env, running

from cmdctl.core.ids import new_id
from cmdctl.core.model import Command, Entry, Priority
from cmdctl.journal import events as ev
from cmdctl.journal.store import Journal

CONCURRENCY = 64  # the drain default


def entries(devices: list[str], per_device: int) -> list[Entry]:
    now = time.time()
    batch = new_id()
    out = []
    for n in range(per_device):
        for device in devices:
            out.append(
                Entry(
                    id=new_id(), batch=batch, device=device,
                    command=Command("number", "volume", {"value": float(n % 101)}),
                    priority=Priority.NORMAL, created=now, not_before=now, expires=None,
                    idempotent=True, verify=True, max_attempts=3, who="bench@localhost",
                    origin="bulk", step="volume",
                )
            )
    return out


def inventory_hosts(path: Path) -> dict[str, tuple[str, int]]:
    data = yaml.safe_load(path.read_text())
    return {name: (d["host"], int(d["port"])) for name, d in data["devices"].items()}


def fresh_journal(root: Path, name: str, items: list[Entry]) -> Journal:
    journal = Journal(root / name)
    journal.append([ev.queued(e) for e in items])
    return journal


def cli_drain(journal: Journal, inventory: Path) -> float:
    base = dict(os.environ, CMDCTL_HOME=str(journal.directory), CMDCTL_INVENTORY=str(inventory))
    env = installed_env(base, journal.directory.parent / "pycache")
    began = time.perf_counter()
    proc = subprocess.run(
        cmdctl_argv("drain", "--concurrency", str(CONCURRENCY), "--json"),
        env=env, capture_output=True, text=True, check=False,
    )
    elapsed = time.perf_counter() - began
    if proc.returncode != 0:
        raise SystemExit(f"cmdctl drain exited {proc.returncode}: {proc.stderr[-2000:]}")
    return elapsed


async def engine_drain(journal: Journal, hosts: dict[str, tuple[str, int]]) -> float:
    from dataclasses import dataclass

    from cmdctl.drain import loops
    from cmdctl.drain.options import DrainOptions

    @dataclass(frozen=True)
    class Address:
        name: str
        host: str
        port: int
        key: None = None
        expected_name: str | None = None
        expected_mac: str | None = None
        timeout: float | None = None
        pace: float = 0.0

    devices = {n: Address(n, h, p, expected_name=n) for n, (h, p) in hosts.items()}
    began = time.perf_counter()
    totals = await loops.drain(journal, devices.get, DrainOptions(concurrency=CONCURRENCY))
    elapsed = time.perf_counter() - began
    if totals.exit_code() != 0:
        raise SystemExit(f"engine drain failed: {totals.as_dict()}")
    return elapsed


async def bare_loop(hosts: dict[str, tuple[str, int]], per_device: int) -> float:
    from aioesphomeapi import APIClient

    slots = asyncio.Semaphore(CONCURRENCY)

    async def one(host: str, port: int) -> None:
        async with slots:
            client = APIClient(host, port, None)
            await client.connect(login=True)
            _, entities, _ = await client.device_info_and_list_entities()
            key = next(e.key for e in entities if e.object_id == "volume")
            for n in range(per_device):
                client.number_command(key, float(n % 101))
            await client.device_info()  # the barrier
            await client.disconnect()

    began = time.perf_counter()
    await asyncio.gather(*(one(h, p) for h, p in hosts.values()))
    return time.perf_counter() - began


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--per-device", type=int, default=100)
    parser.add_argument("--no-cli", action="store_true", help="skip the whole-process drain")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each; the best counts")
    args = parser.parse_args()
    total = args.devices * args.per_device
    bares: list[float] = []
    engines: list[float] = []
    wholes: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with running(root, count=args.devices) as inventory:
            hosts = inventory_hosts(inventory)
            names = sorted(hosts)
            for n in range(max(1, args.repeat)):
                bares.append(asyncio.run(bare_loop(hosts, args.per_device)))
                journal = fresh_journal(root, f"j-engine-{n}", entries(names, args.per_device))
                engines.append(asyncio.run(engine_drain(journal, hosts)))
                states = journal.ledger().counts()
                if not args.no_cli:
                    journal = fresh_journal(root, f"j-cli-{n}", entries(names, args.per_device))
                    wholes.append(cli_drain(journal, inventory))
    bare, in_process = min(bares), min(engines)
    whole = min(wholes) if wholes else float("nan")
    shown = ", ".join(f"{name} {' '.join(f'{t:.3f}' for t in runs)}" for name, runs in
                      (("bare", bares), ("engine", engines), ("cmdctl", wholes)) if runs)
    print(f"runs (s): {shown}")
    print(f"{total} commands over {args.devices} devices, concurrency {CONCURRENCY}")
    print(f"best of {len(bares)} runs each")
    print(f"  bare aioesphomeapi loop (ceiling): {bare:6.2f} s  {total / bare:8.0f} commands/s")
    print(f"  engine drain, in process:          {in_process:6.2f} s  "
          f"{total / in_process:8.0f} commands/s")
    print(f"  `cmdctl drain`, whole process:     {whole:6.2f} s  {total / whole:8.0f} commands/s"
          f"  (target >= 2000/s)")
    print(f"  ratio to the ceiling: engine {bare / in_process:.2f}, cmdctl {bare / whole:.2f}")
    print(f"  journal after: { {k.value: v for k, v in states.items()} }")


if __name__ == "__main__":
    main()
