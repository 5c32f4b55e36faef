"""`cmdctl demo`: a simulated venue, the bundled playbook, the real bulk + drain, in one command."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cmdctl.cli import views
from cmdctl.cli.common import finish, now, who
from cmdctl.core.errors import ExitCode, InputError

if TYPE_CHECKING:
    from cmdctl.drain.totals import Totals
    from cmdctl.simulator import DeviceSpec

#: The playbook `demo` runs; the same file as playbooks/game-night.yml (a test keeps them equal).
BUNDLED_PLAYBOOK = Path(__file__).resolve().parent.parent / "data" / "game-night.yml"


@dataclass(frozen=True, slots=True)
class Staging:
    """Which simulated devices misbehave on purpose, and how."""

    flaky: tuple[str, ...]
    offline: tuple[str, ...]


def demo(
    devices: Annotated[
        int, typer.Option("--devices", min=3, max=200, help="How many bar TVs to simulate.")
    ] = 24,
    keep: Annotated[
        Path | None,
        typer.Option(
            "--keep",
            help="Leave the inventory, journal and playbook in this (new or empty) directory.",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="Seed for keys and faults.")] = 2,
) -> None:
    """Show cmdctl's real job on a simulated venue: no hardware, no configuration.

    Starts virtual bar TVs on 127.0.0.1 (two flaky, one offline), queues the bundled
    game-night playbook with `bulk`, runs it with `drain` (progress bars, retries), and shows
    the outcome table and `status`.

    Example: cmdctl demo --keep ./venue
    """
    import asyncio

    from cmdctl.cli import render

    workdir, temporary = _workdir(keep)
    try:
        code = asyncio.run(_demo(workdir, devices, seed))
    finally:
        if temporary:
            shutil.rmtree(workdir, ignore_errors=True)
    if keep is not None:
        render.line("")
        render.line(f"kept in {workdir}: devices.yml, secrets.yaml, game-night.yml, journal/")
        render.line(
            f"explore: export CMDCTL_HOME={workdir / 'journal'} "
            f"CMDCTL_INVENTORY={workdir / 'devices.yml'}; cmdctl history; cmdctl queue ls"
        )
        render.line(
            f"(the simulated devices stopped with the demo; `cmdctl simulate --inventory "
            f"{workdir / 'devices.yml'}` is not needed to look around)"
        )
    finish(code)


def _workdir(keep: Path | None) -> tuple[Path, bool]:
    if keep is None:
        return Path(tempfile.mkdtemp(prefix="cmdctl-demo-")), True
    if keep.exists() and (not keep.is_dir() or any(keep.iterdir())):
        raise InputError(f"--keep {keep}: not an empty directory", hint="give a new directory")
    keep.mkdir(parents=True, exist_ok=True)
    return keep.resolve(), False


def _venue(count: int, seed: int) -> tuple[list[DeviceSpec], Staging]:
    from cmdctl.simulator import FaultSpec, venue

    specs = venue(count, encrypted=True, seed=seed)
    # Spread the misbehaving ones through the venue, the way real trouble turns up.
    flaky = (specs[count // 3].name, specs[(2 * count) // 3].name)
    offline = (specs[-2].name,)
    staged = []
    for spec in specs:
        if spec.name in flaky:
            # Drops a connection now and then (seeded, so every demo run is the same story).
            spec = replace(spec, faults=FaultSpec(drop_probability=0.06, latency=0.02, jitter=0.03))
        elif spec.name in offline:
            # A real port that nothing listens on: connections are refused, as for a TV unplugged.
            spec = replace(spec, port=_unused_port(), faults=FaultSpec(offline=True))
        else:
            spec = replace(spec, faults=FaultSpec(latency=0.005, jitter=0.02))
        staged.append(spec)
    return staged, Staging(flaky, offline)


def _unused_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def _demo(workdir: Path, count: int, seed: int) -> ExitCode:
    from cmdctl.cli import exec_cmds, progress, render
    from cmdctl.core.ids import IdFactory
    from cmdctl.drain import direct, loops
    from cmdctl.drain.options import DrainOptions
    from cmdctl.inputs import inventory, playbook
    from cmdctl.journal import events
    from cmdctl.journal.store import Journal
    from cmdctl.simulator import Fleet, write_inventory

    specs, staging = _venue(count, seed)
    out = render.stdout()
    out.rule(f"cmdctl demo: a venue of {count} simulated bar TVs", style="bold")
    render.line(
        f"{count} virtual ESPHome devices on 127.0.0.1 (Noise encryption, the real wire "
        f"protocol); staged trouble: {', '.join(staging.flaky)} flaky, "
        f"{', '.join(staging.offline)} offline"
    )
    async with Fleet(specs, record_path=workdir / "received.jsonl") as fleet:
        inv_path = workdir / "devices.yml"
        write_inventory(fleet.devices, inv_path)
        pb_path = workdir / "game-night.yml"
        shutil.copyfile(BUNDLED_PLAYBOOK, pb_path)
        inv = inventory.load_inventory(inv_path)
        pb = playbook.load_playbook(pb_path)
        plan = playbook.expand(pb, inv, now=now(), ids=IdFactory().new, who=who(), at="now")
        journal = Journal(workdir / "journal")
        lookup = inv.by_name.get

        render.line("")
        render.line(f"$ cmdctl bulk game-night.yml   # {pb.name}: {len(pb.steps)} steps")
        imm_totals: Totals | None = None
        if plan.immediate:
            observer, view = exec_cmds._observer(False, False, "immediate: identify")
            with view:
                imm_totals = await direct.run_immediate(
                    journal, lookup, plan.immediate, observer=observer
                )
            exec_cmds.report("immediate steps", imm_totals, json_out=False, quiet=False, tty=False)
        journal.append([events.queued(e) for e in plan.queued])
        render.line(
            f"queued batch {plan.batch}: {views.spread(plan.queued)}, one durable write"
        )

        render.line("")
        render.line("$ cmdctl drain")
        options = DrainOptions(concurrency=32)
        observer, view = exec_cmds._observer(False, False, "drain")
        with view:
            totals = await loops.drain(journal, lookup, options, observer=observer)
        out.print(progress.recap_table(totals, out.width))
        render.line(progress.summary_line("drain", totals))
        for line in progress.failure_lines(totals):
            render.line(line)

    render.line("")
    render.line("$ cmdctl status")
    _show_status(journal)
    render.line("")
    render.line("Point cmdctl at your own devices:")
    render.line("  1. cmdctl inventory import ~/esphome     # your ESPHome configuration folder")
    render.line("  2. cmdctl devices discover --merge devices.yml   # addresses on this network")
    render.line("  3. cmdctl devices probe                  # reachable, right key, right device?")
    render.line("  4. cmdctl bulk my-playbook.yml && cmdctl drain")
    render.line("     cron: */5 * * * * cmdctl drain --max-time 240 --quiet")
    return _verdict(totals, staging)


def _show_status(journal: object) -> None:
    from cmdctl.cli import views
    from cmdctl.journal import summary
    from cmdctl.journal.store import Journal

    assert isinstance(journal, Journal)
    scan, ledger = journal.load()
    st = summary.status(ledger, now=now(), damaged_lines=len(scan.damaged))
    views.print_status(st, events=scan.committed, path=str(journal.path))


def _verdict(totals: Totals, staging: Staging) -> ExitCode:
    """The demo succeeded when everything not staged to fail ended done."""
    staged = set(staging.offline)
    for device, tally in totals.devices.items():
        if device in staged:
            continue
        if not tally.ok:
            return totals.exit_code()
    return ExitCode.OK


def register(app: typer.Typer) -> None:
    """Add `demo` to the app."""
    app.command("demo")(demo)
