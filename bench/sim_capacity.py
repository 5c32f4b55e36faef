"""How many idle virtual devices one simulator process holds, and do they all answer?

Starts N venue TVs (default 500, Noise) in a child process, reports the child's RSS growth per
idle device, then connects to every device with the real aioesphomeapi client (100 at a time):
hello, device_info_and_list_entities, one switch command, disconnect. The child confirms it
received exactly one command per device.

    python bench/sim_capacity.py [--count 500] [--plaintext]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from pathlib import Path

CONNECT_CONCURRENCY = 100  # clients in flight at once
CLIENT_TIMEOUT = 30.0  # per device: connect + list + command + disconnect on a busy 2-core box


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def _raise_fd_limit() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def serve(count: int, encrypted: bool) -> None:
    """Child: run the fleet, report ports and memory, report the record when stdin closes."""
    import gc

    from cmdctl.simulator import Fleet, venue

    _raise_fd_limit()
    gc.collect()
    before = _rss_kib()  # specs, device objects, entities and listeners all count
    fleet = Fleet(venue(count, encrypted=encrypted))
    await fleet.start()
    gc.collect()
    after = _rss_kib()
    ready = {
        "rss_before_kib": before,
        "rss_after_kib": after,
        "devices": [(d.name, d.port, d.spec.psk) for d in fleet.devices],
    }
    print(json.dumps(ready), flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # parent closes stdin when done
    gc.collect()
    per_device = {d.name: len(d.received) for d in fleet.devices}
    report = {
        "commands": sum(per_device.values()),
        "devices_with_one_command": sum(1 for n in per_device.values() if n == 1),
        "rss_end_kib": _rss_kib(),
        "max_open": max(e.open_connections for e in fleet.recorder.connections),
    }
    await fleet.stop()
    print(json.dumps(report), flush=True)


async def probe(name: str, port: int, psk: str | None) -> float:
    """Client: one full session; seconds taken."""
    from aioesphomeapi import APIClient

    started = time.perf_counter()
    async with asyncio.timeout(CLIENT_TIMEOUT):
        cli = APIClient("127.0.0.1", port, None, noise_psk=psk, expected_name=name)
        await cli.connect(login=True, log_errors=False)
        _, entities, _ = await cli.device_info_and_list_entities()
        power = next(e for e in entities if e.object_id == "tv_power")
        cli.switch_command(power.key, True)
        await cli.disconnect()
    return time.perf_counter() - started


async def main(count: int, encrypted: bool) -> int:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--serve",
        "--count",
        str(count),
        *([] if encrypted else ["--plaintext"]),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None and child.stdin is not None
    ready = json.loads(await child.stdout.readline())
    devices = ready["devices"]
    idle_kib = ready["rss_after_kib"] - ready["rss_before_kib"]
    _raise_fd_limit()
    sem = asyncio.Semaphore(CONNECT_CONCURRENCY)
    failures: list[str] = []

    async def one(name: str, port: int, psk: str | None) -> float:
        async with sem:
            try:
                return await probe(name, port, psk)
            except Exception as err:  # report every failure, keep probing the rest
                failures.append(f"{name}: {type(err).__name__}: {err}")
                return float("nan")

    started = time.perf_counter()
    times = await asyncio.gather(*(one(*d) for d in devices))
    wall = time.perf_counter() - started
    child.stdin.close()
    report = json.loads(await child.stdout.readline())
    await child.wait()
    ok = sorted(t for t in times if t == t)
    mode = "Noise" if encrypted else "plaintext"
    print(f"{f'virtual devices ({mode})':<29}: {count} in one process")
    print(f"simulator RSS before start   : {ready['rss_before_kib'] / 1024:.1f} MiB")
    print(f"simulator RSS, all idle      : {ready['rss_after_kib'] / 1024:.1f} MiB")
    print(f"memory per idle device       : {idle_kib / count:.1f} KiB (RSS delta / {count})")
    print(
        f"devices that answered        : {len(ok)}/{count} "
        f"(hello + device info + list entities + command + disconnect)"
    )
    print(
        f"commands the simulator saw   : {report['commands']} "
        f"({report['devices_with_one_command']} devices with exactly one)"
    )
    print(
        f"session time p50 / p95 / max : {ok[len(ok) // 2] * 1000:.0f} / "
        f"{ok[int(len(ok) * 0.95)] * 1000:.0f} / {ok[-1] * 1000:.0f} ms "
        f"({CONNECT_CONCURRENCY} clients in flight)"
    )
    print(f"{f'all {count} sessions took':<29}: {wall:.2f} s")
    print(f"max connections on one device: {report['max_open']}")
    print(f"simulator RSS at the end     : {report['rss_end_kib'] / 1024:.1f} MiB")
    for line in failures[:10]:
        print("FAILED", line)
    return 0 if not failures and report["devices_with_one_command"] == count else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500)
    parser.add_argument("--plaintext", action="store_true")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.count, not args.plaintext))
    else:
        sys.exit(asyncio.run(main(args.count, not args.plaintext)))
