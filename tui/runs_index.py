"""The runs list, kept up to date cheaply: each run's log is followed incrementally (one fstat
per run per refresh when nothing changed) instead of replayed in full every time, and an engine
is alive when its pid still has the start time the log recorded (no lock taken: a console must
never stand in the way of an engine starting)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from corral.core.log import FollowState, LogCorrupted, iter_new_events
from corral.core.log.state import RunState, apply
from corral.core.runs.listing import RunSummary, summarize
from corral.core.runs.rundir import list_runs

STEP_BYTES = 64 << 20


@dataclass
class _Followed:
    follow: FollowState = field(default_factory=FollowState)
    state: RunState = field(default_factory=RunState)
    corrupted: bool = False


class RunsIndex:
    """Summaries of every run of a repository, refreshed incrementally."""

    def __init__(self, common_dir: Path) -> None:
        self.common_dir = common_dir
        self.known: dict[str, _Followed] = {}
        self._lock = threading.Lock()

    def refresh(self) -> list[RunSummary]:
        """Thread workers are not interrupted when a newer refresh replaces them, so two can
        overlap: one at a time, or both would feed the same cursors and states."""
        with self._lock:
            return self._refresh()

    def _refresh(self) -> list[RunSummary]:
        summaries = []
        for rundir in list_runs(self.common_dir):
            followed = self.known.setdefault(rundir.run_id, _Followed())
            if not followed.corrupted:
                try:
                    while True:
                        for event in iter_new_events(
                            rundir.events, followed.follow, max_bytes=STEP_BYTES
                        ):
                            apply(followed.state, event)
                        if followed.follow.caught_up:
                            break
                except LogCorrupted:
                    followed.corrupted = True
            summaries.append(summarize(rundir, followed.state, corrupted=followed.corrupted))
        return summaries
