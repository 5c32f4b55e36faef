"""The typer application and the one place that turns errors into exit codes."""

from __future__ import annotations

import sys
import time
import traceback

import typer

from cmdctl.core.errors import CmdctlError, ExitCode
from cmdctl.core.version import __version__

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


def _register() -> None:
    # Command modules import only typer and light cmdctl modules at import time, so that
    # `--help`, `status`, `queue ...` never pay for aioesphomeapi.
    from cmdctl.cli import (
        demo_cmds,
        devices_cmds,
        events_cmds,
        exec_cmds,
        inventory_cmds,
        journal_cmds,
        plan_cmds,
        queue_cmds,
        scene_cmds,
        serve_cmds,
        sim_cmds,
        status_cmds,
    )

    for module in (
        exec_cmds,
        plan_cmds,
        status_cmds,
        events_cmds,
        queue_cmds,
        journal_cmds,
        devices_cmds,
        inventory_cmds,
        scene_cmds,
        sim_cmds,
        serve_cmds,
        demo_cmds,
    ):
        module.register(app)


_register()


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
    sys.exit(code)


def _run(argv: list[str] | None) -> int | str | None:
    """Run the app; the exit status it ends with (errors mapped to their codes)."""
    from cmdctl.cli.paths import journal_dir
    from cmdctl.device import cache

    # Every connection records the device's entity list beside the journal's default place.
    cache.use(journal_dir(None))
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
        cache.use(None)  # a library caller in this process records nothing unless it asks
    return 0
