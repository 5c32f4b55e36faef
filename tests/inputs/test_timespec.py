"""Durations and times: parsing, relative and absolute times, formatting."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from cmdctl.core.errors import InputError
from cmdctl.core.timespec import (
    format_age,
    format_duration,
    format_time,
    format_time_utc,
    parse_duration,
    parse_time,
)

NOW = 1_800_000_000.0  # 2027-01-15T08:00:00Z
EARLIER = 1_700_000_000.0  # 2023-11-14T22:13:20Z


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("200ms", 0.2),
        ("30s", 30),
        ("10m", 600),
        ("2h", 7200),
        ("7d", 604800),
        ("1h30m", 5400),
        ("1h 30m", 5400),
        ("1.5s", 1.5),
        ("45", 45),
        ("0", 0),
        (12, 12),
        (0.25, 0.25),
    ],
)
def test_durations(text: str | float, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10x", "m", "-5s", "1h30", "ten minutes", "1:30", "nan"])
def test_bad_durations_are_input_errors(text: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_duration(text)
    assert "duration" in caught.value.message
    assert caught.value.hint and "10m" in caught.value.hint


def test_bool_is_not_a_duration() -> None:
    with pytest.raises(InputError, match="expected a duration"):
        parse_duration(True)


def test_relative_and_now() -> None:
    assert parse_time("now", now=NOW) == NOW
    assert parse_time("+10m", now=NOW) == NOW + 600
    assert parse_time("+1h30m", now=NOW, base=NOW + 5) == NOW + 5 + 5400


def test_iso_with_zone() -> None:
    expected = datetime(2026, 11, 23, 20, 0, tzinfo=UTC).timestamp()
    assert parse_time("2026-11-23T21:00:00+01:00", now=EARLIER) == expected
    assert parse_time("2026-11-23T20:00:00Z", now=EARLIER) == expected


def test_iso_without_zone_is_local_time() -> None:
    local = time.mktime((2026, 11, 23, 21, 0, 0, 0, 0, -1))
    assert parse_time("2026-11-23T21:00:00", now=EARLIER) == local
    assert parse_time("2026-11-23 21:00", now=EARLIER) == local


@pytest.mark.parametrize("text", ["tomorrow", "+", "+10x", "2026-13-01T00:00:00", "21h"])
def test_bad_times(text: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_time(text, now=NOW)
    assert repr(text) in caught.value.message
    assert caught.value.hint and "+10m" in caught.value.hint


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.35, "350ms"),
        (4.5, "4.5s"),
        (3, "3s"),
        (42, "42s"),
        (187, "3m 07s"),
        (3900, "1h 05m"),
        (187_200, "2d 04h"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


def test_format_age() -> None:
    assert format_age(NOW - 300, now=NOW) == "5m 00s ago"
    assert format_age(NOW + 600, now=NOW) == "in 10m 00s"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("36526d", "duration '36526d' is longer than 100 years"),
        ("3000000d", "duration '3000000d' is longer than 100 years"),
        (1e300, "duration '1e+300' is longer than 100 years"),
    ],
)
def test_durations_beyond_a_century_are_input_errors(text: str | float, needle: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_duration(text)
    assert caught.value.message == needle
    assert caught.value.hint and caught.value.hint.startswith("at most 36525d")
    assert parse_duration("36525d") == 36525 * 86400.0


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("+3000000d", "relative time '+3000000d': duration '3000000d' is longer than 100 years"),
        ("10000-01-01", "bad time '10000-01-01'"),
        ("9999-12-31T23:59:59-01:00", "time '9999-12-31T23:59:59-01:00' is out of range"),
        ("1969-12-31T23:59:59Z", "time '1969-12-31T23:59:59Z' is out of range"),
    ],
)
def test_times_a_calendar_cannot_show_are_input_errors(text: str, needle: str) -> None:
    """Issue 13, item 6: `--at +3000000d` was accepted and broke every listing afterwards."""
    with pytest.raises(InputError) as caught:
        parse_time(text, now=NOW)
    assert caught.value.message.startswith(needle)
    assert caught.value.hint


def test_a_relative_time_from_a_far_base_is_bounded_too() -> None:
    base = parse_time("9999-12-01T00:00:00Z", now=NOW)
    with pytest.raises(InputError, match="out of range"):
        parse_time("+100d", now=NOW, base=base)


@pytest.mark.parametrize(
    ("value", "time_text", "duration_text"),
    [
        (1e300, "after year 9999", "over 100 years"),
        (-1e300, "before year 1", "-(over 100 years)"),
        (float("inf"), "after year 9999", "?"),
        (float("-inf"), "before year 1", "?"),
        (float("nan"), "?", "?"),
    ],
)
def test_formatting_never_raises_whatever_a_journal_holds(
    value: float, time_text: str, duration_text: str
) -> None:
    assert format_time(value) == time_text
    assert format_time_utc(value) == time_text
    assert format_duration(value) == duration_text
    assert format_age(value, now=NOW) in ("?", f"in {duration_text}", "over 100 years ago")


def test_format_time_utc() -> None:
    assert format_time_utc(1_800_000_000.0) == "2027-01-15T08:00:00Z"
