"""Ansible-style patterns over the example venue."""

from __future__ import annotations

import pytest

from cmdctl.core.errors import InputError
from cmdctl.inputs.inventory import Inventory
from cmdctl.inputs.selection import select, select_names

BAR = tuple(f"bar-tv-{i}" for i in range(1, 7))
PATIO = ("patio-tv-1", "patio-tv-2")
IR = ("ir-blaster-a", "ir-blaster-b")


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("bar-tv-3", ("bar-tv-3",)),
        ("patio", PATIO),
        ("all", (*BAR, *PATIO, *IR)),
        ("tvs", (*BAR, *PATIO)),
        ("bar-tv-*", BAR),
        ("*-tv-1", ("bar-tv-1", "patio-tv-1")),
        ("ir-blaster-[ab]", IR),
        ("patio,bar-tv-1", ("bar-tv-1", *PATIO)),  # inventory order, not pattern order
        ("patio:bar-tv-1", ("bar-tv-1", *PATIO)),  # ':' is a union separator too, as in Ansible
        ("bar:&tvs", BAR),
        ("all:!patio", (*BAR, *IR)),
        ("!patio", (*BAR, *IR)),  # only exclusions: starts from all, as in Ansible
        ("&ir", IR),
        ("bar,patio:&tvs:!bar-tv-3", (*BAR[:2], *BAR[3:], *PATIO)),
        ("!bar-tv-3:bar,patio:&tvs", (*BAR[:2], *BAR[3:], *PATIO)),  # order does not matter
        ("venue:!bar", PATIO),
        ("venue:&ir", ("ir-blaster-a",)),
        (" bar-tv-1 , patio-tv-2 ", ("bar-tv-1", "patio-tv-2")),
        ("bar-tv-1,", ("bar-tv-1",)),
    ],
)
def test_patterns(venue: Inventory, pattern: str, expected: tuple[str, ...]) -> None:
    assert select_names(venue, pattern) == expected
    assert tuple(device.name for device in select(venue, pattern)) == expected


@pytest.mark.parametrize(
    ("pattern", "message", "hint"),
    [
        ("tv-*", "pattern 'tv-*' matches no device or group", None),
        ("bar-tv-9", "pattern 'bar-tv-9' matches no device or group", "did you mean 'bar-tv-6'?"),
        (
            "bar:&patoi",
            "pattern 'patoi' (in 'bar:&patoi') matches no device or group",
            "did you mean 'patio'?",
        ),
        ("all:!nosuch", "pattern 'nosuch' (in 'all:!nosuch') matches no device or group", None),
        ("bar:&patio", "pattern 'bar:&patio' matches no device", None),
        ("patio:!tvs", "pattern 'patio:!tvs' matches no device", None),
        ("", "empty pattern ''", None),
        (",", "empty pattern ','", None),
        ("bar:&", "pattern 'bar:&' has an empty '&' or '!' part", None),
    ],
)
def test_pattern_errors(venue: Inventory, pattern: str, message: str, hint: str | None) -> None:
    with pytest.raises(InputError) as caught:
        select_names(venue, pattern)
    assert caught.value.message == message
    if hint is not None:
        assert caught.value.hint == hint


def test_nothing_matching_never_returns_empty(venue: Inventory) -> None:
    for pattern in ("bar:&patio", "ir:&tvs", "all:!all"):
        with pytest.raises(InputError):
            select(venue, pattern)
