"""`cmdctl devices discover`: ESPHome devices announced over mDNS, against the inventory.

Browsing is `cmdctl.device.discovery`; editing the inventory is `cmdctl.inputs.inventory_edit`;
this module only checks the arguments, joins the two and prints.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cmdctl.cli.common import finish
from cmdctl.cli.options import InventoryOpt, JsonOpt, QuietOpt
from cmdctl.core.errors import ExitCode, InputError

if TYPE_CHECKING:
    from cmdctl.device.discovery import Discovery, KnownDevice, Relation
    from cmdctl.inputs.inventory import Device, Inventory
    from cmdctl.inputs.inventory_edit import Change

MAX_BROWSE = 300.0  # seconds; a device announces at boot and answers queries, so 3 s is plenty


def discover(
    timeout: Annotated[
        str,
        typer.Option(
            "--timeout",
            "-t",
            help="How long to listen (e.g. 3s). Under 2s can miss devices: one that answered "
            "someone else in the last second waits a second before answering again.",
        ),
    ] = "3s",
    merge: Annotated[
        Path | None,
        typer.Option(
            "--merge",
            help="Add the new devices to this inventory and fix the moved ones' host/port "
            "(created if missing; keys are never written).",
            show_default=False,
        ),
    ] = None,
    inventory: InventoryOpt = None,
    json_out: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Find ESPHome devices on this network by mDNS and compare them with the inventory.

    Each device announced as _esphomelib._tcp is listed with its address, MAC, ESPHome version,
    board and encryption, and as known, moved (the inventory has another address or port: DHCP
    moved it) or new. --merge FILE adds the new ones and fixes the moved ones in FILE, keeping
    everything else in it as written. Exit 0 (also when nothing answers), 2 on bad input.

    Example: cmdctl devices discover --merge devices.yml
    """
    import asyncio

    from cmdctl.cli.exec_cmds import seconds
    from cmdctl.device import discovery

    duration = seconds(timeout, "--timeout")
    if duration > MAX_BROWSE:
        raise InputError(f"--timeout: at most {MAX_BROWSE:.0f}s, got {timeout!r}")
    path, inv, original = _inventory(inventory, merge)
    known = [_known(d) for d in inv.devices] if inv is not None else []

    async def run() -> tuple[Discovery, dict[str, tuple[str, ...]]]:
        found = await discovery.browse(duration)
        resolved = await discovery.lookup_hosts(d.host for d in known)
        return found, resolved

    found, resolved = asyncio.run(run())
    relations = discovery.relate(found.found, known, resolved)
    matched = {r.device.name for r in relations if r.device is not None}
    not_seen = [d.name for d in known if d.name not in matched]
    changes: tuple[Change, ...] = ()
    written = False
    if merge is not None:
        changes, written = _merge(merge, original, inv, relations)
    if json_out:
        from cmdctl.cli import render

        render.emit_json(
            {
                "inventory": str(path) if path is not None else None,
                "devices": [_json(r) for r in relations],
                "not_seen": not_seen,
                "unanswered": list(found.unanswered),
                "merge": None
                if merge is None
                else {
                    "file": str(merge),
                    "written": written,
                    "changes": [
                        {"device": c.device, "action": c.action, "detail": c.detail}
                        for c in changes
                    ],
                },
            }
        )
    elif relations:
        _table(relations)
    if not quiet:
        _report(relations, found, not_seen, path, inv, duration, merge, changes, written)
    finish(ExitCode.OK)


def _inventory(
    explicit: Path | None, merge: Path | None
) -> tuple[Path | None, Inventory | None, str]:
    """The inventory to compare with (None when there is none yet) and its text for --merge."""
    from cmdctl.inputs import inventory as inv_mod

    cwd = Path.cwd()
    if merge is not None:
        merge = merge if merge.is_absolute() else cwd / merge
        other = None if explicit is None else explicit if explicit.is_absolute() else cwd / explicit
        if other is not None and other != merge:
            raise InputError(
                "--merge and --inventory name different files",
                hint="--merge FILE compares with FILE and edits it; drop --inventory",
            )
        if merge.is_dir():
            raise InputError(
                "--merge: this is a directory", file=str(merge), hint="name the inventory file"
            )
        if not merge.parent.is_dir():
            raise InputError("--merge: its directory does not exist", file=str(merge))
        if not merge.exists():
            return merge, None, ""
        try:
            text = merge.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise InputError(f"--merge: cannot read {merge}: {err}", file=str(merge)) from err
        return merge, inv_mod.load_inventory(merge), text
    if explicit is None and not os.environ.get(inv_mod.INVENTORY_ENV):
        default = cwd / inv_mod.INVENTORY_FILE
        if not default.is_file():
            return None, None, ""  # nothing known yet: every device is new
    path = inv_mod.find_inventory(explicit, os.environ, cwd)
    return path, inv_mod.load_inventory(path), ""


def _known(device: Device) -> KnownDevice:
    from cmdctl.device.discovery import KnownDevice

    return KnownDevice(
        device.name, device.host, device.port, device.expected_name, device.expected_mac
    )


