"""The command line: typer commands, rendering and paths; the only wing that prints and the one
place where errors become exit codes.

May import every other wing; nothing imports it.
"""

from cmdctl.cli.app import main

__all__ = ["main"]
