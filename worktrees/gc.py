"""Remove one run's worktrees and branches, precisely.

The caller (the engine) decides which runs are over; nothing here judges liveness. Nothing here
runs `git worktree prune` or `git gc` either: other runs' agents may be live (docs/reliability.md M2).
Without `force`, work is never lost: dirty worktrees stay, and so do branches whose commits no
other ref holds. Branches are deleted by compare-and-swap, so one that moved since it was looked
at stays too.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from corral.worktrees.errors import GitError, WorkspaceDirty
from corral.worktrees.git import WorktreeEntry, list_worktrees, run_git, run_git_result
from corral.worktrees.workspace import BRANCH_PREFIX, branch_name, remove_workspace

_ATTEMPT_DIR = re.compile(r".+-\d+")


@dataclass
class GcResult:
    """What `collect_run` removed, and what it kept and why."""

    removed_worktrees: list[Path] = field(default_factory=list)
    removed_branches: list[str] = field(default_factory=list)
    kept: list[tuple[str, str]] = field(default_factory=list)
    """(path or branch, reason), the reason saying how to let it go."""


def _run_prefix(run_id: str) -> str:
    branch_name(run_id, "x", 0)  # validates run_id: it goes into a ref pattern
    return f"{BRANCH_PREFIX}/{run_id}/"


def _belongs(entry: WorktreeEntry, run_id: str) -> bool:
    """A worktree corral made for this run: on one of its branches at the matching place, still
    locked with its reason, or detached (an agent may detach HEAD) at the run's place."""
    prefix = _run_prefix(run_id)
    in_run_dir = entry.path.parent.name == run_id
    if entry.branch is not None and entry.branch.startswith(prefix):
        parts = entry.branch[len(prefix) :].split("/")
        if parts == ["integration"]:  # the merge step's worktree, `<root>/<run>/_integration`
            return in_run_dir and entry.path.name == "_integration"
        return len(parts) == 2 and in_run_dir and entry.path.name == "-".join(parts)
    reason = entry.lock_reason or ""
    if reason.startswith(f"corral run {run_id} agent "):
        return True
    return entry.detached and in_run_dir and bool(_ATTEMPT_DIR.fullmatch(entry.path.name))


def list_run_workspaces(repo_path: Path, run_id: str) -> list[Path]:
    """The run's worktrees, from `git worktree list`; never the main working tree."""
    entries = list_worktrees(repo_path)
    return [entry.path for entry in entries[1:] if _belongs(entry, run_id)]


def list_run_branches(repo_path: Path, run_id: str) -> list[str]:
    """The run's branches, `corral/<run_id>/...`."""
    prefix = _run_prefix(run_id)
    out = run_git(repo_path, "for-each-ref", "--format=%(refname)", f"refs/heads/{prefix}")
    return [line.removeprefix("refs/heads/") for line in out.splitlines() if line]


def _unique_commits(repo_path: Path, branch: str, run_id: str) -> int:
    """Commits on `branch` that no ref outside this run holds (they would be lost with it)."""
    out = run_git(
        repo_path,
        "rev-list",
        "--count",
        f"refs/heads/{branch}",
        "--not",
        f"--exclude=refs/heads/{_run_prefix(run_id)}*",
        "--all",
    )
    return int(out or "0")


def _remove_worktrees(repo_path: Path, run_id: str, force: bool, result: GcResult) -> None:
    for entry in list_worktrees(repo_path)[1:]:
        if not _belongs(entry, run_id):
            continue
        try:
            remove_workspace(repo_path, entry.path, force=force)
        except WorkspaceDirty as exc:
            result.kept.append((str(entry.path), str(exc)))
            continue
        except GitError as exc:
            result.kept.append((str(entry.path), f"could not remove it: {exc}"))
            continue
        result.removed_worktrees.append(entry.path)
        run_dir = entry.path.parent
        if run_dir.name == run_id:
            with contextlib.suppress(OSError):  # only when empty: the run's last worktree went
                os.rmdir(run_dir)


def _remove_branches(repo_path: Path, run_id: str, force: bool, result: GcResult) -> None:
    checked_out = {e.branch: e.path for e in list_worktrees(repo_path) if e.branch is not None}
    for branch in list_run_branches(repo_path, run_id):
        if branch in checked_out:
            where = checked_out[branch]
            result.kept.append(
                (branch, f"checked out in worktree {where}; remove that worktree first")
            )
            continue
        found = run_git_result(
            repo_path, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}"
        )
        if found.status != 0:
            continue  # deleted meanwhile by someone else: nothing left to collect
        sha = found.stdout.strip()
        if not force and (count := _unique_commits(repo_path, branch, run_id)):
            why = f"holds {count} commit(s) no other branch has; merge them, or collect with force"
            result.kept.append((branch, why))
            continue
        deleted = run_git_result(repo_path, "update-ref", "-d", f"refs/heads/{branch}", sha)
        if deleted.status != 0:
            why = f"moved while being collected ({deleted.stderr.strip()}); collect again"
            result.kept.append((branch, why))
            continue
        result.removed_branches.append(branch)


def collect_run(repo_path: Path, run_id: str, *, force: bool) -> GcResult:
    """Remove the worktrees and branches of `run_id`, which the caller knows to be over."""
    result = GcResult()
    _remove_worktrees(repo_path, run_id, force, result)
    _remove_branches(repo_path, run_id, force, result)
    return result


__all__ = ["GcResult", "collect_run", "list_run_branches", "list_run_workspaces"]
