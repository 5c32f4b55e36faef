"""What several commands show the same way: the status screen, a command as one line of text,
and a batch named by a unique prefix of its id."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING

from cmdctl.core.errors import InputError

if TYPE_CHECKING:
    from cmdctl.core.model import Entry
    from cmdctl.journal.ledger import Ledger
    from cmdctl.journal.summary import Status


def plural(count: int, word: str, many: str | None = None) -> str:
    """`1 command`, `2 commands`, `1,024 entries` (give `many` when adding "s" is wrong)."""
    return f"{count:,} {word if count == 1 else many or word + 's'}"


def spread(entries: Iterable[Entry]) -> str:
    """What a plan really expanded to: `35 commands (15 steps over 9 devices)`.

    Steps may have their own targets, so the count is rarely steps × devices: say each one.
    """
    listed = list(entries)
    steps = len({e.step for e in listed})
    devices = len({e.device for e in listed})
    return (
        f"{plural(len(listed), 'command')} "
        f"({plural(steps, 'step')} over {plural(devices, 'device')})"
    )


def batch_id(ledger: Ledger, text: str) -> str:
    """The batch whose id is `text` or starts with it; InputError if none or several."""
    batches: list[str] = list(ledger.batches())
    if text in batches:
        return text
    matches = [b for b in batches if b.startswith(text.upper())]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise InputError(f"no batch {text!r}", hint="`cmdctl status` lists the batches")
    raise InputError(
        f"batch prefix {text!r} matches {len(matches)} batches", hint="give more of the id"
    )


def print_status(st: Status, *, events: int, path: str) -> None:
    """The status screen (`cmdctl status`, the end of `cmdctl demo`)."""
    from rich.table import Table

    from cmdctl.cli import render
    from cmdctl.core.model import State
    from cmdctl.core.timespec import format_duration

    out = render.stdout()
    if not st.total:
        render.line(f"the journal is empty ({path})")
        return
    parts = [f"{s.value} {st.counts[s]:,}" for s in State if st.counts.get(s)]
    render.line(f"{st.total:,} entries ({events:,} events): " + " · ".join(parts))
    pending = st.counts.get(State.PENDING, 0)
    if pending:
        bits = []
        if st.next_due is not None:
            if st.next_due <= st.now:
                bits.append(f"due now, overdue by {format_duration(st.now - st.next_due)}")
            else:
                bits.append(f"next due in {format_duration(st.next_due - st.now)}")
        if st.oldest_pending is not None:
            bits.append(f"oldest queued {format_duration(st.now - st.oldest_pending)} ago")
        render.line(f"pending: {', '.join(bits)}")
    if st.batches:
        table = Table(title=None, box=None, pad_edge=False)
        for col in (
            "batch",
            "playbook",
            "origin",
            "done/total",
            "pending",
            "running",
            "failed",
            "other",
        ):
            table.add_column(
                col, justify="right" if col not in ("batch", "playbook", "origin") else "left"
            )
        shown = st.batches[-20:]
        for b in shown:
            c = b.counts
            other = b.total - sum(
                c.get(s, 0) for s in (State.DONE, State.PENDING, State.RUNNING, State.FAILED)
            )
            table.add_row(
                b.batch,
                b.playbook or "-",
                b.origin,
                f"{c.get(State.DONE, 0):,}/{b.total:,}",
                f"{c.get(State.PENDING, 0):,}",
                f"{c.get(State.RUNNING, 0):,}",
                f"{c.get(State.FAILED, 0):,}",
                f"{other:,}",
            )
        if len(st.batches) > len(shown):
            render.line(f"(last {len(shown)} of {len(st.batches)} batches)")
        out.print(table)
    if st.stuck:
        render.line(
            f"stuck: {len(st.stuck)} entries started over 15m ago with no outcome "
            "(the drain running them died?); the next `cmdctl drain` recovers them"
        )
    if st.needs_person:
        render.line(
            f"needs a person: {len(st.needs_person)} non-idempotent entries were interrupted "
            "mid-flight and will not be repeated automatically:"
        )
        for e in st.needs_person[:20]:
            render.line(
                f"  {e.id}  {e.device}  {e.command.selector}  ({e.reason or 'interrupted'})"
            )
        render.line("  decide with `cmdctl queue retry ID` or `cmdctl queue cancel ID`")
    if st.damaged_lines:
        render.warn(
            f"{st.damaged_lines} damaged journal lines were skipped; run `cmdctl journal verify`"
        )


def command_text(e: Entry) -> str:
    """The command as a playbook line says it: `select.input: HDMI 2`."""
    args = dict(e.command.args)
    if e.command.domain == "action":
        data = args.get("data", {})
        inner = ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(dict(data).items()))
        return f"action.{e.command.target}({inner})"
    if not args:
        return e.command.selector
    if len(args) == 1:
        (value,) = args.values()
        text = value if isinstance(value, str) else json.dumps(value)
        return f"{e.command.selector}: {text}"
    return f"{e.command.selector}: {json.dumps(args, sort_keys=True)}"
