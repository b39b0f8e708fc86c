"""Human durations (`90s`, `5m`, `1h`, `1h30m`) for plans and the command line.

Every duration is a finite number of seconds from 0 to MAX_DURATION: an infinite or NaN limit
never fires (an agent that ignores SIGTERM is never killed, a stagger never ends), and one of
centuries is a mistake. Limits that a zero would end at once are `positive_duration`.
"""

from __future__ import annotations

import math
import re

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
DURATION_HINT = "write a number with a unit: '500ms', '90s', '5m', '1h' or '1h30m'"
MAX_DURATION = 30 * 86400.0
"""The longest duration corral accepts: 30 days (720h)."""


def parse_duration(value: object) -> float:
    """Seconds from a duration string or a plain number of seconds.

    Raises ValueError with the accepted forms when the value is not one of them, or is not
    finite, negative or longer than MAX_DURATION.
    """
    seconds = _seconds(value)
    if seconds > MAX_DURATION:
        raise ValueError(
            f"{value!r} is longer than corral accepts (720h, 30 days); give a shorter duration"
        )
    return seconds


def positive_duration(value: object) -> float:
    """`parse_duration` for a limit that must be more than zero (a timeout, an interval)."""
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(
            f"must be more than 0 (a zero limit ends every attempt at once); {DURATION_HINT}"
        )
    return seconds


def _seconds(value: object) -> float:
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration; {DURATION_HINT}")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"{value!r} is not finite; {DURATION_HINT}")
        if value < 0:
            raise ValueError(f"{value!r} is negative; {DURATION_HINT}")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a duration; {DURATION_HINT}")
    text = value.strip().lower()
    pos = 0
    total = 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos == 0 or pos != len(text):
        raise ValueError(f"{value!r} is not a duration; {DURATION_HINT}")
    return total


def format_duration(seconds: float) -> str:
    """Short form for the console: `850ms`, `42s`, `3m05s`, `2h10m`."""
    if seconds < 1:
        return f"{seconds * 1000:.0f}ms"
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        minutes, secs = divmod(int(seconds), 60)
        return f"{minutes}m{secs:02d}s"
    hours, rest = divmod(int(seconds), 3600)
    return f"{hours}h{rest // 60:02d}m"
