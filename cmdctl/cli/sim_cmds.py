"""`cmdctl simulate`: virtual ESPHome devices on 127.0.0.1 speaking the real native API."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cmdctl.cli.common import find_inventory, finish
from cmdctl.cli.options import InventoryOpt, QuietOpt
from cmdctl.core.errors import ExitCode, InputError

if TYPE_CHECKING:
    from cmdctl.simulator import Announcer, DeviceSpec, Fleet


def simulate(
    inventory: InventoryOpt = None,
    count: Annotated[
        int | None,
        typer.Option(
            "--count", "-n", help="Run N devices from a template instead of an inventory."
        ),
    ] = None,
    template: Annotated[
        str, typer.Option("--template", help="Template for --count (only 'venue': bar TVs).")
    ] = "venue",
    spec_file: Annotated[
        Path | None,
        typer.Option(
            "--spec", help="A simulator file of its own (devices and/or venue).", show_default=False
        ),
    ] = None,
    base_port: Annotated[
        int, typer.Option("--base-port", help="First port for --count devices (0: any free ports).")
    ] = 0,
    plaintext: Annotated[
        bool, typer.Option("--plaintext", help="--count devices without encryption keys.")
    ] = False,
    seed: Annotated[int, typer.Option("--seed", help="Seed for keys, MACs and faults.")] = 0,
    write_inventory: Annotated[
        Path | None,
        typer.Option(
            "--write-inventory",
            help="Write a devices.yml (and secrets.yaml beside it) pointing at these devices.",
            show_default=False,
        ),
    ] = None,
    record: Annotated[
        Path | None,
        typer.Option(
            "--record", help="Append every command received to this JSONL file.", show_default=False
        ),
    ] = None,
    mdns: Annotated[
        bool,
        typer.Option(
            "--mdns",
            help="Announce the devices over mDNS (_esphomelib._tcp) with firmware's TXT records,"
            " for `cmdctl devices discover`. Multicast reaches your whole network.",
        ),
    ] = False,
    quiet: QuietOpt = False,
) -> None:
    """Run virtual ESPHome devices in the foreground until Ctrl-C or SIGTERM.

    They speak the real native API (plaintext and Noise) on 127.0.0.1, so cmdctl and any
    aioesphomeapi client can be pointed at them.

    Example: cmdctl simulate --count 5 --write-inventory devices.yml
    """
    specs = _specs(inventory, count, template, spec_file, base_port, plaintext, seed)
    import asyncio

    code = asyncio.run(_serve(specs, write_inventory, record, quiet=quiet, mdns=mdns))
    finish(code)


def _specs(
    inventory: Path | None,
    count: int | None,
    template: str,
    spec_file: Path | None,
    base_port: int,
    plaintext: bool,
    seed: int,
) -> list[DeviceSpec]:
    from cmdctl import simulator
    from cmdctl.cli import simspec

    if count is not None:
        if template != "venue":
            raise InputError(
                f"unknown template {template!r}", hint="the built-in template is 'venue'"
            )
        if not 1 <= count <= 10_000:
            raise InputError(f"--count must be between 1 and 10000, got {count}")
        if base_port and not 1024 <= base_port <= 65535 - count:
            raise InputError(f"--base-port {base_port} leaves no room for {count} devices")
        return simulator.venue(count, base_port=base_port, encrypted=not plaintext, seed=seed)
    if spec_file is not None:
        if not spec_file.is_file():
            raise InputError(f"no such file: {spec_file}", file=str(spec_file))
        return simspec.load_spec_file(spec_file)
    from cmdctl.inputs import inventory as inv_mod

    path = find_inventory(inventory)
    inv = inv_mod.load_inventory(path)
    specs = [
        simspec.spec_from_block(
            device.name,
            host=device.host,
            port=device.port,
            psk=device.key.reveal() if device.key is not None else None,
            block=device.simulate,
            source=str(path),
        )
        for device in inv.devices
        if device.simulate is not None
    ]
    if not specs:
        raise InputError(
            "no device in the inventory has a `simulate:` block",
            file=str(path),
            hint="add `simulate: {template: tv}` to a device, or use --count N",
        )
    return specs


async def _serve(
    specs: list[DeviceSpec],
    write_to: Path | None,
    record: Path | None,
    *,
    quiet: bool,
    mdns: bool = False,
) -> ExitCode:
    import asyncio
    import signal

    from cmdctl.simulator import Fleet

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    fleet = Fleet(specs, record_path=record)
    try:
        await fleet.start()
    except OSError as err:
        raise InputError(f"cannot listen: {err}", hint="pick other ports (--base-port)") from err
    announcer: Announcer | None = None
    try:
        if mdns:
            from cmdctl.simulator import Announcer

            announcer = Announcer(fleet.devices)
            await announcer.start()
        if write_to is not None:
            from cmdctl.simulator import write_inventory

            try:
                write_to.parent.mkdir(parents=True, exist_ok=True)
                write_inventory(fleet.devices, write_to)
            except OSError as err:
                raise InputError(f"cannot write the inventory: {err}", file=str(write_to)) from err
        if not quiet:
            _print_fleet(fleet, write_to, record, mdns=mdns)
        await stop.wait()
    finally:
        if announcer is not None:
            await announcer.stop()  # goodbyes first, while the devices still listen
        await fleet.stop()
    return ExitCode.OK


def _print_fleet(
    fleet: Fleet, write_to: Path | None, record: Path | None, *, mdns: bool = False
) -> None:
    import sys

    from rich.table import Table

    from cmdctl.cli import render

    table = Table(box=None, pad_edge=False, title_justify="left")
    for col in ("device", "address", "encryption", "entities", "actions", "faults"):
        table.add_column(col)
    for d in fleet.devices[:50]:
        spec = d.spec
        faults = spec.faults.describe() if hasattr(spec.faults, "describe") else ""
        table.add_row(
            d.name,
            f"{spec.host}:{d.port}",
            "noise" if spec.psk else "plaintext",
            str(len(spec.entities)),
            str(len(spec.actions)),
            faults or "-",
        )
    render.stdout().print(table)
    if len(fleet.devices) > 50:
        render.line(f"… and {len(fleet.devices) - 50} more")
    render.line(f"{len(fleet.devices)} simulated devices listening; Ctrl-C to stop")
    if write_to is not None:
        render.line(f"inventory written to {write_to} (keys in {write_to.parent / 'secrets.yaml'})")
        render.line(f"try: cmdctl devices probe --inventory {write_to}")
    if record is not None:
        render.line(f"recording received commands to {record}")
    if mdns:
        render.line("announced over mDNS as _esphomelib._tcp; try: cmdctl devices discover")
    sys.stdout.flush()


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("simulate")(simulate)
