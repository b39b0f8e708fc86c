"""The run's event log, `events.jsonl`: one writer with group commit, verified replay, repair
of a torn tail, and followers in other processes.

Format: one JSON object a line (`event.model_dump_json()`), `\\n`-terminated; `seq` counts from 1
without gaps and `prev` is the sha256 hex digest of the previous line's bytes (GENESIS_HASH for
seq 1). The head is the sha256 of the last line. Modules: `events` (every event type), `reader`
(replay, verify, repair), `writer` (EventWriter), `follower` (tailing from another process),
`state` (fold(events) -> what everyone sees), `merge_events` (what the merge steps found).
This module is the public face of reading and writing the log.
"""

from __future__ import annotations

from corral.core.log.follower import (
    FollowState,
    LogFollower,
    follow_log,
    follow_log_sync,
    iter_new_events,
)
from corral.core.log.log_format import LogFormatTooNew
from corral.core.log.reader import (
    LogContents,
    LogCorrupted,
    LogPathError,
    VerifyResult,
    read_log,
    repair_torn_tail,
    verify_log,
)
from corral.core.log.writer import EventWriter, LogFailed

__all__ = [
    "EventWriter",
    "FollowState",
    "LogContents",
    "LogCorrupted",
    "LogFailed",
    "LogFollower",
    "LogFormatTooNew",
    "LogPathError",
    "VerifyResult",
    "follow_log",
    "follow_log_sync",
    "iter_new_events",
    "read_log",
    "repair_torn_tail",
    "verify_log",
]
