"""The typer application and the one place that turns errors into exit codes."""

from __future__ import annotations

import atexit
import gc
import sys
import time
import traceback
from collections.abc import Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

import typer
import typer.main
from typer.core import TyperGroup

from cmdctl.core.errors import CmdctlError, ExitCode
from cmdctl.core.version import __version__

if TYPE_CHECKING:
    from typer._click import Command, Context  # the click typer ships

#: Every command and the module that registers it, in the order `cmdctl --help` lists them
#: (typer lists plain commands before groups). A command is built, and its module imported, only
#: when it is asked for: `cmdctl send` imports no other command's module and converts no other
#: command's options (all 29 cost ~40 ms of every run); `--help` asks for them all.
COMMANDS: dict[str, str] = {
    "send": "exec_cmds",
    "drain": "exec_cmds",
    "run": "exec_cmds",
    "validate": "plan_cmds",
    "bulk": "plan_cmds",
    "status": "status_cmds",
    "history": "status_cmds",
    "events": "events_cmds",
    "simulate": "sim_cmds",
    "serve": "serve_cmds",
    "demo": "demo_cmds",
    "queue": "queue_cmds",
    "journal": "journal_cmds",
    "devices": "devices_cmds",
    "inventory": "inventory_cmds",
    "scene": "scene_cmds",
}


def commands_of(module_name: str) -> dict[str, Command]:
    """The click commands `cmdctl.cli.MODULE.register` adds, built as typer builds them for `app`.

    Command modules import only typer and light cmdctl modules at import time, so that
    `--help`, `status`, `queue ...` never pay for aioesphomeapi.
    """
    name = f"cmdctl.cli.{module_name}"
    __import__(name)  # not importlib.import_module: `python -X importtime` does not see that one
    module = sys.modules[name]
    part = typer.Typer(
        rich_markup_mode=app.rich_markup_mode,
        pretty_exceptions_short=app.pretty_exceptions_short,
        suggest_commands=app.suggest_commands,
    )
    module.register(part)
    return dict(typer.main.get_group(part).commands)


class _Commands(MutableMapping[str, "Command"]):
    """The app's commands by name (`COMMANDS`' names, in its order), each module's built the
    first time one of its commands is looked up."""

    def __init__(self) -> None:
        self._built: dict[str, Command] = {}

    def __getitem__(self, name: str) -> Command:
        module_name = COMMANDS[name]  # KeyError: no such command (click says so, with hints)
        if name not in self._built:
            self._built.update(commands_of(module_name))
        return self._built[name]

    def __setitem__(self, name: str, command: Command) -> None:
        raise TypeError(f"cmdctl's commands are listed in cmdctl.cli.app.COMMANDS, not {name!r}")

    def __delitem__(self, name: str) -> None:
        raise TypeError(f"cmdctl's commands are listed in cmdctl.cli.app.COMMANDS, not {name!r}")

    def __iter__(self) -> Iterator[str]:
        return iter(COMMANDS)

    def __len__(self) -> int:
        return len(COMMANDS)


class _Group(TyperGroup):
    """The root group: its commands are `_Commands`, listed without being built."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.commands = _Commands()

    def list_commands(self, ctx: Context) -> list[str]:
        return list(COMMANDS)


app = typer.Typer(
    name="cmdctl",
    help=(
        "Send commands to fleets of ESPHome devices, with a durable journal so that no command "
        "is ever lost.\n\nTry it without hardware: cmdctl demo"
    ),
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # never print locals: they can hold encryption keys
    pretty_exceptions_enable=False,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    rich_markup_mode=None,
    cls=_Group,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"cmdctl {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Send commands to fleets of ESPHome devices, with a durable journal."""


def _report_internal_error(exc: BaseException) -> str:
    """Write the traceback (never locals) to a new crash file; return where it went.

    Named by time and pid and created exclusively (never through a link), with `-2`, `-3`...
    when taken: two crashes in one second, in one process or several, keep both reports.
    """
    import os

    from cmdctl.cli.paths import crash_dir

    text = "".join(traceback.format_exception(exc))
    data = f"cmdctl {__version__}\nargv: {sys.argv!r}\n\n{text}".encode()
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        directory = crash_dir()
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        stem = f"crash-{time.strftime('%Y%m%dT%H%M%S')}-{os.getpid()}"
        for n in range(1, 1000):
            path = directory / (f"{stem}.txt" if n == 1 else f"{stem}-{n}.txt")
            try:
                fd = os.open(path, flags, 0o600)
            except FileExistsError:
                continue
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            return str(path)
    except OSError:
        pass
    return "(could not write a crash report)"


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app and map every outcome to a documented exit code."""
    from cmdctl.cli import stdout

    real = sys.stdout
    out = sys.stdout = stdout.GuardedStdout(real)
    stdout.take_effect()
    try:
        code = _run(argv)
    finally:
        out.flush()
        if sys.stdout is out:
            sys.stdout = real
    effect = stdout.take_effect()
    # A closed pipe is the reader's choice: quiet, and the command's own code stands. A stdout
    # that cannot be written is said once, with what the command did, so nobody re-runs it.
    if out.failure is not None and not out.broken_pipe:
        why = out.failure.strerror or type(out.failure).__name__
        sys.stderr.write(
            f"cmdctl: could not write the output ({why}); the command itself finished"
            + (f": {effect}" if effect else "")
            + "\n"
        )
        if code in (0, None):
            code = int(ExitCode.OUTPUT)
    _quick_exit()
    sys.exit(code)


def _quick_exit() -> None:
    """Let the interpreter's shutdown skip collecting what the command built.

    Python's shutdown runs full garbage collections over every object alive, most of them made
    by the imports (aioesphomeapi's, typer's: some 40,000); that was ~60 ms of a 0.35 s `send`.
    Frozen objects are left to the operating system. Nothing cmdctl writes waits for a
    collection: journal appends are fsynced before the command returns, files are closed by
    their owners, and the ones kept open write each line through (the `--log-file` outcome log,
    a simulator record); atexit handlers and the flushing of stdout and stderr run as before.
    Registered (once) for the end of the process, so an in-process caller is not affected.
    """
    atexit.unregister(gc.freeze)  # one registration however often main() runs in a process
    atexit.register(gc.freeze)


def _run(argv: list[str] | None) -> int | str | None:
    """Run the app; the exit status it ends with (errors mapped to their codes)."""
    from cmdctl.cli.paths import journal_dir
    from cmdctl.device import cacheplace

    # Every connection records the device's entity list beside the journal's default place.
    cacheplace.use(journal_dir(None))
    try:
        app(args=argv, prog_name="cmdctl")
    except SystemExit as exc:
        return exc.code
    except CmdctlError as err:
        from cmdctl.cli.render import safe

        sys.stderr.write(f"cmdctl: {safe(err.one_line())}\n")
        return int(err.exit_code)
    except KeyboardInterrupt:
        sys.stderr.write("cmdctl: interrupted\n")
        return int(ExitCode.INTERRUPTED)
    except Exception as exc:  # the funnel: anything unexpected is a bug, reported as one
        where = _report_internal_error(exc)
        sys.stderr.write(
            f"cmdctl: internal error ({type(exc).__name__}); this is a bug in cmdctl. "
            f"Details: {where}\n"
        )
        return int(ExitCode.INTERNAL)
    finally:
        cacheplace.use(None)  # a library caller in this process records nothing unless it asks
    return 0
