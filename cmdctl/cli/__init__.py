"""The command-line layer: typer commands; with `cmdctl.render`, the only code that prints."""

from cmdctl.cli.app import main

__all__ = ["main"]
