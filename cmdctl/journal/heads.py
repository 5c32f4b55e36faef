"""What a journal line says before it is decoded: its type, id, and a `queued` line's batch,
device and schedule, read from the fixed head the encoder writes (`cmdctl.journal.events`).

The fold reads every line's head this way (`folding`), and a drain skips lines it will not work
on (`drain.due`, `drain.gates`) without parsing them. None means "not canonical": the caller
then decodes the line in full.
"""

from __future__ import annotations

import re

#: The fixed head of a line: type, id and, for `queued`, batch and device (no JSON escapes).
HEAD = re.compile(
    rb'\{"t":"([^"\\]*)","id":"([^"\\]*)"'
    rb'(?:,"ts":[-+.eE0-9]+,"v":[0-9]+,"batch":"([^"\\]*)","device":"([^"\\]*)")?'
)


def peek(line: bytes) -> tuple[bytes, str, tuple[str, str] | None] | None:
    """(type, id, (batch, device) for `queued`) from a line's fixed head; None if not canonical."""
    match = HEAD.match(line)
    if match is None:
        return None
    kind, raw_id, batch, device = match.groups()
    if kind != b"queued":
        return kind, raw_id.decode(), None
    if batch is None:
        return None
    return kind, raw_id.decode(), (batch.decode(), device.decode())


def peek_schedule(line: bytes) -> tuple[float, float, float | None] | None:
    """(created, not_before, expires) of a canonical `queued` line, or None if not canonical."""
    at = line.rfind(b',"created":')
    end = line.find(b',"idempotent":', at)
    if at < 0 or end < 0:
        return None
    parts = line[at + 11 : end].split(b",")
    if (
        len(parts) != 3
        or not parts[1].startswith(b'"not_before":')
        or not parts[2].startswith(b'"expires":')
    ):
        return None
    try:
        expires = parts[2][10:]
        return (
            float(parts[0]),
            float(parts[1][13:]),
            None if expires == b"null" else float(expires),
        )
    except ValueError:
        return None
