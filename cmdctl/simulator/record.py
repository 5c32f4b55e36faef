"""What the virtual devices received: every command and every connection open/close/reject.

Kept in memory and, when a path is given, appended to a JSONL file one flushed line at a time, so
another process can read it while the simulator runs (and after the process under test was killed).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from cmdctl.core.errors import InputError


@dataclass(frozen=True, slots=True)
class Received:
    """One command a device received (and whether it accepted the value)."""

    ts: float  # epoch seconds
    device: str
    conn: int  # connection number, unique per device
    kind: str  # entity kind (`switch`, …) or `action`
    object_id: str | None  # entity object_id or action name; None for an unknown key
    key: int
    device_id: int
    args: dict[str, Any] = field(hash=False)
    accepted: bool = True

    @property
    def selector(self) -> str:
        """`kind.object_id` as cmdctl writes it."""
        return f"{self.kind}.{self.object_id}"


@dataclass(frozen=True, slots=True)
class ConnectionEvent:
    """A connection opened, closed, or was rejected (max connections)."""

    ts: float
    device: str
    conn: int
    event: str  # open | close | reject
    open_connections: int  # after the event
    reason: str = ""


class Recorder:
    """The in-memory record of a fleet, optionally mirrored to a JSONL file."""

    __slots__ = ("_file", "commands", "connections", "path")

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = None if path is None else Path(path)
        self.commands: list[Received] = []
        self.connections: list[ConnectionEvent] = []
        self._file: IO[str] | None = None

    def open(self) -> None:
        """Start appending to the file (if any)."""
        if self.path is not None and self._file is None:
            try:
                self._file = self.path.open("a", encoding="utf-8")
            except OSError as err:
                raise InputError(
                    f"cannot write the record: {err.strerror}", file=str(self.path)
                ) from err

    def close(self) -> None:
        """Stop appending."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def command(self, item: Received) -> None:
        """Keep one received command."""
        self.commands.append(item)
        if self._file is not None:
            self._write(
                {
                    "t": "command",
                    "ts": item.ts,
                    "device": item.device,
                    "conn": item.conn,
                    "kind": item.kind,
                    "object_id": item.object_id,
                    "key": item.key,
                    "device_id": item.device_id,
                    "args": item.args,
                    "accepted": item.accepted,
                }
            )

    def connection(
        self, device: str, conn: int, event: str, open_now: int, reason: str = ""
    ) -> None:
        """Keep one connection event."""
        item = ConnectionEvent(time.time(), device, conn, event, open_now, reason)
        self.connections.append(item)
        if self._file is not None:
            self._write(
                {
                    "t": event,
                    "ts": item.ts,
                    "device": device,
                    "conn": conn,
                    "open_connections": open_now,
                    "reason": reason,
                }
            )

    def max_concurrent(self, device: str) -> int:
        """The most connections `device` ever had open at once."""
        return max((e.open_connections for e in self.connections if e.device == device), default=0)

    def _write(self, obj: dict[str, Any]) -> None:
        assert self._file is not None
        self._file.write(json.dumps(obj, separators=(",", ":")) + "\n")
        self._file.flush()


def read_record(path: Path | str) -> list[dict[str, Any]]:
    """Every complete line of a JSONL record (a torn last line is skipped)."""
    out = []
    with Path(path).open(encoding="utf-8") as f:
        for line in f:
            if line.endswith("\n"):
                out.append(json.loads(line))
    return out
