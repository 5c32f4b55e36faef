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
        exec_cmds,
        journal_cmds,
        plan_cmds,
        queue_cmds,
        sim_cmds,
        status_cmds,
    )

    for module in (
        exec_cmds,
        plan_cmds,
        status_cmds,
        queue_cmds,
        journal_cmds,
        devices_cmds,
        sim_cmds,
        demo_cmds,
    ):
        module.register(app)


_register()


def _report_internal_error(exc: BaseException) -> str:
    """Write the traceback (never locals) to a crash file; return where it went."""
    from cmdctl.cli.paths import crash_dir

    try:
        directory = crash_dir()
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        path = directory / f"crash-{time.strftime('%Y%m%dT%H%M%S')}.txt"
        text = "".join(traceback.format_exception(exc))
        path.write_text(f"cmdctl {__version__}\nargv: {sys.argv!r}\n\n{text}")
        path.chmod(0o600)
        return str(path)
    except OSError:
        return "(could not write a crash report)"


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the app and map every outcome to a documented exit code."""
    from cmdctl.cli.paths import journal_dir
    from cmdctl.device import cache

    # Every connection records the device's entity list beside the journal's default place.
    cache.use(journal_dir(None))
    try:
        app(args=argv, prog_name="cmdctl")
    except CmdctlError as err:
        sys.stderr.write(f"cmdctl: {err.one_line()}\n")
        sys.exit(int(err.exit_code))
    except KeyboardInterrupt:
        sys.stderr.write("cmdctl: interrupted\n")
        sys.exit(int(ExitCode.INTERRUPTED))
    except BrokenPipeError:
        sys.exit(int(ExitCode.OK))
    except Exception as exc:  # the funnel: anything unexpected is a bug, reported as one
        where = _report_internal_error(exc)
        sys.stderr.write(
            f"cmdctl: internal error ({type(exc).__name__}); this is a bug in cmdctl. "
            f"Details: {where}\n"
        )
        sys.exit(int(ExitCode.INTERNAL))
    finally:
        cache.use(None)  # a library caller in this process records nothing unless it asks
