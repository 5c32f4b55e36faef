"""Inventory `pace`: per device, per group, in `defaults`, and how they resolve."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cmdctl.core.errors import InputError
from cmdctl.inputs.inventory import Device, load_inventory

from .conftest import EXAMPLE_ENV, EXAMPLES

Write = Callable[[str, str], Path]

VENUE = """\
devices:
  tv-1: {host: a, groups: [bar, tvs]}
  tv-2: {host: b, groups: [bar, tvs]}
  tv-3: {host: c, groups: [tvs]}
  ir-1: {host: d, groups: [ir, bar]}
  ir-2: {host: e, groups: [ir]}
groups:
  venue: [bar, ir]
"""


def _paces(write: Write, text: str) -> dict[str, float | None]:
    inv = load_inventory(write("devices.yml", text), env={})
    return {device.name: device.pace for device in inv.devices}


def test_example_venue_paces_the_blasters() -> None:
    inv = load_inventory(EXAMPLES / "devices.yml", env=EXAMPLE_ENV)
    assert {d.name: d.pace for d in inv.devices if d.pace is not None} == {
        "ir-blaster-a": 0.2,
        "ir-blaster-b": 0.2,
    }


def test_no_pace_anywhere_is_none(write: Write) -> None:
    assert set(_paces(write, VENUE).values()) == {None}


def test_defaults_apply_to_every_device(write: Write) -> None:
    assert set(_paces(write, "defaults: {pace: 50ms}\n" + VENUE).values()) == {0.05}


def test_resolution_order(write: Write) -> None:
    text = VENUE.replace("tv-2: {host: b,", "tv-2: {host: b, pace: 0s,") + (
        "defaults: {pace: 10ms}\n"
        "pace:\n"
        "  all: 5s          # the biggest group: least specific\n"
        "  tvs: 1s\n"
        "  bar: 2s\n"
        "  ir: 200ms\n"
        "  tv-3: 300ms      # an entry naming the device beats its groups\n"
    )
    paces = _paces(write, text)
    assert paces["tv-1"] == 2.0  # bar and tvs have 3 devices each: the slowest
    assert paces["tv-2"] == 0.0  # its own key wins over everything, even 0s
    assert paces["tv-3"] == 0.3
    assert paces["ir-2"] == 0.2  # ir (2 devices) beats all (5)
    assert paces["ir-1"] == 0.2  # ir (2) is more specific than bar (3)


def test_equal_sized_groups_take_the_slowest(write: Write) -> None:
    text = VENUE + "pace: {tvs: 1s, bar: 2s}\n"  # both 3 devices; tv-1 and tv-2 are in both
    paces = _paces(write, text)
    assert (paces["tv-1"], paces["tv-2"], paces["tv-3"], paces["ir-1"]) == (2.0, 2.0, 1.0, 2.0)
    assert paces["ir-2"] is None  # in neither, and no defaults
    text = VENUE + "pace: {bar: 2s, tvs: 1s}\n"  # the order written does not matter
    assert _paces(write, text)["tv-1"] == 2.0


def test_nested_groups_count_their_devices(write: Write) -> None:
    paces = _paces(write, VENUE + "pace: {venue: 1s, ir: 100ms}\n")
    assert paces["tv-3"] is None  # venue = bar + ir: tv-3 is in neither
    assert (paces["tv-1"], paces["ir-1"], paces["ir-2"]) == (1.0, 0.1, 0.1)


@pytest.mark.parametrize(
    ("extra", "where", "message", "hint"),
    [
        (
            "pace: {irr: 200ms}\n",
            (10, 8),
            "pace names 'irr', which is no device or group",
            "did you mean 'ir'?",
        ),
        ("pace: {ir: fast}\n", (10, 12), "pace: bad duration 'fast'", None),
        ("pace: {ir: -1s}\n", (10, 12), "pace: bad duration '-1s'", None),
        ("pace: 200ms\n", (10, 7), "pace must be a mapping, not '200ms'", None),
        ("defaults: {pace: [1s]}\n", (10, 18), "pace must be a single value, not a list", None),
        ("defaults: {pace: yes}\n", (10, 18), "pace must not be 'yes'", None),
        (
            "defaults: {pase: 1s}\n",
            (10, 12),
            "unknown key 'pase' in defaults",
            "did you mean 'pace'?",
        ),
    ],
)
def test_pace_errors_located(
    write: Write, extra: str, where: tuple[int, int], message: str, hint: str | None
) -> None:
    path = write("devices.yml", VENUE + "\n" + extra)
    with pytest.raises(InputError) as caught:
        load_inventory(path, env={})
    err = caught.value
    assert (err.file, (err.line, err.column)) == (str(path), where)
    assert err.message.startswith(message), err.message
    if hint is not None:
        assert err.hint == hint


def test_device_pace_key_located(write: Write) -> None:
    path = write("devices.yml", "devices:\n  tv-1:\n    host: a\n    pace: soon\n")
    with pytest.raises(InputError) as caught:
        load_inventory(path, env={})
    assert (caught.value.line, caught.value.column) == (4, 11)


def test_device_without_pace_still_constructs() -> None:
    device = Device("x", "127.0.0.1")  # other code builds Device positionally
    assert device.pace is None
