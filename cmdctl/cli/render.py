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
from typing import Any, TextIO

from rich.console import Console
from rich.text import Text

#: C0 controls but newline and tab, DEL, C1 (CSI is 0x9b), and the bidi overrides and line
#: separators that reorder or break what a terminal shows.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def safe(text: str) -> str:
    """`text` with its control characters written out: ESC becomes `\\x1b`."""
    return _UNSAFE.sub(_escaped, text)


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


class _SafeConsole(Console):
    """A console that shows every string as plain text with its control characters escaped.

    Every str rich is given (print arguments, table cells, titles) passes through `render_str`;
    colour is asked for with `Text` and styles, never with markup in a string.
    """

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(safe(text), **kwargs)


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
    tty = stream.isatty()
    # Off a terminal rich would wrap at 80 columns; tables of ids need more room than that.
    width = None if tty else int(os.environ.get("COLUMNS", "160"))
    return _SafeConsole(
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
    stderr().print(f"warning: {message}", markup=False)


def info(message: str) -> None:
    """One informational line on stderr (suppressed by callers under --quiet)."""
    stderr().print(message, markup=False)


def line(message: str) -> None:
    """One line of data on stdout, never interpreted as markup."""
    stdout().print(message, markup=False)
