"""The rich console `render` makes: every string shown as plain text, control characters escaped.

Apart from `render` so that rich is imported only when a console is first needed.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.text import Text

from cmdctl.cli.render import safe


class SafeConsole(Console):
    """A console that shows every string as plain text with its control characters escaped.

    Every str rich is given (print arguments, table cells, titles) passes through `render_str`;
    colour is asked for with `Text` and styles, never with markup in a string.
    """

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(safe(text), **kwargs)
