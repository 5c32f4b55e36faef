"""`cmdctl devices ls / probe / entities`: the inventory, who answers, and what each device exposes.

`devices discover` (mDNS) lives in discover_cmds.

`ls` reads only the inventory and the journal; `probe` and `entities` connect (aioesphomeapi is
imported inside them). Nothing here is ever queued.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from cmdctl.cli import views
from cmdctl.cli.common import finish, load_inventory, now, open_journal
from cmdctl.cli.options import (
    ConnectTimeoutOpt,
    InventoryOpt,
    JournalOpt,
    JsonOpt,
    QuietOpt,
)
from cmdctl.core.errors import ExitCode, InputError

if TYPE_CHECKING:
    from cmdctl.device.cache import CachedDevice, Summary
    from cmdctl.device.fleetview import Activity, DeviceEntities, EntityView, ProbeResult
    from cmdctl.inputs.inventory import Device, Inventory

devices_app = typer.Typer(
    name="devices",
    help="See the inventory, probe devices, list what a device exposes, discover new ones.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)

PatternArg = Annotated[
    str | None,
    typer.Argument(
        help="Devices: names, groups, globs; 'a,b' union, 'bar:&tvs' intersection, "
        "'all:!patio' exclusion [default: all].",
        show_default=False,
    ),
]


def _selected(inv: Inventory, pattern: str | None) -> tuple[Device, ...]:
    from cmdctl.inputs.selection import select

    if pattern is None:
        if not inv.devices:
            raise InputError(f"the inventory has no devices ({inv.path})")
        return inv.devices
    return select(inv, pattern)


def _memberships(inv: Inventory) -> dict[str, list[str]]:
    """device → every group it belongs to (through groups of groups too), `all` left out."""
    from cmdctl.inputs.inventory import ALL

    out: dict[str, list[str]] = {name: [] for name in inv.names}
    for group, members in inv.groups.items():
        if group == ALL:
            continue
        for name in members:
            out[name].append(group)
    return out


# -- ls ------------------------------------------------------------------------------------------


@devices_app.command("ls")
def ls(
    pattern: PatternArg = None,
    inventory: InventoryOpt = None,
    journal: JournalOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """List devices: address, encryption, groups, timeout, last seen, firmware, cached entities
    and last outcome.

    "Last seen" is when cmdctl last reached the device: it took a command (the journal) or a
    connection confirmed its entity cache. "Firmware" and "entities" come from the entity cache
    (the last listing; `-` before the first connection). "Last outcome" is the newest outcome
    recorded for it, failures included.

    Example: cmdctl devices ls 'bar:&tvs'
    """
    from cmdctl.cli import cachecheck, render
    from cmdctl.device import fleetview

    inv = load_inventory(inventory)
    chosen = _selected(inv, pattern)
    groups = _memberships(inv)
    names = {d.name for d in chosen}
    ledger = open_journal(journal).ledger()
    seen = fleetview.activity(e for e in ledger.entries() if (e.ran_on or e.device) in names)
    cached = cachecheck.summaries(names)
    rows = [_ls_json(d, groups[d.name], seen.get(d.name), cached.get(d.name)) for d in chosen]
    if json_out:
        render.emit_json(rows)
        finish(ExitCode.OK)
    if not quiet:
        for warning in inv.warnings:
            render.warn(warning)
    _ls_table(rows, t=now())
    finish(ExitCode.OK)


def _ls_json(
    device: Device, groups: list[str], act: Activity | None, cache: Summary | None
) -> dict[str, Any]:
    last = act.last if act is not None else None
    seen = [
        t
        for t in (act.last_seen if act else None, cache.seen_at if cache else None)
        if t is not None
    ]
    return {
        "name": device.name,
        "host": device.host,
        "port": device.port,
        "encrypted": device.key is not None,  # never the key itself
        "problem": device.problem,  # e.g. its `!secret` is missing: its commands fail
        "expected_name": device.expected_name,
        "expected_mac": device.expected_mac,
        "groups": groups,
        "timeout": device.timeout,
        "last_seen": max(seen) if seen else None,
        "firmware": cache.esphome_version or None if cache is not None else None,
        "cache": None
        if cache is None
        else {
            "entities": cache.entities,
            "actions": cache.actions,
            "esphome_version": cache.esphome_version,
            "compilation_time": cache.compilation_time,
            "taken_at": cache.taken_at,
            "seen_at": cache.seen_at,
        },
        "last": None
        if last is None
        else {
            "at": last.at,
            "entry": last.entry,
            "selector": last.selector,
            "state": last.state.value,
            "outcome": last.outcome,
            "error": last.error,
        },
    }


def _ls_table(rows: list[dict[str, Any]], *, t: float) -> None:
    from rich.table import Table

    from cmdctl.cli import render
    from cmdctl.core.timespec import format_age, format_duration

    table = Table(box=None, pad_edge=False)
    for col in (
        "device", "address", "encrypted", "groups", "timeout", "last seen", "firmware",
        "entities", "last outcome",
    ):  # fmt: skip
        table.add_column(col)
    for row in rows:
        last = row["last"]
        if last is None:
            outcome = "-"
        else:
            what = last["outcome"] or last["state"]
            if last["state"] == "pending":
                what = f"{what}, retry queued"
            elif last["state"] == "failed":
                what = f"failed ({what})"
            outcome = f"{what}: {last['selector']} {format_age(last['at'], now=t)}"
        table.add_row(
            row["name"],
            f"{row['host']}:{row['port']}",
            "key unusable" if row["problem"] else "yes" if row["encrypted"] else "no",
            ", ".join(row["groups"]) or "-",
            format_duration(row["timeout"]) if row["timeout"] is not None else "-",
            format_age(row["last_seen"], now=t) if row["last_seen"] is not None else "never",
            row["firmware"] or "-",
            _cached_text(row["cache"]),
            outcome,
        )
    render.stdout().print(table)


def _cached_text(cache: dict[str, Any] | None) -> str:
    if cache is None:
        return "-"
    actions = cache["actions"]
    return f"{cache['entities']}" + (f" +{actions} action{'s' * (actions != 1)}" if actions else "")


# -- probe ---------------------------------------------------------------------------------------


@devices_app.command("probe")
def probe(
    pattern: PatternArg = None,
    concurrency: Annotated[
        int,
        typer.Option("--concurrency", "-c", min=1, max=1024, help="Devices probed at once."),
    ] = 32,
    timeout: ConnectTimeoutOpt = "5s",
    inventory: InventoryOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Connect to each device at once and report: online, ESPHome version, latency, or why not.

    Never queued. Exit 0 when every device answered, 4 when any was unreachable, 1 when any
    refused us (wrong key, another device at that address).

    Example: cmdctl devices probe tvs --timeout 2s
    """
    import asyncio

    from cmdctl.cli import render
    from cmdctl.cli.exec_cmds import seconds
    from cmdctl.device import fleetview

    bound = seconds(timeout, "--timeout")
    inv = load_inventory(inventory)
    chosen = _selected(inv, pattern)
    console = render.stderr()
    live = console.is_terminal and not quiet and not json_out
    if live:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

        progress = Progress(
            TextColumn("probing"),
            BarColumn(),
            MofNCompleteColumn(),
            console=console,
            transient=True,
        )
        task = progress.add_task("probe", total=len(chosen))
        with progress:
            results = asyncio.run(
                fleetview.probe_fleet(
                    chosen,
                    concurrency=concurrency,
                    connect_timeout=bound,
                    on_result=lambda _r: progress.advance(task),
                )
            )
    else:
        results = asyncio.run(
            fleetview.probe_fleet(chosen, concurrency=concurrency, connect_timeout=bound)
        )
    code = fleetview.probe_exit_code(results)
    if json_out:
        render.emit_json(
            {
                "devices": [_probe_json(r) for r in results],
                "totals": _probe_totals(results),
                "exit_code": int(code),
            }
        )
    elif not quiet:
        _probe_table(results)
    if not quiet:
        totals = _probe_totals(results)
        render.info(
            f"probed {len(results)} device{'s' if len(results) != 1 else ''}: "
            + ", ".join(f"{n} {status}" for status, n in totals.items() if n)
        )
    for r in results:
        if r.error is not None:
            console.print(f"cmdctl: {r.error.one_line()}", markup=False)
    finish(code)


