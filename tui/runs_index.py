"""The runs list, kept up to date cheaply: each run is first folded through its checkpoint
(core/runs/index.py), then its log is followed incrementally (one fstat per run per refresh
when nothing changed) instead of replayed in full every time, and an engine
is alive when its pid still has the start time the log recorded (no lock taken: a console must
never stand in the way of an engine starting)."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

from corral.core.log import FollowState, LogCorrupted, LogPathError, iter_new_events
from corral.core.log.reader import open_log_fd
from corral.core.log.state import RunState, apply
from corral.core.runs.index import fold_fd
from corral.core.runs.listing import RunSummary, summarize
from corral.core.runs.rundir import RunDir, list_runs

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
            followed = self.known.get(rundir.run_id)
            if followed is None:
                followed = self.known[rundir.run_id] = _first_sight(rundir)
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


def _first_sight(rundir: RunDir) -> _Followed:
    """A run not followed yet: its state from its checkpoint, to follow on from there."""
    try:
        fd = open_log_fd(rundir.events)
    except FileNotFoundError:
        return _Followed()
    except (OSError, LogPathError):
        return _Followed(corrupted=True)
    try:
        folded = fold_fd(fd, rundir, trust_unchanged=True)
    except LogCorrupted:
        return _Followed(corrupted=True)
    finally:
        os.close(fd)
    return _Followed(follow=folded.follow, state=folded.state)
