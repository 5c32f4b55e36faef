"""`cmdctl scene save`: what the selected devices show now, written as a playbook that puts it
back (`cmdctl bulk FILE`).

Reading the devices is `Fleet.scene` (the device wing's `scene`), the playbook text is
`Scene.playbook()`; this module writes the file (atomically, never over an existing one unless
`--force`), reports the devices that could not be read and picks the exit code.
"""

from __future__ import annotations

import errno
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cmdctl.cli.common import finish, open_fleet
from cmdctl.cli.options import ConnectTimeoutOpt, InventoryOpt, QuietOpt
from cmdctl.core.errors import ExitCode, InputError

if TYPE_CHECKING:
    from cmdctl.api.scene import Scene

#: A new scene file's permission bits: a playbook holds no secret (password texts and lock
#: codes are never saved), and others who run the venue may read it.
FILE_MODE = 0o644

scene_app = typer.Typer(
    name="scene",
    help="Save what devices show now as a playbook that puts it back.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@scene_app.command("save")
def save(
    pattern: Annotated[
        str,
        typer.Argument(
            help="Devices: names, groups, globs; 'a,b' union, 'bar:&tvs' intersection, "
            "'all:!patio' exclusion.",
            show_default=False,
        ),
    ],
    output: Annotated[
        str,
        typer.Option(
            "--output",
            "-o",
            help="Playbook file to write; '-' for stdout.",
            show_default=False,
            metavar="<path>",
        ),
    ],
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Replace the file if it exists.")
    ] = False,
    concurrency: Annotated[
        int,
        typer.Option("--concurrency", "-c", min=1, max=1024, help="Devices read at once."),
    ] = 32,
    timeout: ConnectTimeoutOpt = "5s",
    inventory: InventoryOpt = None,
    quiet: QuietOpt = False,
) -> None:
    """Save the current state of devices as a playbook; `cmdctl bulk FILE` puts it back.

    Connects to each device (nothing is sent or queued) and writes one step per entity:
    switches, lights (state, brightness, colour, effect, colour temperature), numbers,
    selects, texts, covers and valves (position), fans, climate and media player volume and
    mute. Left out, and listed per device in the file: buttons, actions, read-only entities,
    locks (a scene never locks or unlocks a door), password texts.

    A device that cannot be read is named on stderr and in the file's header; the file holds
    the others. Exit 0 when every device was saved, 4 when any was unreachable, 1 when any
    refused us (wrong key, another device). An existing file is only replaced with --force.

    Example: cmdctl scene save tvs -o before.yml

    and later, to put the devices back: cmdctl bulk before.yml
    """
    import asyncio

    from cmdctl.cli import render
    from cmdctl.cli.exec_cmds import seconds

    bound = seconds(timeout, "--timeout")
    target = None if output == "-" else Path(output)
    if target is not None:
        _check_target(target, force=force)  # before anyone waits for the devices
    fleet = open_fleet(inventory, None)
    scene = asyncio.run(fleet.scene(pattern, concurrency=concurrency, connect_timeout=bound))
    err = render.stderr()
    if not quiet:
        for warning in fleet.inventory.warnings:
            render.warn(warning)
    for down in scene.failed:
        if down.error is not None:
            err.print(f"cmdctl: {down.error.one_line()}", markup=False)
    code = scene.exit_code
    if not scene.count:
        why = "no device could be read" if not scene.saved else "no state a playbook can set"
        err.print(
            f"cmdctl: nothing saved: {why}; "
            + ("no file written" if target is not None else "nothing printed"),
            markup=False,
        )
        finish(code if code is not ExitCode.OK else ExitCode.FAILED)
    text = scene.playbook(output if target is not None else "FILE.yml")
    if target is None:
        sys.stdout.write(text)
    else:
        _write(target, text, force=force)
    if not quiet or code:
        _summary(scene, output)
    finish(code)


def _summary(scene: Scene, output: str) -> None:
    from cmdctl.cli import render, views

    left = sum(len(d.left_out) for d in scene.saved)
    where = "stdout" if output == "-" else output
    err = render.stderr()
    err.print(
        f"saved {views.plural(len(scene.saved), 'device')} "
        f"({views.plural(scene.count, 'setting')}, {left} left out) to {where}",
        markup=False,
    )
    if scene.failed:
        names = ", ".join(f"{d.device} ({d.status})" for d in scene.failed)
        err.print(f"not saved: {names}", markup=False)
    if output != "-":
        err.print(f"restore: cmdctl bulk {output}", markup=False)


def _check_target(path: Path, *, force: bool) -> None:
    if path.is_dir():
        raise InputError(f"-o {path}: is a directory", hint="name a file, like before.yml")
    if not path.parent.is_dir():
        raise InputError(f"-o {path}: no directory {path.parent}")
    if path.exists() and not force:
        raise InputError(
            f"-o {path}: the file exists; nothing was saved",
            hint="--force replaces it, or choose another name",
        )


def _write(path: Path, text: str, *, force: bool) -> None:
    """Write `text` to `path` so that it is whole or absent: a fsynced temporary file beside
    it, renamed over it (--force) or hard-linked to its name, which never replaces a file."""
    from cmdctl.core import durable

    mode = FILE_MODE
    if force and path.exists():
        mode = path.stat().st_mode & 0o777  # replacing: keep who may read it
    tmp = durable.temp_name(path)
    try:
        tmp.unlink(missing_ok=True)  # left by a process of ours that died: same pid, same name
        durable.create_file(tmp, text.encode("utf-8"), mode=mode)
        if force:
            os.replace(tmp, path)
        else:
            _link(tmp, path)
            tmp.unlink()
        durable.fsync_dir(path.parent)
    except FileExistsError:
        raise InputError(
            f"-o {path}: the file appeared meanwhile; nothing was written",
            hint="--force replaces it, or choose another name",
        ) from None
    except OSError as err:
        raise InputError(f"-o {path}: cannot write: {err.strerror}") from None
    finally:
        tmp.unlink(missing_ok=True)


def _link(tmp: Path, path: Path) -> None:
    """Give `tmp` the name `path` unless that name is taken (FileExistsError)."""
    try:
        os.link(tmp, path)
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
        # A filesystem without hard links: the check and the rename are two steps.
        if path.exists() or path.is_symlink():
            raise FileExistsError(errno.EEXIST, "exists", str(path)) from None
        os.replace(tmp, path)


def register(app: typer.Typer) -> None:
    """Add the `scene` group to the app."""
    app.add_typer(scene_app, name="scene")
