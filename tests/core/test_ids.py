"""Ids: the fast encoder gives exactly the Crockford base32 of the 128-bit value."""

from __future__ import annotations

import random

from cmdctl.core import ids


def _reference(value: int) -> str:
    # The definition, five bits at a time from the low end.
    chars = []
    for _ in range(ids.LENGTH):
        chars.append(ids.ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def test_encode_is_crockford_base32_of_the_value() -> None:
    rng = random.Random(5)
    edges = [0, 1, 31, 32, 1023, 1024, (1 << 80) - 1, 1 << 80, (1 << 127), (1 << 128) - 1]
    for value in edges + [rng.getrandbits(128) for _ in range(20_000)]:
        assert ids.encode(value) == _reference(value), value


def test_ids_sort_as_they_were_made_and_carry_their_time() -> None:
    clock = iter([5_000, 5_000, 4_000, 6_000]).__next__
    factory = ids.IdFactory(clock=clock, randbits=lambda bits: (1 << bits) - 2)
    made = [factory.new() for _ in range(4)]
    assert made == sorted(made) and len(set(made)) == 4
    assert [ids.timestamp_ms(i) for i in made] == [5_000, 5_000, 5_001, 6_000]
    assert all(ids.is_valid(i) for i in made)
