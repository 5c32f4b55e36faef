"""Commands per second the simulator receives from many real clients at once.

A child process runs 100 venue TVs; this process runs 100 real aioesphomeapi clients, one per
device, all sending at the same time: bursts of switch / number / select commands, each burst
followed by `device_info()` as a delivery barrier. The rate is what the simulator recorded:
commands received / (last - first receive time); the client-side wall time is printed as well.
Target: >= 20,000 commands/s, so the simulator is never the bottleneck when cmdctl is measured.

    python bench/sim_throughput.py [--devices 100] [--per-client 2000] [--burst 200] [--noise]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

CLIENT_TIMEOUT = 120.0  # one client's whole run on a busy 2-core box
TARGET_RATE = 20_000


async def serve(devices: int, encrypted: bool) -> None:
    """Child: run the fleet; when stdin closes, print what it received."""
    from cmdctl.simulator import Fleet, venue

    async with Fleet(venue(devices, encrypted=encrypted)) as fleet:
        ready = [(d.name, d.port, d.spec.psk) for d in fleet.devices]
        print(json.dumps(ready), flush=True)
        loop = asyncio.get_running_loop()
        cpu_before = time.process_time()
        await loop.run_in_executor(None, sys.stdin.read)
        commands = fleet.recorder.commands
        report = {
            "commands": len(commands),
            "first": commands[0].ts if commands else 0.0,
            "last": commands[-1].ts if commands else 0.0,
            "accepted": sum(1 for c in commands if c.accepted),
            "cpu_s": time.process_time() - cpu_before,
        }
    print(json.dumps(report), flush=True)


async def client(
    name: str, port: int, psk: str | None, per_client: int, burst: int, start: asyncio.Barrier
) -> int:
    """One device's client: connect, wait for the start, send, barrier after every burst."""
    from aioesphomeapi import APIClient

    async with asyncio.timeout(CLIENT_TIMEOUT):
        cli = APIClient("127.0.0.1", port, None, noise_psk=psk, expected_name=name)
        await cli.connect(login=True, log_errors=False)
        _, entities, _ = await cli.device_info_and_list_entities()
        keys = {e.object_id: e.key for e in entities}
        power, volume, source = keys["tv_power"], keys["volume"], keys["input"]
        options = ("HDMI 1", "HDMI 2", "Cable")
        await start.wait()  # every client is connected and has listed its entities
        sent = 0
        while sent < per_client:
            for i in range(sent, min(per_client, sent + burst)):
                kind = i % 3
                if kind == 0:
                    cli.switch_command(power, i % 2 == 0)
                elif kind == 1:
                    cli.number_command(volume, float(i % 101))
                else:
                    cli.select_command(source, options[i % 3])
            sent = min(per_client, sent + burst)
            await cli.device_info()  # barrier: the device has handled everything sent so far
        await cli.disconnect()
        return sent


async def main(devices: int, per_client: int, burst: int, encrypted: bool) -> int:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--serve",
        "--devices",
        str(devices),
        *(["--noise"] if encrypted else []),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert child.stdout is not None and child.stdin is not None
    targets = json.loads(await child.stdout.readline())
    start = asyncio.Barrier(len(targets) + 1)
    tasks = [asyncio.create_task(client(*t, per_client, burst, start)) for t in targets]
    async with asyncio.timeout(CLIENT_TIMEOUT):
        await start.wait()
    started = time.perf_counter()
    sent = sum(await asyncio.gather(*tasks))
    wall = time.perf_counter() - started
    child.stdin.close()
    report = json.loads(await child.stdout.readline())
    await child.wait()
    span = report["last"] - report["first"]
    rate = report["commands"] / span if span > 0 else float("inf")
    mode = "Noise" if encrypted else "plaintext"
    print(
        f"devices / concurrent clients : {devices} / {devices} ({mode}, clients in another process)"
    )
    print(
        f"commands sent / received     : {sent} / {report['commands']} "
        f"({report['accepted']} accepted)"
    )
    print(
        f"simulator receive rate       : {rate:,.0f} commands/s "
        f"(over {span:.2f} s between first and last)"
    )
    print(
        f"client wall time             : {wall:.2f} s -> {sent / wall:,.0f} commands/s end "
        "to end, barriers included"
    )
    print(
        f"simulator CPU while serving  : {report['cpu_s']:.2f} s "
        f"({report['commands'] / max(report['cpu_s'], 1e-9):,.0f} commands per CPU-second; "
        f"busy {report['cpu_s'] / max(wall, 1e-9):.0%} of the wall time)"
    )
    print(
        f"target                       : >= {TARGET_RATE:,} commands/s -> "
        f"{'MET' if rate >= TARGET_RATE else 'NOT MET'}"
    )
    return 0 if report["commands"] == sent and rate >= TARGET_RATE else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=100)
    parser.add_argument("--per-client", type=int, default=2000)
    parser.add_argument("--burst", type=int, default=200)
    parser.add_argument("--noise", action="store_true")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve(args.devices, args.noise))
    else:
        sys.exit(asyncio.run(main(args.devices, args.per_client, args.burst, args.noise)))
