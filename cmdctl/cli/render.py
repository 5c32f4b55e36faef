"""What cmdctl shows a person: consoles and JSON. The only printing module outside cli/.

Rich decides colour and control codes: `NO_COLOR` turns colour off, and output that is not a
terminal (cron, pipes) gets plain text with no control codes and no animation.

Text from playbooks, the inventory, the journal and devices is shown as it is, never as markup,
and its control characters are shown escaped (`\\x1b`), to terminals and pipes alike: a playbook
`name:` must not be able to retitle, clear or recolour the terminal of whoever runs `status`.
"""

from __future__ import annotations

import json
import os
import re
import sys
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from rich.console import Console

# rich (~20 ms of imports) is imported when a console is first made: a line of data written
# off a terminal (`line`: what `send` prints) does not need one.

#: C0 controls but newline and tab, DEL, C1 (CSI is 0x9b), and the bidi overrides and line
#: separators that reorder or break what a terminal shows.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def safe(text: str) -> str:
    """`text` with its control characters written out: ESC becomes `\\x1b`."""
    return _UNSAFE.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def stdout() -> Console:
    """Console for data (stdout)."""
    return _current(stderr=False)


def stderr() -> Console:
    """Console for progress, warnings and errors (stderr)."""
    return _current(stderr=True)


#: The console made for each stream, keyed by "is it stderr".
_consoles: dict[bool, Console] = {}


def _current(*, stderr: bool) -> Console:
    # A console fixes its width, colour and terminal-ness from its stream and the environment
    # when it is made: a new stream (an in-process invocation, redirect_stdout) gets a new one.
    # While a Live display redirects the stream, rich's proxy stands for the stream it wraps.
    stream = sys.stderr if stderr else sys.stdout
    stream = getattr(stream, "rich_proxied_file", stream)
    console = _consoles.get(stderr)
    if console is None or console.file is not stream:
        console = _consoles[stderr] = _console(stream, stderr=stderr)
    return console


def _console(stream: TextIO, *, stderr: bool) -> Console:
    from cmdctl.cli.safeconsole import SafeConsole

    tty = stream.isatty()
    # Off a terminal rich would wrap at 80 columns; tables of ids need more room than that.
    width = None if tty else int(os.environ.get("COLUMNS", "160"))
    return SafeConsole(
        file=stream,
        stderr=stderr,
        markup=False,
        highlight=False,
        no_color="NO_COLOR" in os.environ or None,
        width=width,
        soft_wrap=not tty,
    )


def emit_json(data: Any) -> None:
    """Write `data` as JSON on stdout (one document, newline-terminated)."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=str))
    sys.stdout.write("\n")


def warn(message: str) -> None:
    """One warning line on stderr."""
    info(f"warning: {message}")


def info(message: str) -> None:
    """One informational line on stderr (suppressed by callers under --quiet)."""
    if not _write_plain(sys.stderr, message):
        stderr().print(message, markup=False)


def line(message: str) -> None:
    """One line of data on stdout, never interpreted as markup."""
    if not _write_plain(sys.stdout, message):
        stdout().print(message, markup=False)


def stderr_is_terminal() -> bool:
    """`stderr().is_terminal`, without making a console (or importing rich) off a terminal."""
    stream = sys.stderr
    if _plain_stream(stream):
        return False
    return stderr().is_terminal


def _write_plain(stream: TextIO, message: str) -> bool:
    """Write `message` without rich when rich would write it as `safe(message)` and a newline
    (a stream that is not a terminal to rich, nothing in it rich would replace or expand);
    False, writing nothing, otherwise.

    Byte for byte what rich writes (tests/cli/test_render_plain.py), and flushed as rich
    flushes every print: a cron drain or a `send` never imports rich (~20 ms).
    """
    if not _plain_stream(stream) or _RICH_CHANGES.search(message) is not None:
        return False
    stream.write(safe(message) + "\n")
    stream.flush()
    return True


#: What rich would turn into something else: an emoji code (`:tv:`; rich's own pattern is
#: narrower) or a tab (expanded).
_RICH_CHANGES = re.compile(r":\S*:|\t")
#: Environment that makes rich treat a pipe as a terminal.
_RICH_TERMINAL_ENV = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")


def _plain_stream(stream: TextIO) -> bool:
    """Not a terminal to rich: not one, not wrapped by a live display, not forced to be one."""
    return (
        not hasattr(stream, "rich_proxied_file")
        and not stream.isatty()
        and not any(name in os.environ for name in _RICH_TERMINAL_ENV)
    )
