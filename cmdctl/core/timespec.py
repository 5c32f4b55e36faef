"""Durations (`200ms`, `10m`, `1h30m`) and points in time (`now`, `+10m`, `18:00`, ISO 8601).

Pure functions: every time is epoch seconds and every relative time takes `now` explicitly.
Errors are `InputError`s without a location; loaders attach the location of the value.

Times people say are read in the local time zone (the process's, or `tz`):

- `18:00` (or `18:00:30`): the next 18:00, today if it is still ahead, else tomorrow;
- `today 18:00`, `tomorrow 07:30`: on that day (`today` at a time already past is an error);
- `fri 18:00`, `Friday 18:00` (any case): the next Friday at 18:00, today if today is a Friday
  and 18:00 is still ahead, else in 7 days.

A wall-clock time becomes an instant through the zone's rules for that date, as Java's
`ZonedDateTime` and PEP 495 (`fold=0`) decide: a time the clock skips (02:30 on the night
it goes forward) is shifted forward by the gap (03:30, summer time); a time the clock shows
twice (02:30 on the night it goes back) is the first of the two (summer time).

An absolute time in the past (ISO 8601 or `today`) is an error: a command due then would run at
once, which is not what its author asked for. `now` and `+DURATION` never are.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from datetime import time as clock_time

from cmdctl.core.errors import InputError

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*")
_CLOCK = re.compile(r"(?:([a-z]+)\s+)?([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?")
_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_WEEKDAYS = {name: n for n, day in enumerate(_DAYS) for name in (day, day[:3])}
_DURATION_HINT = "write a duration like 200ms, 30s, 10m, 2h, 7d or 1h30m"
_TIME_HINT = (
    "write 'now', +10m, 18:00, 'tomorrow 07:30', 'fri 18:00' "
    "or ISO 8601 like 2026-11-23T21:00:00+01:00"
)
_PAST_HINT = "write a time still ahead, 'now', or a relative time like +10m"

#: The longest duration accepted anywhere (100 years): longer is a typo, and must not reach the
#: journal where every later listing would have to print it.
MAX_DURATION_S = 36525 * 86400.0
#: The latest time accepted (9999-12-31T23:59:59Z): Python's datetime ends with year 9999.
MAX_TIME = 253402300799.0


def parse_duration(text: str | float) -> float:
    """Seconds in a duration: `200ms`, `30s`, `10m`, `2h`, `7d`, `1h30m`, or a plain number (s)."""
    if isinstance(text, bool):
        raise InputError(f"expected a duration, got {text!r}", hint=_DURATION_HINT)
    if isinstance(text, int | float):
        return _checked(float(text), str(text))
    spec = text.strip()
    if _NUMBER.fullmatch(spec):
        return _checked(float(spec), text)
    total = 0.0
    pos = 0
    while pos < len(spec):
        match = _PART.match(spec, pos)
        if match is None:
            raise InputError(f"bad duration {text!r}", hint=_DURATION_HINT)
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if not spec:
        raise InputError("empty duration", hint=_DURATION_HINT)
    return _checked(total, text)


def _checked(seconds: float, text: str) -> float:
    if not math.isfinite(seconds) or seconds < 0:
        raise InputError(f"bad duration {text!r}: must be finite and >= 0", hint=_DURATION_HINT)
    if seconds > MAX_DURATION_S:
        raise DurationTooLong(
            f"duration {text!r} is longer than 100 years", hint="at most 36525d; " + _DURATION_HINT
        )
    return seconds


class DurationTooLong(InputError):
    """A well-formed duration longer than `MAX_DURATION_S` (a caller with a smaller bound of its
    own may catch it to say that bound instead)."""


def is_relative(text: str) -> bool:
    """True for a time written relative to something (`+10m`)."""
    return text.strip().startswith("+")


@dataclass(frozen=True, slots=True)
class _Said:
    """A time as people say it: a clock time, on a named day or on the next day it comes."""

    clock: clock_time
    day: str | None = None  # "today" | "tomorrow"; None: the next time the clock shows it
    weekday: int | None = None  # 0 = Monday: the next such day


def check_time(text: str) -> None:
    """Raise `InputError` unless `parse_time` can read `text` (at load, before `now` is known).

    Only what a later `now` cannot change is checked: the form, and the range of an ISO time.
    """
    spec = text.strip()
    if spec.lower() == "now":
        return
    if spec.startswith("+"):
        _relative(spec, text)
    elif _said(spec, text) is None:
        _iso(spec, text)


def parse_time(
    text: str, *, now: float, base: float | None = None, tz: tzinfo | None = None
) -> float:
    """Epoch seconds for `now`, `+DURATION`, a time people say (`18:00`, `tomorrow 07:30`,
    `fri 18:00`) or ISO 8601; an absolute time before `now` is an `InputError`.

    `base` (default `now`) is where `+DURATION` counts from and where "the next 18:00" or "the
    next Friday" is looked for (an `expires` counts from the start); `today` and `tomorrow` are
    always `now`'s days. Clock times and an ISO time without a zone are local time (`tz`, by
    default the process's zone), as a person reading a clock on the wall means it.
    """
    spec = text.strip()
    if spec.lower() == "now":
        return now
    start = now if base is None else base
    if spec.startswith("+"):
        return _in_range(start + _relative(spec, text), text)
    said = _said(spec, text)
    if said is not None:
        epoch = _resolve(said, text, now=now, start=start, tz=tz)
    else:
        epoch = _iso(spec, text, tz)
    if epoch < now:
        hint = _PAST_HINT
        if said is not None and said.day == "today":
            at = said.clock.isoformat("minutes" if said.clock.second == 0 else "seconds")
            hint = f"write 'tomorrow {at}', or {at} alone for the next {at}"
        raise InputError(
            f"time {text!r} is in the past ({format_age(epoch, now=now)}, "
            f"at {format_time(epoch, tz=tz)})",
            hint=hint,
        )
    return epoch


def _relative(spec: str, text: str) -> float:
    try:
        return parse_duration(spec[1:])
    except DurationTooLong as err:
        raise InputError(f"relative time {text!r}: {err.message}", hint=err.hint) from err
    except InputError as err:
        raise InputError(f"bad relative time {text!r}", hint=_TIME_HINT) from err


def _said(spec: str, text: str) -> _Said | None:
    """The time people say in `spec`, or None when it is not written that way (ISO 8601)."""
    match = _CLOCK.fullmatch(spec.lower())
    if match is None:
        return None
    word, hours, minutes, secs = match.groups()
    try:
        clock = clock_time(int(hours), int(minutes), int(secs or 0))
    except ValueError:
        raise InputError(f"bad time {text!r}: no such time of day", hint=_TIME_HINT) from None
    if word is None:
        return _Said(clock)
    if word in ("today", "tomorrow"):
        return _Said(clock, day=word)
    if word in _WEEKDAYS:
        return _Said(clock, weekday=_WEEKDAYS[word])
    raise InputError(
        f"bad time {text!r}: {word!r} is no day",
        hint="write today, tomorrow, or a weekday like fri or friday",
    )


def _resolve(said: _Said, text: str, *, now: float, start: float, tz: tzinfo | None) -> float:
    try:
        if said.day is not None:
            day = _local_date(now, tz) + timedelta(days=said.day == "tomorrow")
            return _in_range(_wall(day, said.clock, tz), text)
        first = _local_date(start, tz)
        for ahead in range(8):
            day = first + timedelta(days=ahead)
            if said.weekday is not None and day.weekday() != said.weekday:
                continue
            epoch = _wall(day, said.clock, tz)
            if epoch >= start:
                return _in_range(epoch, text)
    except (OverflowError, OSError, ValueError) as err:
        raise InputError(f"time {text!r} is out of range", hint=_TIME_HINT) from err
    raise AssertionError("a weekday comes within 8 days")  # pragma: no cover


def _local_date(epoch: float, tz: tzinfo | None) -> date:
    return datetime.fromtimestamp(epoch, tz).date()


def _wall(day: date, clock: clock_time, tz: tzinfo | None) -> float:
    """The instant a wall clock in `tz` (None: local) shows `clock` on `day`; fold=0 decides
    a skipped time (shifted forward by the gap) and a repeated one (the first)."""
    return datetime.combine(day, clock, tzinfo=tz).timestamp()


def _iso(spec: str, text: str, tz: tzinfo | None = None) -> float:
    try:
        moment = datetime.fromisoformat(spec)
    except ValueError as err:
        raise InputError(f"bad time {text!r}", hint=_TIME_HINT) from err
    if moment.tzinfo is None and tz is not None:
        moment = moment.replace(tzinfo=tz)
    try:
        epoch = moment.timestamp()  # naive: interpreted as local time
    except (OverflowError, OSError, ValueError) as err:
        raise InputError(f"time {text!r} is out of range", hint=_TIME_HINT) from err
    return _in_range(epoch, text)


def _in_range(epoch: float, text: str) -> float:
    if not 0 <= epoch <= MAX_TIME:
        raise InputError(
            f"time {text!r} is out of range: it must fall between 1970 and the end of 9999",
            hint=_TIME_HINT,
        )
    return epoch


def format_duration(seconds: float) -> str:
    """A short human duration: `350ms`, `42s`, `3m 07s`, `1h 05m`, `2d 04h`; never raises.

    Whatever a journal holds (written by hand, by an older version): beyond 100 years it says
    so, and a value that is no number of seconds at all (NaN, infinity) is `?`.
    """
    if not math.isfinite(seconds):
        return "?"
    if abs(seconds) > MAX_DURATION_S:
        return "-(over 100 years)" if seconds < 0 else "over 100 years"
    if seconds < 0:
        return "-" + format_duration(-seconds)
    if seconds < 1:
        return f"{round(seconds * 1000)}ms"
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s".replace(".0s", "s")
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours:02d}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {secs:02d}s"


def format_age(then: float, *, now: float) -> str:
    """How long ago (`5m 03s ago`) or from now (`in 10m 00s`) an epoch time is; never raises."""
    delta = now - then
    if not math.isfinite(delta):
        return "?"
    if delta >= 0:
        return f"{format_duration(delta)} ago"
    return f"in {format_duration(-delta)}"


def format_time(epoch: float, *, tz: tzinfo | None = None) -> str:
    """An epoch time as local wall-clock time, `2026-11-23 21:00:05`; never raises.

    A time no calendar can show (NaN, infinity, beyond year 9999 or before year 1) is said as
    such instead, whatever a journal holds.
    """
    return _formatted(epoch, "%Y-%m-%d %H:%M:%S", tz)


def format_time_utc(epoch: float) -> str:
    """An epoch time in ISO 8601 UTC, `2026-11-23T20:00:05Z`; never raises (see `format_time`)."""
    return _formatted(epoch, "%Y-%m-%dT%H:%M:%SZ", UTC)


def format_when(epoch: float, *, now: float, tz: tzinfo | None = None) -> str:
    """A local time the way people say it: `18:00 today`, `07:30:15 tomorrow`, `Fri 2026-11-27
    18:00` (seconds only when not zero); never raises (see `format_time`)."""
    try:
        moment = datetime.fromtimestamp(epoch, tz)
        days = (moment.date() - _local_date(now, tz)).days
    except (OverflowError, OSError, ValueError, TypeError):
        return format_time(epoch, tz=tz)
    clock = moment.strftime("%H:%M" if moment.second == 0 else "%H:%M:%S")
    if days == 0:
        return f"{clock} today"
    if days == 1:
        return f"{clock} tomorrow"
    return f"{_DAYS[moment.weekday()][:3].title()} {moment:%Y-%m-%d} {clock}"


def _formatted(epoch: float, pattern: str, tz: tzinfo | None) -> str:
    if isinstance(epoch, bool) or not isinstance(epoch, int | float) or math.isnan(epoch):
        return "?"
    try:
        return datetime.fromtimestamp(epoch, tz).strftime(pattern)
    except (OverflowError, OSError, ValueError):
        return "after year 9999" if epoch > 0 else "before year 1"


def schedule(
    at: str | None,
    expires: str | None,
    now: float,
    *,
    at_name: str = "--at",
    expires_name: str = "--expires",
) -> tuple[float, float | None]:
    """When a sent command is due (`at`, default now) and expires (relative: from `at`);
    errors name the options as `at_name` / `expires_name`."""
    try:
        not_before = now if at is None else parse_time(at, now=now)
    except InputError as err:
        raise InputError(f"{at_name}: {err.message}", hint=err.hint) from None
    if expires is None:
        return not_before, None
    try:
        until = parse_time(expires, now=now, base=not_before)
    except InputError as err:
        raise InputError(f"{expires_name}: {err.message}", hint=err.hint) from None
    if until <= max(now, not_before):
        raise InputError(
            f"{expires_name} {expires} is not after the start time; the command would expire "
            "unrun",
            hint=f"use a relative time like +2h, counted from {at_name}",
        )
    return not_before, until