def _merge(
    path: Path, original: str, inv: Inventory | None, relations: list[Relation]
) -> tuple[tuple[Change, ...], bool]:
    from cmdctl.device.discovery import Encryption, Status
    from cmdctl.inputs import inventory_edit

    path = path if path.is_absolute() else Path.cwd() / path
    moves = [
        inventory_edit.Move(r.device.name, host=r.host, port=r.port)
        for r in relations
        if r.status is Status.MOVED and r.device is not None
    ]
    additions = [
        inventory_edit.Addition(
            r.found.name,
            r.found.address,
            r.found.port,
            expected_name=r.found.name,
            expected_mac=r.found.mac,
            comment=_needs_key(r.found.name) if r.found.encryption is Encryption.REQUIRED else None,
        )
        for r in relations
        if r.status is Status.NEW
    ]
    taken = frozenset(inv.groups) | frozenset(inv.names) if inv is not None else frozenset()
    edit = inventory_edit.plan(original, path, additions, moves, taken=taken)
    if edit.text == edit.original:
        return edit.changes, False
    inventory_edit.apply(path, edit)
    return edit.changes, True


def _needs_key(name: str) -> str:
    secret = "".join(c if c.isalnum() else "_" for c in name) + "_key"
    return f"it requires encryption: add `key: !secret {secret}` (or run cmdctl inventory import)"


def _mac(mac: str | None) -> str | None:
    return None if mac is None else ":".join(mac[i : i + 2] for i in range(0, 12, 2))


def _json(r: Relation) -> dict[str, Any]:
    a = r.found
    return {
        "name": a.name,
        "friendly_name": a.friendly_name,
        "address": a.address,
        "addresses": list(a.addresses),
        "host": a.host,
        "port": a.port,
        "mac": _mac(a.mac),
        "esphome_version": a.version,
        "platform": a.platform,
        "board": a.board,
        "network": a.network,
        "encryption": a.encryption.value,
        "txt": dict(a.txt),
        "inventory": {
            "status": r.status.value,
            "device": r.device.name if r.device is not None else None,
            "matched_by": r.matched_by,
            "host": r.device.host if r.device is not None else None,
            "port": r.device.port if r.device is not None else None,
            "new_host": r.host,
            "new_port": r.port,
        },
    }


def _status_text(r: Relation) -> str:
    from cmdctl.device.discovery import Status

    if r.device is None:
        return "new"
    alias = f" as {r.device.name}" if r.device.name != r.found.name else ""
    if r.status is Status.KNOWN:
        return f"known{alias}"
    return f"moved{alias}: inventory has {r.device.host}:{r.device.port}"


def _table(relations: list[Relation]) -> None:
    from rich.table import Table

    from cmdctl.cli import render

    table = Table(box=None, pad_edge=False)
    for col in (
        "device",
        "friendly name",
        "address",
        "mac",
        "esphome",
        "platform",
        "encryption",
        "inventory",
    ):
        table.add_column(col)
    for r in relations:
        a = r.found
        board = "/".join(x for x in (a.platform, a.board) if x) or "-"
        table.add_row(
            a.name,
            a.friendly_name or "-",
            f"{a.address}:{a.port}",
            _mac(a.mac) or "-",
            a.version or "-",
            board,
            a.encryption.value,
            _status_text(r),
        )
    render.stdout().print(table)


def _report(
    relations: list[Relation],
    found: Discovery,
    not_seen: list[str],
    path: Path | None,
    inv: Inventory | None,
    duration: float,
    merge: Path | None,
    changes: tuple[Change, ...],
    written: bool,
) -> None:
    from cmdctl.cli import render
    from cmdctl.core.timespec import format_duration
    from cmdctl.device.discovery import Status

    counts = {s: sum(1 for r in relations if r.status is s) for s in Status}
    n = len(relations)
    if n == 0:
        render.info(
            f"no ESPHome device answered in {format_duration(duration)} "
            "(mDNS stays on this network segment: not across routers or VLANs)"
        )
    else:
        render.info(
            f"found {n} ESPHome device{'s' if n != 1 else ''} in {format_duration(duration)}: "
            + ", ".join(f"{counts[s]} {s.value}" for s in Status)
        )
    for name in found.unanswered:
        render.warn(f"{name} announced itself but did not answer a query; not listed")
    if path is None and n:
        render.info("no inventory yet (./devices.yml): every device is new")
    elif inv is None and n:
        render.info(f"{path} does not exist yet: every device is new")
    if not_seen:
        more = f" and {len(not_seen) - 10} more" if len(not_seen) > 10 else ""
        shown = ", ".join(not_seen[:10]) + more
        render.info(f"in the inventory but not announced: {shown}")
    if merge is None:
        todo = [
            what
            for what, n in (
                ("add the new devices", counts[Status.NEW]),
                ("fix the moved ones", counts[Status.MOVED]),
            )
            if n
        ]
        if todo:
            target = path if path is not None else Path("devices.yml")
            render.info(f"to {' and '.join(todo)}: cmdctl devices discover --merge {target}")
        return
    for c in changes:
        render.info(f"{merge}: {c.action} {c.device}: {c.detail}")
    if not written:
        render.info(f"{merge}: nothing to change")
