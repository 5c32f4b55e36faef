"""Times people say (`18:00`, `today 18:00`, `tomorrow 07:30`, `fri 18:00`), the refusal of a
time already past, and daylight saving time; independent of the machine's zone and clock."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from cmdctl.core.errors import InputError
from cmdctl.core.timespec import check_time, format_time, format_when, parse_time
from tests.localzone import local_zone

BERLIN = ZoneInfo("Europe/Berlin")


def berlin(*when: int) -> float:
    """Epoch seconds of a wall-clock time in Berlin (fold=0)."""
    return datetime(*when, tzinfo=BERLIN).timestamp()  # type: ignore[misc]


def utc(*when: int) -> float:
    return datetime(*when, tzinfo=UTC).timestamp()  # type: ignore[misc]


WED_10 = berlin(2026, 3, 25, 10, 0)  # a Wednesday, 10:00 CET (winter time, UTC+1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("18:00", berlin(2026, 3, 25, 18, 0)),  # still ahead today
        ("18:00:30", berlin(2026, 3, 25, 18, 0, 30)),
        ("7:30", berlin(2026, 3, 26, 7, 30)),  # past today: tomorrow
        ("10:00", WED_10),  # exactly now is not past
        ("  today 18:00 ", berlin(2026, 3, 25, 18, 0)),
        ("Today 23:59:59", berlin(2026, 3, 25, 23, 59, 59)),
        ("tomorrow 07:30", berlin(2026, 3, 26, 7, 30)),
        ("TOMORROW 18:00", berlin(2026, 3, 26, 18, 0)),
        ("fri 18:00", berlin(2026, 3, 27, 18, 0)),
        ("Fri 18:00", berlin(2026, 3, 27, 18, 0)),
        ("friday 18:00", berlin(2026, 3, 27, 18, 0)),
        ("FRIDAY 18:00", berlin(2026, 3, 27, 18, 0)),
        ("wed 18:00", berlin(2026, 3, 25, 18, 0)),  # today is Wednesday and 18:00 is ahead
        ("wednesday 09:00", berlin(2026, 4, 1, 9, 0)),  # today, but past: in 7 days
        ("tue 09:00", berlin(2026, 3, 31, 9, 0)),  # after the clocks went forward: CEST
        ("thu 00:00", berlin(2026, 3, 26, 0, 0)),
    ],
)
def test_times_people_say(text: str, expected: float) -> None:
    assert parse_time(text, now=WED_10, tz=BERLIN) == expected
    check_time(text)


def test_a_week_crossing_the_clock_change_keeps_the_wall_clock() -> None:
    """Sunday 18:00 after the clocks go forward is 16:00 UTC, not 17:00 (24 h after Saturday)."""
    assert parse_time("sun 18:00", now=WED_10, tz=BERLIN) == utc(2026, 3, 29, 16, 0)
    saturday_evening = berlin(2026, 3, 28, 19, 0)
    # 23 hours on the wall clock, 22 on a stopwatch: the night is an hour short
    assert parse_time("18:00", now=saturday_evening, tz=BERLIN) - saturday_evening == 22 * 3600


def test_a_time_the_clock_skips_is_shifted_forward_by_the_gap() -> None:
    """Europe/Berlin, 2026-03-29: 02:00 CET becomes 03:00 CEST; 02:30 never shows."""
    one_am = berlin(2026, 3, 29, 1, 0)
    half_past_three_cest = utc(2026, 3, 29, 1, 30)
    assert parse_time("02:30", now=one_am, tz=BERLIN) == half_past_three_cest
    assert parse_time("today 02:30", now=one_am, tz=BERLIN) == half_past_three_cest
    assert parse_time("sun 02:30", now=WED_10, tz=BERLIN) == half_past_three_cest
    assert parse_time("2026-03-29T02:30", now=one_am, tz=BERLIN) == half_past_three_cest
    assert format_when(half_past_three_cest, now=one_am, tz=BERLIN) == "03:30 today"


def test_a_time_the_clock_shows_twice_is_the_first() -> None:
    """Europe/Berlin, 2026-10-25: 03:00 CEST becomes 02:00 CET; 02:30 shows twice."""
    midnight = berlin(2026, 10, 25, 0, 0)
    first = utc(2026, 10, 25, 0, 30)  # 02:30 CEST; the second one is 01:30 UTC
    assert parse_time("02:30", now=midnight, tz=BERLIN) == first
    assert parse_time("today 02:30", now=midnight, tz=BERLIN) == first
    assert parse_time("sun 02:30", now=berlin(2026, 10, 21, 12, 0), tz=BERLIN) == first


@pytest.fixture
def berlin_local() -> Iterator[None]:
    with local_zone("Europe/Berlin"):
        yield


@pytest.mark.usefixtures("berlin_local")
@pytest.mark.parametrize(
    ("text", "now"),
    [
        ("02:30", berlin(2026, 3, 29, 1, 0)),
        ("today 02:30", berlin(2026, 10, 25, 0, 0)),
        ("sun 18:00", WED_10),
        ("tomorrow 07:30", berlin(2026, 3, 28, 12, 0)),
        ("2026-03-29T02:30", berlin(2026, 3, 29, 1, 0)),
    ],
)
def test_the_process_zone_is_read_like_an_explicit_one(text: str, now: float) -> None:
    assert parse_time(text, now=now) == parse_time(text, now=now, tz=BERLIN)


def test_the_local_zone_decides_which_instant_a_clock_time_is() -> None:
    now = utc(2026, 3, 25, 12, 0)
    with local_zone("Europe/Berlin"):
        in_berlin = parse_time("18:00", now=now)
    with local_zone("America/New_York"):
        in_new_york = parse_time("18:00", now=now)
    assert (in_berlin, in_new_york) == (utc(2026, 3, 25, 17, 0), utc(2026, 3, 25, 22, 0))


def test_next_counts_from_base_and_today_from_now() -> None:
    """An `expires: 20:00` of a batch starting Friday 18:00 is Friday 20:00, not tonight."""
    friday_six = berlin(2026, 3, 27, 18, 0)
    assert parse_time("20:00", now=WED_10, base=friday_six, tz=BERLIN) == berlin(2026, 3, 27, 20)
    assert parse_time("sat 09:00", now=WED_10, base=friday_six, tz=BERLIN) == berlin(2026, 3, 28, 9)
    assert parse_time("today 20:00", now=WED_10, base=friday_six, tz=BERLIN) == berlin(
        2026, 3, 25, 20
    )


@pytest.mark.parametrize(
    ("text", "needle", "hint"),
    [
        (
            "today 09:00",
            "time 'today 09:00' is in the past (1h 00m ago, at 2026-03-25 09:00:00)",
            "write 'tomorrow 09:00', or 09:00 alone for the next 09:00",
        ),
        (
            "today 9:59:30",
            "time 'today 9:59:30' is in the past (30s ago",
            "write 'tomorrow 09:59:30'",
        ),
        (
            "2026-03-25T09:59:59+01:00",
            "time '2026-03-25T09:59:59+01:00' is in the past (1s ago",
            "write a time still ahead, 'now', or a relative time like +10m",
        ),
        (
            "2020-01-01",
            "time '2020-01-01' is in the past (2275d 10h ago, at 2020-01-01 00:00:00)",
            "'now'",
        ),
    ],
)
def test_an_absolute_time_in_the_past_is_refused(text: str, needle: str, hint: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_time(text, now=WED_10, tz=BERLIN)
    assert caught.value.message.startswith(needle)
    assert caught.value.hint and hint in caught.value.hint
    check_time(text)  # the form is fine: only the clock makes it past


def test_now_and_relative_times_are_never_past() -> None:
    assert parse_time("now", now=WED_10, tz=BERLIN) == WED_10
    assert parse_time("NOW", now=WED_10, tz=BERLIN) == WED_10
    assert parse_time("+0s", now=WED_10, tz=BERLIN) == WED_10


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("24:00", "bad time '24:00': no such time of day"),
        ("18:60", "bad time '18:60': no such time of day"),
        ("today 18:00:61", "no such time of day"),
        ("someday 18:00", "bad time 'someday 18:00': 'someday' is no day"),
        ("fr 18:00", "'fr' is no day"),
        ("fri", "bad time 'fri'"),
        ("fri18:00", "bad time 'fri18:00'"),
        ("18", "bad time '18'"),
        ("18:0", "bad time '18:0'"),
        ("6pm", "bad time '6pm'"),
        ("fri 18:00 tomorrow", "bad time"),
    ],
)
def test_bad_clock_times(text: str, needle: str) -> None:
    for check in (lambda: parse_time(text, now=WED_10, tz=BERLIN), lambda: check_time(text)):
        with pytest.raises(InputError) as caught:
            check()
        assert needle in caught.value.message
        assert caught.value.hint


def test_check_time_reads_the_form_only() -> None:
    """Whatever the zone, `today 00:00` is a form a playbook may hold (issue: a load-time check
    with now=0.0 put it before 1970 west of Greenwich)."""
    with local_zone("America/Los_Angeles"):
        check_time("today 00:00")
    with pytest.raises(InputError, match="out of range"):
        check_time("1969-12-31T23:59:59Z")
    with pytest.raises(InputError, match="longer than 100 years"):
        check_time("+36526d")


@pytest.mark.parametrize(
    ("when", "text"),
    [
        (berlin(2026, 3, 25, 18, 0), "18:00 today"),
        (berlin(2026, 3, 25, 18, 0, 30), "18:00:30 today"),
        (berlin(2026, 3, 25, 9, 0), "09:00 today"),
        (berlin(2026, 3, 26, 7, 30), "07:30 tomorrow"),
        (berlin(2026, 3, 27, 18, 0), "Fri 2026-03-27 18:00"),
        (berlin(2026, 3, 24, 18, 0), "Tue 2026-03-24 18:00"),
        (1e300, "after year 9999"),
        (float("nan"), "?"),
    ],
)
def test_format_when(when: float, text: str) -> None:
    assert format_when(when, now=WED_10, tz=BERLIN) == text


def test_format_time_in_a_zone() -> None:
    assert format_time(utc(2026, 3, 29, 1, 30), tz=BERLIN) == "2026-03-29 03:30:00"
