"""Durations and clock times: reading them as people write them, writing ``HH:MM``.

The one home of time parsing and clock formatting for every package (scenarios, twin,
viz, the command line).

Scenario files give times the way people write them: ``90``, ``"90s"``, ``"15min"``,
``"2h"``, ``"1h30min"``, ``"1d"`` for durations and ``"07:00"`` or ``"17:30:15"`` for
clock times of day. Everything is normalised to float seconds here, once, so the rest of
the twin only ever sees seconds.

Conventions used by every section of a scenario (including the ones later issues add):

- a **duration** is a length of time: a number (seconds) or a string with units;
- a **clock time** is a time of day, ``"HH:MM[:SS]"`` or seconds after midnight;
- a **time point** on the scenario's timeline (``at``/``until`` of an intervention or a
  scripted incident) is either a clock time written ``"HH:MM[:SS]"`` (the first such
  moment at or after the scenario start) or a duration, read as an offset after the start.
  :func:`parse_time_point` turns both into seconds since the scenario start, which is what
  the twin's SimPy clock counts.
"""

from __future__ import annotations

import math
import re

__all__ = [
    "DAY_S",
    "MAX_DURATION_S",
    "format_clock",
    "format_duration",
    "parse_clock",
    "parse_duration",
    "parse_time_point",
]

#: Seconds in a day.
DAY_S: float = 86400.0

#: Longest duration any field takes: 366 days. A city twin simulates hours to days;
#: anything longer is a typo (``1e30``), and bounding it keeps every loop and array that
#: follows a duration bounded too.
MAX_DURATION_S: float = 366 * DAY_S

# Longest text read as a duration or clock time (``"1 day 23 hours 59 minutes"`` fits).
_MAX_TEXT = 64

_UNIT_SECONDS: dict[str, float] = {
    "d": 86400.0,
    "day": 86400.0,
    "days": 86400.0,
    "h": 3600.0,
    "hr": 3600.0,
    "hrs": 3600.0,
    "hour": 3600.0,
    "hours": 3600.0,
    "m": 60.0,
    "min": 60.0,
    "mins": 60.0,
    "minute": 60.0,
    "minutes": 60.0,
    "s": 1.0,
    "sec": 1.0,
    "secs": 1.0,
    "second": 1.0,
    "seconds": 1.0,
}

_NUMBER = r"(?:\d+(?:\.\d*)?|\.\d+)"
_TOKEN = re.compile(rf"\s*({_NUMBER})\s*([a-z]+)\s*")
_COMPOUND = re.compile(rf"(?:\s*{_NUMBER}\s*[a-z]+\s*)+")
_HMS = re.compile(r"(\d+):([0-5]?\d)(?::([0-5]?\d(?:\.\d*)?))?")
_CLOCK = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}(?:\.\d*)?))?")

_DURATION_EXAMPLES = '(examples: 90, "90s", "15min", "2h")'
_CLOCK_EXAMPLES = '(examples: "07:00", "17:30:15", or seconds after midnight such as 25200)'


def _show(value: object) -> str:
    """Quote a user's value for an error message (shortened to 80 characters)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10**60:
        return f"a {len(str(abs(value))) if abs(value) < 10**4000 else 'many'}-digit number"
    text = f"'{value}'" if isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _number(value: object) -> float | None:
    """Return ``value`` as a float if it is a plain (non-bool) number, else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and abs(value) > 10**300:
        return math.inf  # beyond a float: reported as not finite, not an OverflowError
    if isinstance(value, (int, float)):
        return float(value)
    return None


def parse_duration(value: object) -> float:
    """Read a duration and return it in seconds.

    Parameters
    ----------
    value : int, float or str
        A number of seconds (``90``, ``2.5``, ``"90"``), a string with units (``"90s"``,
        ``"15min"``, ``"2h"``, ``"1.5h"``, ``"1h30min"``, ``"1d"``; units ``s``/``sec``,
        ``m``/``min``, ``h``/``hr``/``hour``, ``d``/``day`` and their plurals, case and
        spaces ignored) or ``"H:MM[:SS]"`` (``"1:30"`` is 90 minutes).

    Returns
    -------
    float
        The duration in seconds, finite and not negative.

    Raises
    ------
    ValueError
        If the value cannot be read, is negative, is not finite or is longer than
        :data:`MAX_DURATION_S` (366 days); the message quotes the value and gives examples.
    """
    number = _number(value)
    if number is None and isinstance(value, str) and len(value) <= _MAX_TEXT:
        text = value.strip().lower()
        number = _read_duration_text(text)
    if number is None:
        raise ValueError(f"could not read {_show(value)} as a duration {_DURATION_EXAMPLES}")
    if not math.isfinite(number):
        raise ValueError(f"a duration must be finite, got {_show(value)}")
    if number < 0:
        raise ValueError(f"a duration cannot be negative, got {_show(value)}")
    if number > MAX_DURATION_S:
        raise ValueError(f"a duration can be at most 366 days ({MAX_DURATION_S:.0f} s), got {_show(value)}")
    return float(number)


