"""The cyclic garbage collector's pace while a pass runs: fewer, larger young collections.

A pass of 10,000 commands keeps tens of thousands of young objects alive for a while (its
entries, their `started` and `done` events, results) and makes few reference cycles. At
CPython's default (a young collection every 700 net allocations) the collector ran about a
hundred times per such pass and walked the same survivors again and again: 5-10 % of the
pass. Inside `paced()` a young collection waits for 10,000 net allocations instead (mypy
tunes its collector the same way). The previous thresholds come back when the last pass that
raised them ends: passes may overlap (`cmdctl serve` runs a drain and a `send` in one loop).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

#: Net allocations between young collections during a pass (CPython's default is 700).
YOUNG = 10_000

_depth = 0
_saved: tuple[int, int, int] = (700, 10, 10)


@contextmanager
def paced() -> Iterator[None]:
    """Young collections every `YOUNG` allocations until the last overlapping pass ends."""
    global _depth, _saved
    if _depth == 0:
        _saved = gc.get_threshold()
        young, *older = _saved
        if 0 < young < YOUNG:  # 0: collection is off; a larger one was chosen by the host
            gc.set_threshold(YOUNG, *older)
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            gc.set_threshold(*_saved)
