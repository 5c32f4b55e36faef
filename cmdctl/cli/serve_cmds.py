"""`cmdctl serve`: the HTTP JSON API, the event stream and the web page (cmdctl/serve/)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

import typer

from cmdctl.cli.common import finish, load_inventory, open_journal, who
from cmdctl.cli.options import InventoryOpt, JournalOpt
from cmdctl.core.errors import ExitCode, InputError

#: The token file's name beside the journal when --token-file is not given.
TOKEN_FILE = "serve-token"


def serve(
    bind: Annotated[
        str, typer.Option("--bind", help="HOST:PORT to listen on (port 0: any free port).")
    ] = "127.0.0.1:8765",
    token_file: Annotated[
        Path | None,
        typer.Option(
            "--token-file",
            help="The bearer token (created, mode 0600, when missing) "
            "[default: serve-token beside the journal].",
            show_default=False,
            dir_okay=False,
        ),
    ] = None,
    run_: Annotated[
        bool, typer.Option("--run", help="Also run queued commands here, as `cmdctl run`.")
    ] = False,
    allow_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-host",
            help="Another Host header to accept (the name a reverse proxy forwards); repeatable.",
            show_default=False,
        ),
    ] = None,
    concurrency: Annotated[
        int, typer.Option("--concurrency", "-c", min=1, max=1024, help="--run: devices at once.")
    ] = 64,
    journal: JournalOpt = None,
    inventory: InventoryOpt = None,
) -> None:
    """Serve the HTTP API, a live event stream (SSE) and a web page over the journal.

    Every route but GET /healthz and the page itself needs `Authorization: Bearer TOKEN`;
    the token is read from --token-file (created on first start). Open the page as
    http://HOST:PORT/#token=TOKEN, or paste the token into its form.

    Example: cmdctl serve --run --bind 127.0.0.1:8765
    """
    import asyncio

    from cmdctl.cli import render
    from cmdctl.cli.exec_cmds import run_async
    from cmdctl.serve import server as http
    from cmdctl.serve import token as tokens
    from cmdctl.serve.ops import Ops

    host, port = _bind(bind)
    jr = open_journal(journal)
    path = token_file if token_file is not None else jr.directory / TOKEN_FILE
    if token_file is None:
        jr.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    secret, created = tokens.load_or_create(path)
    render.info(f"token {'created in' if created else 'read from'} {path}")
    from cmdctl.cli import cachecheck

    ops = Ops(
        jr,
        lambda: load_inventory(inventory),
        f"{who()} (serve)",
        check_plan=cachecheck.check_plan,  # validated exactly as `bulk` and `send --queue` do
        check_command=cachecheck.check_command,
    )
    app = http.Server(ops, secret, set(), log=render.warn)

    def ready(bound_host: str, bound_port: int) -> None:
        names = {f"{bound_host}:{bound_port}"}
        if _loopback(bound_host):
            names |= {f"localhost:{bound_port}", f"127.0.0.1:{bound_port}", f"[::1]:{bound_port}"}
        names |= set(allow_host or ())
        app.hosts |= {n.lower() for n in names}
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        render.info(f"serving on http://{shown}:{bound_port}/ (Ctrl-C to stop)")

    async def main() -> None:
        tasks: list[asyncio.Task[object]] = [
            asyncio.create_task(http.serve(app, host, port, ready))
        ]
        engine = None
        if run_:
            from cmdctl.drain import engine as eng
            from cmdctl.drain import loops
            from cmdctl.drain.options import DrainOptions
            from cmdctl.inputs.secretfile import SecretsFile

            inv = load_inventory(inventory)
            engine = eng.Engine(
                jr,
                inv.by_name.get,
                DrainOptions(concurrency=concurrency, max_time=None),
                secrets=SecretsFile.beside(inv.path).value,
            )
            tasks.append(asyncio.create_task(loops.serve(engine)))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # a drain that could not start (busy) ends the server
        finally:
            if engine is not None:
                engine.request_stop("server stopping")
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    try:
        run_async(main())
    except asyncio.CancelledError:
        pass
    except OSError as err:
        raise InputError(f"cannot listen on {bind}: {err.strerror}") from None
    finish(ExitCode.OK)


def _bind(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise InputError(f"--bind: expected HOST:PORT, got {text!r}", hint="like 127.0.0.1:8765")
    return host, int(port)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def register(app: typer.Typer) -> None:
    """Add `serve` to the app."""
    app.command("serve")(serve)
