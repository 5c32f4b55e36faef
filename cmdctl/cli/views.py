"""What several commands show the same way: the status screen, a command as one line of text,
and a batch named by a unique prefix of its id."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from cmdctl.core import secretref

if TYPE_CHECKING:
    from cmdctl.core.model import Coordination, Entry, State
    from cmdctl.journal.ledger import Ledger
    from cmdctl.journal.summary import BatchLine, Status


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


def due(not_before: float, expires: float | None, *, now: float | None = None) -> str:
    """When queued work runs, in local time: `due 18:00 today (in 3h 12m), expires 20:00
    today`, or `due now` (with its expiry, if it has one); `now` defaults to the clock."""
    import time

    from cmdctl.core.timespec import format_age, format_when

    now = time.time() if now is None else now
    text = "due now"
    if not_before > now:
        text = f"due {format_when(not_before, now=now)} ({format_age(not_before, now=now)})"
    if expires is not None:
        text += f", expires {format_when(expires, now=now)}"
    return text


#: Below this many columns, tables keep device, command and error readable and drop the rest.
NARROW = 120


def short_time(epoch: float) -> str:
    """`12-05 22:03`: a finished time where columns are scarce."""
    from cmdctl.core.timespec import format_time

    return format_time(epoch)[5:16]


def finished_why(e: Entry) -> str:
    """Why a finished entry ended as it did, in its own terms: a failure's error, otherwise the
    reason it was superseded, cancelled, expired or skipped (an old attempt's error is no
    longer why), and for a done entry its outcome."""
    from cmdctl.core.model import State

    if e.state is State.DONE:
        return e.outcome or "done"
    if e.state in (State.FAILED, State.UNKNOWN):
        text = e.last_error or e.reason or e.outcome or ""
    else:
        text = e.reason or ""
    return text.removeprefix(f"{e.device}: ")


def batch_id(ledger: Ledger, text: str) -> str:
    """The batch whose id is `text` or starts with it; InputError if none or several."""
    from cmdctl.api.records import batch_id as find

    return find(ledger, text)


def group_sends(batches: Sequence[BatchLine]) -> list[BatchLine]:
    """Batches as `status` lists them: two or more direct `send`s become one "N sends" line,
    placed where the newest of them was (each send is a batch of one: a row each buries the
    playbooks). `status BATCH` and `--json` still show every send by its id."""
    from cmdctl.journal.summary import BatchLine

    sends = [b for b in batches if b.origin == "send"]
    if len(sends) < 2:
        return list(batches)
    counts: dict[State, int] = {}
    for b in sends:
        for state, n in b.counts.items():
            counts[state] = counts.get(state, 0) + n
    newest = max(sends, key=lambda b: b.created)
    line = BatchLine(f"({len(sends)} sends)", None, "send", newest.created, counts)
    return [line if b is newest else b for b in batches if b.origin != "send" or b is newest]


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
    render.line(
        f"{plural(st.total, 'entry', 'entries')} ({plural(events, 'event')}): "
        + " · ".join(parts)
    )
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
        batches = group_sends(st.batches)
        shown = batches[-20:]
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
        if len(batches) > len(shown):
            render.line(f"(last {len(shown)} of {len(batches)} batches)")
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
        data = dict(args.get("data") or {})
        inner = ", ".join(f"{k}={value_text(v, k, inner=True)}" for k, v in sorted(data.items()))
        return f"action.{e.command.target}({inner})"
    if not args:
        return e.command.selector
    if len(args) == 1:
        ((key, value),) = args.items()
        return f"{e.command.selector}: {value_text(value, key)}"
    return f"{e.command.selector}: {value_text(args)}"


#: Words YAML would read as something other than a string.
_NOT_STRINGS = {"", "on", "off", "yes", "no", "true", "false", "null", "~", "y", "n"}
_PLAIN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9 _.+/@-]*")


def value_text(value: object, key: str | None = None, *, inner: bool = False) -> str:
    """A value as a playbook would write it: `on`, `25`, `HDMI 1`, `{state: on, brightness: 0.4}`.

    Switch-like `state` booleans are on/off, other booleans true/false; numbers plainly (25,
    not 25.0); strings as they are (quoted only inside a mapping, where YAML needs it).
    """
    if isinstance(value, bool):
        if key in (None, "state"):
            return "on" if value else "off"
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, int | float):
        return repr(value)
    if value is None:
        return "null"
    if secretref.ref_name(value) is not None:
        return secretref.MASK  # a `!secret` argument: tables show neither name nor value
    if isinstance(value, str):
        if not inner:
            return value
        plain = _PLAIN.fullmatch(value) and value.lower() not in _NOT_STRINGS
        return value if plain and not _is_number(value) else json.dumps(value)
    if isinstance(value, Mapping):
        items = (f"{k}: {value_text(v, str(k), inner=True)}" for k, v in value.items())
        return "{" + ", ".join(items) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(value_text(v, key, inner=True) for v in value) + "]"
    return str(value)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def barrier_text(c: Coordination) -> str:
    """What an entry waits for: `after "power on" (whole batch)`, `5s after "power on" (this
    device)`; "" when it waits for nothing."""
    from cmdctl.core.timespec import format_duration

    if c.after is None:
        return ""
    gap = f"{format_duration(c.gap)} " if c.gap else ""
    scope = "this device" if c.scope == "device" else "whole batch"
    return f'{gap}after "{c.after}" ({scope})'


def flow_texts(c: Coordination) -> list[tuple[str, str]]:
    """(key, text) of an entry's device flow: its barrier, `when:` and `wait_until:`."""
    from cmdctl.core.timespec import format_duration

    out = []
    if c.after is not None:
        out.append(("after", barrier_text(c)))
    if c.when is not None:
        out.append(("when", f"only where {c.when.selector} is {c.when.wanted}"))
    if c.wait_until is not None:
        cond = c.wait_until
        out.append(("wait_until", f"then waits until {cond.selector} is {cond.wanted} "
                                  f"(up to {format_duration(cond.timeout)})"))
    return out
