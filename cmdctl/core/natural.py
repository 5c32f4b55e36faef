"""How names sort for people: `bar-tv-2` before `bar-tv-10`."""

from __future__ import annotations

import re

_NUMBERS = re.compile(r"([0-9]+)")


def natural_key(text: str) -> tuple[tuple[str | int, ...], str]:
    """Sort key: runs of digits compare as numbers, the rest case-insensitively.

    `re.split` with a group alternates text and digits, so equal positions always hold the same
    type; the text itself breaks ties (`tv-01` and `tv-1`), so the order is total.
    """
    parts = _NUMBERS.split(text)
    return tuple(int(p) if i % 2 else p.casefold() for i, p in enumerate(parts)), text
