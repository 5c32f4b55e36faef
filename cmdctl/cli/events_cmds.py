"""`cmdctl events [--follow]`: the journal's events, one line each, as they land."""

from __future__ import annotations

import json
import signal
import sys
from types import FrameType
from typing import TYPE_CHECKING, Annotated, TextIO

import typer

from cmdctl.cli.options import JournalOpt, JsonOpt

if TYPE_CHECKING:
    from cmdctl.journal.feed import FeedEvent


def register(app: typer.Typer) -> None:
    app.command("events")(events)


def events(
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing events as they are appended.")
    ] = False,
    since: Annotated[
        str | None,
        typer.Option(
            "--since", help="Only events of the last DURATION (10m, 2h, 1d).", show_default=False
        ),
    ] = None,
    batch: Annotated[
        str | None,
        typer.Option(
            "--batch", "-b", help="Only this batch (id or unique prefix).", show_default=False
        ),
    ] = None,
    device: Annotated[
        str | None, typer.Option("--device", "-d", help="Only this device.", show_default=False)
    ] = None,
    journal: JournalOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """The journal's events, one line each: time, type, device, command, entry id, why.

    With --follow, keep printing events as other processes append them (a drain, a send,
    a compaction in between) until Ctrl-C, SIGTERM or the reader of the pipe goes away.

    Example: cmdctl events --follow --since 10m --device bar-tv-3
    """
    from cmdctl.cli.common import open_fleet
    from cmdctl.journal.feed import Feed

    fleet = open_fleet(None, journal)
    store = fleet.journal
    keep = fleet.event_filter(since=since, batch=batch, device=device)
    show = _json_line if json_out else _text_line

    stopping: list[int] = []

    def _stop(signum: int, _frame: FrameType | None) -> None:
        stopping.append(signum)

    if follow:
        # Ctrl-C and SIGTERM end a follow between two polls: exit 0, nothing half-written.
        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)

    out = sys.stdout
    with Feed(store.directory) as feed:
        items = (
            feed.follow(lambda: bool(stopping) or _reader_gone(out))
            if follow
            else iter(feed.poll())
        )
        for item in items:
            if not keep(item):
                continue
            out.write(show(item) + "\n")
            if follow:
                out.flush()
                if getattr(out, "failure", None) is not None:
                    break  # the reader went away (`| head -3`): nobody to follow for


def _reader_gone(out: TextIO) -> bool:
    """True when stdout is a pipe or socket whose reader has closed it (`| head -3`).

    Checked between polls, so a follower that has nothing new to write still ends with its reader.
    """
    import select

    try:
        fd = out.fileno()
        poller = select.poll()
        poller.register(fd, 0)  # POLLERR and POLLHUP are reported whatever is asked for
        return any(flags & (select.POLLERR | select.POLLHUP) for _, flags in poller.poll(0))
    except (OSError, ValueError):  # no descriptor (io.UnsupportedOperation): a plain stream
        return False


def _json_line(item: FeedEvent) -> str:
    return json.dumps(item.as_json(), ensure_ascii=False, separators=(",", ":"))


def _text_line(item: FeedEvent) -> str:
    from cmdctl.cli import views
    from cmdctl.cli.render import safe
    from cmdctl.core.timespec import format_time

    e, entry = item.event, item.entry
    device = entry.device if entry else "?"
    command = views.command_text(entry) if entry else "?"
    why = _why(item)
    parts = [format_time(e.ts), f"{e.type:<14}", device, command, e.id]
    if why:
        parts.append(why)
    return safe("  ".join(parts))


def _why(item: FeedEvent) -> str:
    """What the event says beyond its type: an error, a reason, an outcome."""
    from cmdctl.core.timespec import format_time
    from cmdctl.journal import events as ev

    e = item.event
    f = e.fields

    def text(key: str) -> str:
        value = f.get(key)
        return value if isinstance(value, str) else ""

    device = item.entry.device if item.entry else ""
    if e.type == ev.STARTED:
        return f"attempt {f.get('attempt')}"
    if e.type == ev.DONE:
        ran_on = text("ran_on")
        return text("outcome") + (f" on {ran_on}" if ran_on else "")
    if e.type in (ev.FAILED, ev.ATTEMPT_FAILED):
        return text("error").removeprefix(f"{device}: ")
    if e.type == ev.RESCHEDULED:
        not_before = f.get("not_before")
        if isinstance(not_before, int | float):
            return f"next try {format_time(not_before)}"
        return ""
    if e.type == ev.SUPERSEDED:
        return f"by {text('by')}"
    if e.type == ev.REPRIORITISED:
        return text("priority")
    if e.type == ev.RETRIED:
        return f"by {text('who')}"
    if e.type == ev.CANCELLED:
        return text("reason") or f"by {text('who')}"
    return text("reason") or text("error")