def _read_duration_text(text: str) -> float | None:
    """Parse the text forms of a duration; ``None`` when it is not one."""
    if not text:
        return None
    sign = 1.0
    if text[0] in "+-":
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:].strip()
    if re.fullmatch(_NUMBER, text):
        return sign * float(text)
    match = _HMS.fullmatch(text)
    if match:
        hours, minutes, seconds = match.groups()
        return sign * (int(hours) * 3600.0 + int(minutes) * 60.0 + float(seconds or 0.0))
    if not _COMPOUND.fullmatch(text):
        return None
    total = 0.0
    seen: set[float] = set()
    for amount, unit in _TOKEN.findall(text):
        factor = _UNIT_SECONDS.get(unit)
        if factor is None or factor in seen:
            return None
        seen.add(factor)
        total += float(amount) * factor
    return sign * total


def parse_clock(value: object) -> float:
    """Read a clock time of day and return seconds after midnight.

    Parameters
    ----------
    value : int, float or str
        ``"HH:MM"`` or ``"HH:MM:SS"`` (``"07:00"``, ``"7:00"``, ``"17:30:15"``), a number of
        seconds after midnight (``25200``), or a duration string read as time since midnight
        (``"7h"``).

    Returns
    -------
    float
        Seconds after midnight, in ``[0, 86400)``.

    Raises
    ------
    ValueError
        If the value cannot be read or is not within one day.
    """
    seconds = _number(value)
    if seconds is None and isinstance(value, str) and len(value) <= _MAX_TEXT:
        text = value.strip().lower()
        match = _CLOCK.fullmatch(text)
        if match:
            hours, minutes, secs = int(match[1]), int(match[2]), float(match[3] or 0.0)
            if hours > 23 or minutes > 59 or secs >= 60:
                raise ValueError(
                    f"{_show(value)} is not a clock time of day: hours go 0-23, "
                    f"minutes and seconds 0-59 {_CLOCK_EXAMPLES}"
                )
            seconds = hours * 3600.0 + minutes * 60.0 + secs
        else:
            try:
                seconds = parse_duration(text)
            except ValueError:
                seconds = None
    if seconds is None or not math.isfinite(seconds):
        raise ValueError(f"could not read {_show(value)} as a clock time of day {_CLOCK_EXAMPLES}")
    if not 0.0 <= seconds < DAY_S:
        raise ValueError(
            f"a clock time of day must be from 00:00 up to (not including) 24:00, got {_show(value)} {_CLOCK_EXAMPLES}"
        )
    return float(seconds)


def parse_time_point(value: object, *, start_s: float = 0.0) -> float:
    """Read a moment on the scenario timeline and return seconds since the scenario start.

    Parameters
    ----------
    value : int, float or str
        A clock time written ``"HH:MM[:SS]"`` -- the first such moment at or after the
        scenario start (so ``"01:00"`` in a scenario starting at 22:00 is 3 h in) -- or a
        duration (``900``, ``"15min"``, ``"2h"``), read as an offset after the start.
    start_s : float, optional
        The scenario's start as seconds after midnight (``Scenario.time.start_s``).

    Returns
    -------
    float
        Seconds since the scenario start, as counted by the twin's clock.

    Raises
    ------
    ValueError
        If the value is neither a clock time nor a duration.
    """
    if isinstance(value, str) and _CLOCK.fullmatch(value.strip()):
        clock = parse_clock(value)
        return (clock - start_s) % DAY_S
    try:
        return parse_duration(value)
    except ValueError:
        raise ValueError(
            f'could not read {_show(value)} as a time: give a clock time "HH:MM[:SS]" '
            f"or a time after the start {_DURATION_EXAMPLES}"
        ) from None


def format_duration(seconds: float) -> str:
    """Write seconds the way a person would (``"1h30min"``, ``"90s"``, ``"2.5s"``).

    Parameters
    ----------
    seconds : float
        A non-negative number of seconds.

    Returns
    -------
    str
        A string that :func:`parse_duration` reads back to the same value.
    """
    if seconds != int(seconds) or seconds == 0:
        return f"{seconds:g}s"
    rest = int(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60), ("s", 1)):
        amount, rest = divmod(rest, size)
        if amount:
            parts.append(f"{amount}{unit}")
    return "".join(parts)


def format_clock(seconds: float, *, with_seconds: bool | None = False) -> str:
    """Write a clock time of day as ``"HH:MM"`` (or ``"HH:MM:SS"``), wrapping at midnight.

    The one rule for every clock the project shows or writes: the time is rounded to
    the nearest whole second, then shown as the minute (or second) that has begun, the
    way a clock on the wall reads.  So 07:59:59.6 is ``"08:00"`` (it rounds to 08:00:00)
    and 07:59:40 is ``"07:59"`` (not rounded up to the next minute).

    Parameters
    ----------
    seconds : float
        Seconds after midnight (any value; taken modulo one day).
    with_seconds : bool or None, optional
        ``False`` (default) for ``"HH:MM"``, ``True`` for ``"HH:MM:SS"``, ``None`` for
        ``"HH:MM"`` with ``":SS"`` added only when the seconds are not zero.

    Returns
    -------
    str
        The clock text; :func:`parse_clock` reads it back (to the whole second or minute).
    """
    s = int(round(float(seconds))) % int(DAY_S)
    text = f"{s // 3600:02d}:{s % 3600 // 60:02d}"
    if with_seconds or (with_seconds is None and s % 60):
        text += f":{s % 60:02d}"
    return text
