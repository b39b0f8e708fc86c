"""What every event carries: its place in the hash-chained log, and when it was made."""

from __future__ import annotations

import time

from pydantic import BaseModel, ConfigDict, Field

GENESIS_HASH = "0" * 64
LOG_FORMAT = 1
"""The version of the log's format this code writes and the newest it reads (docs/architecture.md,
"The event log"). `run_started` carries it; a log without it is version 1."""


class EventBase(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    seq: int = 0
    """Position in the log, from 1, without gaps."""
    prev: str = ""
    """sha256 of the previous line (GENESIS_HASH for the first), so a lost or edited line shows."""
    ts: float = Field(default_factory=time.time)
    """Wall-clock time the event was made (seconds since the epoch)."""