def _probe_totals(results: list[ProbeResult]) -> dict[str, int]:
    from cmdctl.device import fleetview

    totals = {"online": 0, "offline": 0, "rejected": 0}
    for r in results:
        totals[fleetview.probe_status(r)] += 1
    return totals


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value * 1000, 1)


def _probe_json(r: ProbeResult) -> dict[str, Any]:
    from cmdctl.device import fleetview

    return {
        "device": r.device,
        "status": fleetview.probe_status(r),
        "name": r.name or None,
        "friendly_name": r.friendly_name or None,
        "mac_address": r.mac_address or None,
        "esphome_version": r.esphome_version or None,
        "model": r.model or None,
        "api_version": r.api_version or None,
        "encrypted": r.encrypted,
        "entities": r.entities if r.ok else None,
        "connect_ms": _ms(r.connect_seconds),
        "latency_ms": _ms(r.rtt_seconds),
        "error": fleetview.describe_error(r.error),
    }


def _probe_table(results: list[ProbeResult]) -> None:
    from rich.table import Table

    from cmdctl.cli import render
    from cmdctl.device import fleetview

    table = Table(box=None, pad_edge=False)
    for col in ("device", "status", "esphome", "name", "mac", "connect", "latency", "error"):
        table.add_column(col, justify="right" if col in ("connect", "latency") else "left")
    for r in results:
        connect, rtt = _ms(r.connect_seconds), _ms(r.rtt_seconds)
        table.add_row(
            r.device,
            fleetview.probe_status(r),
            r.esphome_version or "-",
            r.name or "-",
            r.mac_address or "-",
            f"{connect:.0f}ms" if connect is not None else "-",
            f"{rtt:.1f}ms" if rtt is not None else "-",
            r.error.reason if r.error is not None else "",
        )
    render.stdout().print(table)


