"""stdout that survives its reader, and what a command did for good (said if stdout fails).

Kept apart from `render` so the entry point can guard stdout without importing rich: every
command pays for what `cmdctl.cli.app.main` imports, `cmdctl --help` included.
"""

from __future__ import annotations

import errno
import io
import os
from typing import TextIO


class GuardedStdout(io.TextIOBase):
    """stdout that survives its reader: after a failed write, later output is dropped.

    A closed pipe (`cmdctl status | head -1`) or a full disk (`> /dev/full`) does not undo what
    the command did (a batch queued, a drain run), so it must not end the command half-way nor
    be reported as a bug: the command runs to its end and `cmdctl.cli.app.main` decides the code.
    """

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self.failure: OSError | None = None

    @property
    def encoding(self) -> str:  # type: ignore[override]  # a read-only attribute on TextIOBase
        return self.stream.encoding

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return self.stream.errors

    @property
    def broken_pipe(self) -> bool:
        """True when the reader went away (EPIPE): not worth a word."""
        return self.failure is not None and self.failure.errno == errno.EPIPE

    def isatty(self) -> bool:
        return self.stream.isatty()

    def fileno(self) -> int:
        return self.stream.fileno()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if self.failure is None:
            try:
                self.stream.write(text)
            except OSError as err:
                self._failed(err)
        return len(text)

    def flush(self) -> None:
        if self.failure is None:
            try:
                self.stream.flush()
            except OSError as err:
                self._failed(err)

    def _failed(self, err: OSError) -> None:
        self.failure = err
        # Text still buffered in the stream would fail again when the interpreter exits and
        # print "Exception ignored": point the descriptor at /dev/null (Python's SIGPIPE advice).
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, self.stream.fileno())
            os.close(devnull)
        except (OSError, ValueError):  # io.UnsupportedOperation is a ValueError and an OSError
            pass


#: What the command did for good, said on stderr if its output could not be written.
_effect: list[str] = []


def effect(text: str) -> None:
    """Record what the command changed durably (said if stdout fails): `queued batch X`."""
    _effect[:] = [text]


def take_effect() -> str | None:
    """The recorded effect (and forget it, for the next in-process invocation)."""
    text = _effect[0] if _effect else None
    _effect.clear()
    return text
