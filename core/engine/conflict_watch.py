"""The live conflict matrix: while coding agents run, predict which of them will collide.

Every few seconds each live coding agent's worktree is snapshotted (uncommitted work included,
through a temporary index, never the agent's own) and every pair, and each agent against a
base branch that moved, is trial-merged with `git merge-tree`. Only pairs whose snapshots
changed are checked again, so the cost stays bounded; predictions become events.

A worktree whose fingerprint (`worktrees.fingerprint`: a stat walk, no process) is unchanged
since its last snapshot reuses that snapshot, so idle agents cost no git process at all. A pass
checks between worktrees whether the watch was closed and then stops, emitting nothing, so a
finished run does not wait at exit for a pass nobody will read.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from corral.core.log import events as ev
from corral.core.log.merge_events import matrix_events
from corral.core.log.state import RunState
from corral.worktrees.conflicts import ConflictMatrix
from corral.worktrees.errors import GitError
from corral.worktrees.fingerprint import RACY_MARGIN_NS, Fingerprint, fingerprint
from corral.worktrees.plumbing import rev_parse
from corral.worktrees.snapshot import snapshot_commit

EmitMany = Callable[[Sequence[ev.EventBase]], Awaitable[None]]
WATCHED_STATES = frozenset({"running", "stalled", "waiting_for_human", "succeeded"})
BUDGET_FACTOR = 2.0
"""Idle time after a pass, as a multiple of the pass's own duration."""


def _live_workspaces(state: RunState) -> dict[str, Path]:
    """Coding agents whose latest attempt is running or finished well, with their worktree."""
    found: dict[str, Path] = {}
    for agent in state.agents.values():
        attempt = agent.current
        if agent.kind != "coding" or attempt is None or attempt.state not in WATCHED_STATES:
            continue
        if attempt.host:  # on another host: no worktree here to compare (its branch comes back)
            continue
        if attempt.workspace and Path(attempt.workspace).is_dir():
            found[agent.id] = Path(attempt.workspace)
    return found


@dataclass(frozen=True)
class _Seen:
    """An agent's last snapshot and the fingerprint its worktree had just before it."""

    path: Path
    fingerprint: Fingerprint
    commit: str


class ConflictWatch:
    """Runs the matrix on one worker thread (it is not thread-safe) at a fixed pace."""

    def __init__(self, repo: Path, snapshot: str, interval: float, emit_many: EmitMany) -> None:
        self.repo = repo
        self.snapshot = snapshot
        self.base_ref = ""
        self.interval = interval
        self.emit_many = emit_many
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="conflicts")
        self.matrix: ConflictMatrix | None = None
        self.passes = 0
        self.snapshots_taken = 0
        self.snapshots_reused = 0
        self.racy_margin_ns = RACY_MARGIN_NS
        self._seen: dict[str, _Seen] = {}
        self._closed = threading.Event()

    def close(self) -> None:
        """Stop a running pass at its next worktree and let the worker thread end."""
        self._closed.set()
        self.pool.shutdown(wait=False, cancel_futures=True)

    def _snapshot(self, agent: str, path: Path) -> str:
        """The worktree's snapshot commit, reusing the last one when the fingerprint says so.

        The fingerprint is taken before the snapshot, so the snapshot holds at least what the
        fingerprint saw; a change in between shows in the next fingerprint."""
        seen = self._seen.pop(agent, None)
        now = fingerprint(path, margin_ns=self.racy_margin_ns)
        if seen is not None and now is not None and seen.path == path and seen.fingerprint == now:
            self._seen[agent] = seen
            self.snapshots_reused += 1
            return seen.commit
        commit = snapshot_commit(path)
        self.snapshots_taken += 1
        if now is not None and now.trusted:
            self._seen[agent] = _Seen(path, now, commit)
        return commit

    def _check(
        self, workspaces: dict[str, Path]
    ) -> list[ev.ConflictPredicted | ev.ConflictCleared] | None:
        """One pass; None when the watch was closed during it."""
        if self._closed.is_set():
            return None
        if self.matrix is None:
            self.matrix = ConflictMatrix(self.repo, self.snapshot)
        for gone in set(self._seen) - set(workspaces):
            del self._seen[gone]
        snapshots: dict[str, str] = {}
        for agent, path in workspaces.items():
            if self._closed.is_set():
                return None
            with contextlib.suppress(GitError, OSError):  # a worktree being removed or reset
                snapshots[agent] = self._snapshot(agent, path)
        base_tip = None
        if not self.base_ref.startswith("refs/") and self.base_ref != "HEAD":
            base_tip = rev_parse(self.repo, f"refs/heads/{self.base_ref}^{{commit}}")
        if self._closed.is_set():
            return None
        diff = self.matrix.update(snapshots, base_tip=base_tip)
        if diff.errors:
            self._seen.clear()  # e.g. a reused snapshot git no longer has: take fresh ones
        return matrix_events(diff)

    async def check_once(self, state: RunState) -> None:
        workspaces = _live_workspaces(state)
        loop = asyncio.get_running_loop()
        events = await loop.run_in_executor(self.pool, self._check, workspaces)
        if events is None:
            return
        self.passes += 1
        if events:
            await self.emit_many(events)

    async def run(self, state: RunState) -> None:
        """Wait, then check, until cancelled; one pass at a time.

        The wait is at least `interval` and at least twice the last pass, so with many agents
        the watch keeps to about a third of one core instead of crowding out the agents. The
        first pass, too, waits an interval: at the start no agent has written anything yet, and
        the cores are busy checking out their worktrees."""
        self.base_ref = state.base_ref
        loop = asyncio.get_running_loop()
        try:
            await asyncio.sleep(self.interval)
            while True:
                started = loop.time()
                with contextlib.suppress(GitError):
                    await self.check_once(state)
                await asyncio.sleep(max(self.interval, BUDGET_FACTOR * (loop.time() - started)))
        finally:
            self.close()
