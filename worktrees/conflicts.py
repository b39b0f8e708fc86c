"""The live conflict matrix: which agents' current work would collide if merged now.

Each pair of agents is trial-merged (`mergetree.merge_pairs`, one process for all pairs), and so
is each agent against the base branch's tip once that moved past the run's snapshot commit. The
matrix remembers the commits each pair was last checked at and re-checks only pairs where one
side changed; since a snapshot commit id is a pure function of a worktree's content, an idle
agent costs nothing. `update` returns what changed since the previous call, ready to become
`conflict_predicted` / `conflict_cleared` events.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path

from corral.worktrees.git import run_git_result
from corral.worktrees.mergetree import BatchStats, ConflictPath, MergeOutcome, merge_pairs

BASE = "@base"
"""Stands for the base branch's moved tip in pair keys and agent lists."""


def pair_key(a: str, b: str) -> str:
    """`a+b` with the two sorted; `agent+@base` for the moved base (`@` sorts first, so fixed)."""
    if BASE in (a, b):
        agent = b if a == BASE else a
        return f"{agent}+{BASE}"
    return "+".join(sorted((a, b)))


@dataclass(frozen=True)
class PairConflict:
    """A predicted conflict: data for a `conflict_predicted` event."""

    key: str
    agents: tuple[str, str]
    files: tuple[ConflictPath, ...]
    messages: tuple[str, ...] = ()


@dataclass
class MatrixDiff:
    """What one `update` found new or gone."""

    predicted: list[PairConflict] = field(default_factory=list)
    """New conflicts, and known ones whose files changed."""
    cleared: list[str] = field(default_factory=list)
    """Keys of conflicts that no longer hold (or whose agent left the matrix)."""
    errors: dict[str, str] = field(default_factory=dict)
    """Pairs git could not merge this time (left as they were; retried next update)."""
    checked: int = 0
    """Pairs trial-merged by this update."""
    processes: int = 0
    """`git merge-tree` processes started by this update."""


@dataclass(frozen=True)
class _Pair:
    key: str
    left: str
    right: str
    """Agent ids (or BASE), in key order."""


def write_commit_graph(repo: Path) -> bool:
    """Write the commit-graph for every reachable commit, so merge bases are found fast.

    Without it, commits with odd dates make one pair cost 43 ms instead of 4 (docs/performance.md). An
    optimisation only: a failure (another writer holds its lock) returns False.
    """
    result = run_git_result(repo, "commit-graph", "write", "--reachable", "--no-progress")
    return result.status == 0


class ConflictMatrix:
    """Pairwise trial merges of agents' snapshots, re-checking only what changed."""

    def __init__(self, repo: Path, base_commit: str, *, commit_graph: bool = True) -> None:
        self.repo = repo
        self.base_commit = base_commit
        self.graph_written = write_commit_graph(repo) if commit_graph else False
        self._checked: dict[str, tuple[str, str]] = {}
        """key -> the (left, right) commits it was last checked at."""
        self._conflicts: dict[str, PairConflict] = {}
        self.total_checked = 0
        self.total_processes = 0

    @property
    def conflicts(self) -> dict[str, PairConflict]:
        """The conflicts standing after the last update, by key."""
        return dict(self._conflicts)

    def update(self, snapshots: Mapping[str, str], base_tip: str | None = None) -> MatrixDiff:
        """Check the pairs whose commits changed; return the conflicts that appeared or went.

        `snapshots`: agent id -> commit (a `snapshot_commit` of a live worktree, or the branch
        tip of a finished attempt). Agents missing from it leave the matrix and their conflicts
        clear: pass every agent whose work may still be merged. `base_tip`: the base branch's
        current commit; when it differs from the base commit each agent is checked against it.
        """
        commits: dict[str, str] = dict(snapshots)
        if base_tip is not None and base_tip != self.base_commit:
            commits[BASE] = base_tip
        wanted = self._pairs(commits)
        diff = MatrixDiff()
        for key in sorted(set(self._checked) - {pair.key for pair in wanted}):
            del self._checked[key]
            if self._conflicts.pop(key, None) is not None:
                diff.cleared.append(key)
        due = [p for p in wanted if self._checked.get(p.key) != (commits[p.left], commits[p.right])]
        stats = BatchStats()
        outcomes = merge_pairs(
            self.repo, [(commits[p.left], commits[p.right]) for p in due], stats=stats
        )
        diff.checked, diff.processes = len(due), stats.processes
        self.total_checked += diff.checked
        self.total_processes += diff.processes
        for pair, outcome in zip(due, outcomes, strict=True):
            self._record(pair, outcome, diff)
        return diff

    def _pairs(self, commits: Mapping[str, str]) -> list[_Pair]:
        agents = sorted(name for name in commits if name != BASE)
        pairs = [_Pair(pair_key(a, b), a, b) for a, b in combinations(agents, 2)]
        if BASE in commits:
            pairs += [_Pair(pair_key(a, BASE), a, BASE) for a in agents]
        return pairs

    def _record(self, pair: _Pair, outcome: MergeOutcome, diff: MatrixDiff) -> None:
        if outcome.status == "error":
            diff.errors[pair.key] = outcome.error
            self._checked.pop(pair.key, None)  # ask again next time
            return
        self._checked[pair.key] = (outcome.ours, outcome.theirs)
        known = self._conflicts.get(pair.key)
        if outcome.status == "clean":
            if known is not None:
                del self._conflicts[pair.key]
                diff.cleared.append(pair.key)
            return
        found = PairConflict(pair.key, (pair.left, pair.right), outcome.files, outcome.messages)
        self._conflicts[pair.key] = found
        if known is None or known.files != found.files:
            diff.predicted.append(found)
