"""The log's format version: what this code writes, and the refusal of a log it cannot read.

`run_started` (the first line) carries `log_format` (event_types/base.py LOG_FORMAT); a log
without it is version 1. Compatible changes (a new optional field, a new event type) keep the
version; a change that old code would misread raises it, and readers keep folding every older
version (docs/architecture.md, "The event log"). tests/corpus/ holds logs of each version.
"""

from __future__ import annotations

import json

from corral.core.log.event_types.base import LOG_FORMAT
from corral.core.log.log_errors import LogCorrupted


class LogFormatTooNew(LogCorrupted):
    """The log was written by a newer corral, in a format this one cannot fold.

    A LogCorrupted, so that every reader stops as it does before a line it cannot trust (and
    an older engine never appends to a newer log); the message says to upgrade, not to repair.
    """

    def __init__(self, version: int) -> None:
        super().__init__(1, f"log format {version}")
        self.version = version

    def __str__(self) -> str:
        name = self.path.name if self.path is not None else "events.jsonl"
        return (
            f"{name} is in log format {self.version}, written by a newer corral; this corral "
            f"reads formats up to {LOG_FORMAT}. Upgrade corral to read this run"
        )


def check_format(first_line: bytes) -> None:
    """Refuse a log newer than this code (docs/architecture.md, "The event log"): the version is
    read from the raw first line, since a newer `run_started` may not parse here at all."""
    if b'"log_format"' not in first_line:
        return  # version 1, or not a run_started line (which the chain checks then report)
    try:
        version = json.loads(first_line).get("log_format")
    except (ValueError, AttributeError):
        return
    if isinstance(version, int) and version > LOG_FORMAT:
        raise LogFormatTooNew(version)
