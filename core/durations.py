"""Human durations (`90s`, `5m`, `1h`, `1h30m`) for plans and the command line."""

from __future__ import annotations

import re

_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h)")
DURATION_HINT = "write a number with a unit: '500ms', '90s', '5m', '1h' or '1h30m'"


def parse_duration(value: object) -> float:
    """Seconds from a duration string or a plain number of seconds.

    Raises ValueError with the accepted forms when the value is not one of them.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration; {DURATION_HINT}")
    if isinstance(value, int | float):
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