# -- entities ------------------------------------------------------------------------------------


@devices_app.command("entities")
def entities(
    device: Annotated[str, typer.Argument(help="The device's inventory name.")],
    cached: Annotated[
        bool,
        typer.Option(
            "--cached", help="From the entity cache (works offline; no states, nothing sent)."
        ),
    ] = False,
    inventory: InventoryOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """List a device's entities and actions with the selectors to use in playbooks, and states.

    With --cached: the list as the device last gave it (from the entity cache), while it is away.

    Example: cmdctl devices entities bar-tv-3
    """
    from cmdctl.cli import render

    inv = load_inventory(inventory)
    address = inv.device(device)
    cache: CachedDevice | None = None
    if cached:
        from cmdctl.cli.cachecheck import cached_device
        from cmdctl.device.cache import listing as cached_listing

        cache = cached_device(address.name)
        listing = cached_listing(cache)
    else:
        import asyncio

        from cmdctl.device import fleetview

        listing = asyncio.run(fleetview.inspect(address))
    if json_out:
        render.emit_json(_entities_json(listing, cache))
        finish(ExitCode.OK)
    if not quiet:
        render.info(
            f"{listing.device}: '{listing.friendly_name or listing.name}', ESPHome "
            f"{listing.esphome_version}, "
            f"{views.plural(len(listing.entities), 'entity', 'entities')}, "
            f"{views.plural(len(listing.actions), 'action')}"
            + (_cached_note(cache) if cache else "")
        )
    _entities_table(listing, states=cache is None)
    finish(ExitCode.OK)


def _cached_note(cache: CachedDevice) -> str:
    from cmdctl.core.timespec import format_age

    built = f", built {cache.compilation_time}" if cache.compilation_time else ""
    return f" (cached{built}; last confirmed {format_age(cache.seen_at, now=now())}; no states)"


def _entities_json(listing: DeviceEntities, cache: CachedDevice | None = None) -> dict[str, Any]:
    def one(v: EntityView) -> dict[str, Any]:
        out: dict[str, Any] = {"selector": v.selector, "domain": v.domain, "name": v.name}
        out.update(v.facts)
        out["details"] = v.details
        if v.domain != "action" and cache is None:
            out["state"] = v.state
        return out

    cached = None
    if cache is not None:
        cached = {
            "path": str(cache.path),
            "compilation_time": cache.compilation_time,
            "taken_at": cache.taken_at,
            "seen_at": cache.seen_at,
        }
    return {
        "cached": cached,
        "device": listing.device,
        "name": listing.name,
        "friendly_name": listing.friendly_name,
        "esphome_version": listing.esphome_version,
        "mac_address": listing.mac_address,
        "entities": [one(v) for v in listing.entities],
        "actions": [one(v) for v in listing.actions],
    }


def _state_text(v: EntityView) -> str:
    import json

    if v.domain in ("button", "event"):
        return ""
    if not v.has_state:
        return "unknown"
    if isinstance(v.state, bool):
        return "on" if v.state else "off"
    if isinstance(v.state, dict):
        parts = []
        for key, value in v.state.items():
            if isinstance(value, bool):
                value = "on" if value else "off"
            elif not isinstance(value, str):
                value = json.dumps(value)
            parts.append(value if key == "state" else f"{key} {value}")
        return ", ".join(parts)
    if isinstance(v.state, float):
        return f"{v.state:g}"
    return str(v.state) if v.state != "" else "''"


def _entities_table(listing: DeviceEntities, *, states: bool = True) -> None:
    from rich.table import Table

    from cmdctl.cli import render

    table = Table(box=None, pad_edge=False)
    for col in ("selector", "name", "state", "details"):
        if states or col != "state":
            table.add_column(col)
    for v in listing.entities:
        state = (_state_text(v),) if states else ()
        table.add_row(v.selector, v.name, *state, v.details)
    for v in listing.actions:
        table.add_row(v.selector, "", *(("",) if states else ()), v.details)
    render.stdout().print(table)


def register(app: typer.Typer) -> None:
    """Add the `devices` group to the app."""
    from cmdctl.cli import discover_cmds

    devices_app.command("discover")(discover_cmds.discover)
    app.add_typer(devices_app, name="devices")
