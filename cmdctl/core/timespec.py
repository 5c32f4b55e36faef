"""Durations (`200ms`, `10m`, `1h30m`) and points in time (`now`, `+10m`, ISO 8601).

Pure functions: every time is epoch seconds and every relative time takes `now` explicitly.
Errors are `InputError`s without a location; loaders attach the location of the value.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

from cmdctl.core.errors import InputError

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_NUMBER = re.compile(r"\d+(?:\.\d+)?")
_PART = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*")
_DURATION_HINT = "write a duration like 200ms, 30s, 10m, 2h, 7d or 1h30m"
_TIME_HINT = "write 'now', a relative time like +10m, or ISO 8601 like 2026-11-23T21:00:00+01:00"

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


def parse_time(text: str, *, now: float, base: float | None = None) -> float:
    """Epoch seconds for `now`, `+DURATION` (from `base`, default `now`) or ISO 8601.

    An ISO time without a zone is local time, as a person reading a clock on the wall means it.
    """
    spec = text.strip()
    if spec == "now":
        return now
    if spec.startswith("+"):
        try:
            seconds = parse_duration(spec[1:])
        except DurationTooLong as err:
            raise InputError(f"relative time {text!r}: {err.message}", hint=err.hint) from err
        except InputError as err:
            raise InputError(f"bad relative time {text!r}", hint=_TIME_HINT) from err
        return _in_range((now if base is None else base) + seconds, text)
    try:
        moment = datetime.fromisoformat(spec)
    except ValueError as err:
        raise InputError(f"bad time {text!r}", hint=_TIME_HINT) from err
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


def format_time(epoch: float) -> str:
    """An epoch time as local wall-clock time, `2026-11-23 21:00:05`; never raises.

    A time no calendar can show (NaN, infinity, beyond year 9999 or before year 1) is said as
    such instead, whatever a journal holds.
    """
    return _formatted(epoch, "%Y-%m-%d %H:%M:%S", utc=False)


def format_time_utc(epoch: float) -> str:
    """An epoch time in ISO 8601 UTC, `2026-11-23T20:00:05Z`; never raises (see `format_time`)."""
    return _formatted(epoch, "%Y-%m-%dT%H:%M:%SZ", utc=True)


def _formatted(epoch: float, pattern: str, *, utc: bool) -> str:
    if isinstance(epoch, bool) or not isinstance(epoch, int | float) or math.isnan(epoch):
        return "?"
    try:
        moment = datetime.fromtimestamp(epoch, UTC) if utc else datetime.fromtimestamp(epoch)
        return moment.strftime(pattern)
    except (OverflowError, OSError, ValueError):
        return "after year 9999" if epoch > 0 else "before year 1"
