"""Terminal resizes as events: who resized an agent's screen, and to what, without flooding the log.

A viewer dragging its window sends a resize per step (dozens a second). Each is passed on to the
terminal at once (the agent redraws as the person drags), but the log gets one `agent_resized`
per burst: the burst's last size, once no resize has come for RESIZE_QUIET seconds, and only
when it differs from the size last logged (or the one the terminal started with). A burst still
open when the attempt ends is logged then, before `agent_finished`, so none is lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

RESIZE_QUIET = 0.5
"""Seconds without a resize after which a burst is over and its last size is logged."""


@dataclass
class PendingResize:
    cols: int
    rows: int
    by: str


@dataclass
class ResizeLog:
    """One attempt's resizes: the size last logged and the burst not logged yet."""

    size: tuple[int, int] | None = None
    """The size last logged, or the one the terminal started with."""
    pending: PendingResize | None = None
    timer: asyncio.TimerHandle | None = None
    task: asyncio.Task[None] | None = None
    """The task logging a burst that just ended (kept, so it is not collected mid-write)."""

    def resized(self, cols: int, rows: int, by: str, burst_over: Callable[[], None]) -> None:
        """A resize arrived: the burst goes on; `burst_over` runs after RESIZE_QUIET of quiet."""
        self.pending = PendingResize(cols, rows, by)
        if self.timer is not None:
            self.timer.cancel()
        self.timer = asyncio.get_running_loop().call_later(RESIZE_QUIET, burst_over)

    def take(self) -> PendingResize | None:
        """The burst's last size to log, if it changed the size; the burst is over."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        pending, self.pending = self.pending, None
        if pending is None or (pending.cols, pending.rows) == self.size:
            return None
        self.size = (pending.cols, pending.rows)
        return pending
