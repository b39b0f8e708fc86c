"""The events that record what the workspace layer's merge steps found.

`corral.worktrees` knows nothing of events; these functions turn its results into the events the
engine appends (and `fold` turns into `RunState.conflicts` and `RunState.merge`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from corral.core.log import events as ev

if TYPE_CHECKING:  # the merge machinery loads later, off the engine's start (core/engine/warmup.py)
    from corral.worktrees.conflicts import MatrixDiff
    from corral.worktrees.integrate import IntegrationResult
    from corral.worktrees.mergetree import ConflictPath
    from corral.worktrees.verify import Verification


def conflict_files(files: tuple[ConflictPath, ...] | list[ConflictPath]) -> list[ev.ConflictFile]:
    return [ev.ConflictFile(path=f.path, kind=f.kind) for f in files]


def matrix_events(diff: MatrixDiff) -> list[ev.ConflictPredicted | ev.ConflictCleared]:
    """`conflict_cleared` first (a key may clear and reappear), then `conflict_predicted`."""
    found: list[ev.ConflictPredicted | ev.ConflictCleared] = [
        ev.ConflictCleared(key=key) for key in diff.cleared
    ]
    found += [
        ev.ConflictPredicted(key=p.key, agents=list(p.agents), files=conflict_files(p.files))
        for p in diff.predicted
    ]
    return found


def integration_events(result: IntegrationResult) -> list[ev.BranchMerged | ev.BranchLeftOut]:
    """One event per branch, in the order the integration took them."""
    found: list[tuple[str, ev.BranchMerged | ev.BranchLeftOut]] = []
    for merged in result.merged:
        found.append(
            (
                merged.agent,
                ev.BranchMerged(
                    agent=merged.agent,
                    attempt=merged.attempt,
                    branch=merged.branch,
                    commit=merged.commit,
                ),
            )
        )
    for left in result.left_out:
        found.append(
            (
                left.agent,
                ev.BranchLeftOut(
                    agent=left.agent,
                    attempt=left.attempt,
                    branch=left.branch,
                    reason=left.reason,
                    conflicts_with=list(left.conflicts_with),
                    files=conflict_files(left.files),
                    pair_files={
                        other: conflict_files(files) for other, files in left.pair_files.items()
                    },
                ),
            )
        )
    return [event for _, event in sorted(found, key=lambda item: item[0])]


def verification_event(
    outcome: Verification, command: list[str], log_path: str, commit: str
) -> ev.VerificationFinished:
    return ev.VerificationFinished(
        command=command,
        passed=outcome.passed,
        exit_code=outcome.exit_code,
        log_path=log_path,
        commit=commit,
    )
