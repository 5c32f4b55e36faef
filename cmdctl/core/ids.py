"""Unique, lexicographically sortable ids (ULID): 48-bit ms time + 80-bit random, Crockford base32.

Within one `IdFactory` ids are strictly increasing: when the clock has not moved (or went
backwards) the random part of the previous id is incremented instead of drawn afresh.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford base32: no I, L, O, U
LENGTH = 26
_RANDOM_BITS = 80
_RANDOM_MAX = (1 << _RANDOM_BITS) - 1
_TIME_MAX = (1 << 48) - 1


# Every pair of characters, by the 10 bits it encodes: 13 lookups make an id (bulk makes 100,000).
_PAIRS = tuple(a + b for a in ALPHABET for b in ALPHABET)


def encode(value: int) -> str:
    """A 128-bit integer as 26 Crockford base32 characters."""
    p = _PAIRS
    return "".join((
        p[value >> 120], p[value >> 110 & 1023], p[value >> 100 & 1023], p[value >> 90 & 1023],
        p[value >> 80 & 1023], p[value >> 70 & 1023], p[value >> 60 & 1023],
        p[value >> 50 & 1023], p[value >> 40 & 1023], p[value >> 30 & 1023],
        p[value >> 20 & 1023], p[value >> 10 & 1023], p[value & 1023],
    ))  # fmt: skip


def timestamp_ms(ulid: str) -> int:
    """The millisecond timestamp an id was made at."""
    value = 0
    for char in ulid[:10]:
        value = value * 32 + ALPHABET.index(char)
    return value


def is_valid(text: str) -> bool:
    """True when `text` has the shape of an id."""
    return len(text) == LENGTH and all(c in ALPHABET for c in text) and text[0] <= "7"


class IdFactory:
    """Makes strictly increasing ids; inject `clock` (ms) and `randbits` for determinism."""

    def __init__(
        self,
        clock: Callable[[], int] | None = None,
        randbits: Callable[[int], int] | None = None,
    ) -> None:
        self._clock = clock or time.time_ns
        self._clock_is_ns = clock is None
        self._randbits = randbits or (lambda bits: int.from_bytes(os.urandom(bits // 8)))
        self._last_ms = -1
        self._last_random = 0
        self._lock = threading.Lock()

    def new(self) -> str:
        """The next id."""
        now = self._clock()
        ms = now // 1_000_000 if self._clock_is_ns else now
        with self._lock:
            if ms <= self._last_ms:
                ms = self._last_ms
                rand = self._last_random + 1
                if rand > _RANDOM_MAX:  # 2**80 ids in one ms: borrow the next ms
                    ms, rand = ms + 1, self._randbits(_RANDOM_BITS)
            else:
                rand = self._randbits(_RANDOM_BITS)
            if ms > _TIME_MAX:
                raise ValueError("clock beyond the ULID range")
            self._last_ms, self._last_random = ms, rand
        return encode((ms << _RANDOM_BITS) | rand)


_default = IdFactory()


def new_id() -> str:
    """A fresh id from the process-wide factory."""
    return _default.new()
