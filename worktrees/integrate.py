"""Bringing the agents' work together on `corral/<run>/integration`, without touching the base.

Every merge is decided before it is made: a trial merge (`git merge-tree --write-tree`, exit
status decides) of the integration tip and the agent's branch. A clean one becomes a real merge
commit (`commit-tree` with both parents); a conflicting one is left out, with its files, their
conflict kinds and the already-merged agents it actually conflicts with: each merged agent whose
changes touch a conflicting file is trial-merged with it pairwise (one `merge-tree --stdin`
process for all), and only the pairs that conflict are blamed, each with its own files. Refs
move only by
compare-and-swap (`update-ref REF NEW OLD`); the base branch is never written. Merge commits take
their date from their parents, so the same inputs give the same commit ids: running `integrate`
again (after a crash) reproduces the branch instead of forking it.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from corral.worktrees.errors import GitError
from corral.worktrees.git import (
    find_worktree,
    git_common_dir,
    list_worktrees,
    run_git,
    run_git_result,
)
from corral.worktrees.gitlock import ensure_private_dir, git_metadata_lock
from corral.worktrees.mergetree import ConflictPath, MergeOutcome, merge_pair, merge_pairs
from corral.worktrees.plumbing import (
    checked,
    commit_time,
    commit_tree,
    identity_env,
    rev_parse,
    update_ref_cas,
)
from corral.worktrees.snapshot import head_facts, snapshot_tree
from corral.worktrees.workspace import POPULATE_COMMAND, branch_name, default_root

INTEGRATION = "integration"
"""Last component of the integration branch; an agent may not be called this (its branches
`corral/<run>/integration/<n>` could not coexist with the ref `corral/<run>/integration`)."""
INTEGRATION_DIR = "_integration"
"""Directory of the integration worktree under `<root>/<run>/`; agent ids start with a letter or
digit, so no agent's `<agent>-<attempt>` directory can take this name."""


class IntegrationError(GitError):
    """The integration could not be carried out (not: a branch conflicted)."""


def integration_branch(run_id: str) -> str:
    branch_name(run_id, INTEGRATION, 0)  # validates the run id
    return f"corral/{run_id}/{INTEGRATION}"


def agent_identity(agent: str, attempt: int, date: str) -> dict[str, str]:
    """Author `<agent> (corral attempt N)`; the committer is corral itself."""
    email = f"{agent}.{attempt}@agents.corral.invalid"
    return identity_env(f"{agent} (corral attempt {attempt})", email, date)


def commit_leftovers(
    workspace: Path, agent: str, attempt: int, *, branch: str | None = None
) -> str | None:
    """Commit whatever the attempt left uncommitted (untracked files too) on its branch.

    Author names the agent and attempt; no hook runs. The branch moves by compare-and-swap and
    the worktree's index is then reset to it (the files are not touched). Returns the new commit,
    or None when there was nothing to commit. `branch`, when given, must be the one checked out.
    """
    # `git status` first, as `git commit -a` does: one process tells the branch and whether
    # anything is left at all (an attempt that committed its work, or changed nothing).
    status = run_git(
        workspace,
        *("status", "--porcelain=v2", "--branch", "-z"),
        *("--untracked-files=normal", "--ignore-submodules=none"),
    )
    checked_out, changed = "", False
    for entry in status.split("\0"):
        if entry.startswith("# branch.head "):
            checked_out = entry.removeprefix("# branch.head ")
        elif entry and not entry.startswith("#"):
            changed = True
    if checked_out == "(detached)":
        raise IntegrationError(
            f"{workspace} has a detached HEAD, so its leftovers belong to no branch; check out "
            f"{branch or 'the attempt branch'} there, then retry"
        )
    if branch is not None and checked_out != branch:
        raise IntegrationError(
            f"{workspace} has {checked_out} checked out, not the attempt's branch {branch}; "
            f"switch back (git -C {workspace} switch {branch}) and retry"
        )
    if not changed:
        return None
    tree = snapshot_tree(workspace)
    head, head_tree, head_date = head_facts(workspace)
    if tree == head_tree:
        return None
    date = f"@{max(int(head_date), int(time.time()))} +0000"
    message = (
        f"corral: uncommitted work of agent {agent}, attempt {attempt}\n\n"
        "Committed by corral when the attempt ended.\n"
    )
    commit = commit_tree(workspace, tree, [head], message, agent_identity(agent, attempt, date))
    ref = f"refs/heads/{checked_out}"
    if not update_ref_cas(workspace, ref, commit, head, f"corral: leftovers of {agent}/{attempt}"):
        raise IntegrationError(f"{ref} moved while corral committed the leftovers; retry")
    # The index still describes the old HEAD: reset it (not the files) to the new commit.
    run_git(workspace, "reset", "--quiet")
    return commit


@dataclass(frozen=True)
class MergedBranch:
    agent: str
    attempt: int
    branch: str
    branch_commit: str
    commit: str
    """The integration tip after this merge."""
    merge_commit: bool
    """False when the branch added nothing (already contained in the integration tip)."""


@dataclass(frozen=True)
class LeftOutBranch:
    agent: str
    attempt: int
    branch: str
    branch_commit: str | None
    reason: str
    conflicts_with: tuple[str, ...] = ()
    files: tuple[ConflictPath, ...] = ()
    """Where the branch conflicts with the integration tip."""
    messages: tuple[str, ...] = ()
    pair_files: dict[str, tuple[ConflictPath, ...]] = field(default_factory=dict)
    """For each agent in `conflicts_with`, the files that conflict between the two alone."""


@dataclass
class IntegrationResult:
    run_id: str
    branch: str
    base_commit: str
    commit: str
    """The integration branch's final commit (the base commit when nothing merged)."""
    worktree: Path | None
    merged: list[MergedBranch] = field(default_factory=list)
    left_out: list[LeftOutBranch] = field(default_factory=list)


def _branch_tips(repo: Path, branches: Sequence[str]) -> dict[str, str]:
    """The commit each branch points at, from one `for-each-ref` (one process for all)."""
    if not branches:
        return {}
    refs = [f"refs/heads/{branch}" for branch in branches]
    args = ("for-each-ref", "--format=%(refname) %(objectname) %(objecttype)", *refs)
    listing = checked(repo, args, run_git_result(repo, *args))
    tips: dict[str, str] = {}
    for line in listing.splitlines():
        name, sha, kind = line.split(" ")
        if kind == "commit" and name.startswith("refs/heads/"):
            tips[name.removeprefix("refs/heads/")] = sha
    return tips


def _changed_paths(repo: Path, base: str, tip: str) -> set[str]:
    args = ("diff-tree", "-r", "-z", "--name-only", "--no-renames", "--no-ext-diff", base, tip)
    return {path for path in checked(repo, args, run_git_result(repo, *args)).split("\0") if path}


def integrate(
    repo: Path,
    run_id: str,
    base_commit: str,
    branches: Sequence[tuple[str, int, str]],
    *,
    worktree_root: Path | None = None,
    checkout: bool = True,
) -> IntegrationResult:
    """Merge each (agent, attempt, branch) into `corral/<run>/integration`, in agent-id order.

    The branch starts at `base_commit` (an earlier integration branch of this run is reset to it,
    by compare-and-swap). With `checkout`, the result is checked out in its own locked worktree
    at `<root>/<run>/_integration` for verification.
    """
    agents = [agent for agent, _, _ in branches]
    if len(set(agents)) != len(agents):
        raise IntegrationError("each agent may be merged once: pass only its latest attempt")
    if INTEGRATION in agents:
        raise IntegrationError(f"an agent may not be called {INTEGRATION!r}; rename it in the plan")
    name = integration_branch(run_id)
    ref = f"refs/heads/{name}"
    base = run_git(repo, "rev-parse", "--verify", f"{base_commit}^{{commit}}")
    if not update_ref_cas(
        repo, ref, base, rev_parse(repo, ref), f"corral: integration of {run_id}"
    ):
        raise IntegrationError(f"{ref} moved while corral reset it; is another engine running?")
    result = IntegrationResult(
        run_id=run_id, branch=name, base_commit=base, commit=base, worktree=None
    )
    touched: dict[str, tuple[str, set[str]]] = {}
    """Each merged agent's branch tip and the paths it changed from the base."""
    tips = _branch_tips(repo, [branch for _, _, branch in branches])
    for agent, attempt, branch in sorted(branches):
        tip = tips.get(branch)
        if tip is None:
            result.left_out.append(
                LeftOutBranch(agent, attempt, branch, None, f"branch {branch} does not exist")
            )
            continue
        if tip == base:  # the agent committed nothing: there is nothing to merge or check
            result.merged.append(MergedBranch(agent, attempt, branch, tip, result.commit, False))
            touched[agent] = (tip, set())
            continue
        outcome = merge_pair(repo, result.commit, tip)
        if outcome.status == "error":
            reason = f"git could not trial-merge {branch}: {outcome.error}"
            result.left_out.append(LeftOutBranch(agent, attempt, branch, tip, reason))
            continue
        if outcome.status == "conflict":
            result.left_out.append(_left_out(repo, agent, attempt, branch, tip, outcome, touched))
            continue
        if run_git_result(repo, "merge-base", "--is-ancestor", tip, result.commit).status == 0:
            result.merged.append(MergedBranch(agent, attempt, branch, tip, result.commit, False))
            touched[agent] = (tip, set())
            continue
        assert outcome.tree is not None
        date = f"@{max(commit_time(repo, result.commit), commit_time(repo, tip))} +0000"
        message = (
            f"corral: merge agent {agent}, attempt {attempt}\n\nBranch {branch}, run {run_id}.\n"
        )
        identity = agent_identity(agent, attempt, date)
        merge = commit_tree(repo, outcome.tree, [result.commit, tip], message, identity)
        if not update_ref_cas(repo, ref, merge, result.commit, f"corral: merge {agent}/{attempt}"):
            raise IntegrationError(
                f"{ref} moved during the integration; is another engine running?"
            )
        result.commit = merge
        result.merged.append(MergedBranch(agent, attempt, branch, tip, merge, True))
        touched[agent] = (tip, _changed_paths(repo, base, tip))
    if checkout:
        root = worktree_root if worktree_root is not None else default_root(repo)
        result.worktree = _check_out(repo, root / run_id / INTEGRATION_DIR, name, run_id)
    return result


def _left_out(
    repo: Path,
    agent: str,
    attempt: int,
    branch: str,
    tip: str,
    outcome: MergeOutcome,
    touched: dict[str, tuple[str, set[str]]],
) -> LeftOutBranch:
    blamed = _blame(repo, tip, outcome.files, touched)
    paths = sorted({conflict.path for conflict in outcome.files})
    shown = ", ".join(paths[:5]) + (" ..." if len(paths) > 5 else "")
    with_whom = ", ".join(blamed) or "the integration branch"
    reason = f"conflicts with {with_whom} in {len(paths)} file(s): {shown}"
    return LeftOutBranch(
        agent,
        attempt,
        branch,
        tip,
        reason,
        tuple(blamed),
        outcome.files,
        outcome.messages,
        pair_files=blamed,
    )


def _blame(
    repo: Path,
    tip: str,
    files: tuple[ConflictPath, ...],
    touched: dict[str, tuple[str, set[str]]],
) -> dict[str, tuple[ConflictPath, ...]]:
    """The merged agents `tip` conflicts with, each with the files the two conflict in.

    Suspects are the merged agents whose changes touch a conflicting path (every merged agent
    that changed anything when none does: directory renames conflict on paths nobody touched);
    each is trial-merged with `tip` alone. When no suspect conflicts alone (only their changes
    together clash with it) or git cannot tell, the suspects share the blame for the
    conflicting files they changed, as a person reading the conflict would see it.
    """
    paths = {conflict.path for conflict in files}
    changed = {other: seen for other, (_, seen) in touched.items() if seen}
    suspects = sorted(other for other, seen in changed.items() if seen & paths) or sorted(changed)
    outcomes = merge_pairs(repo, [(touched[other][0], tip) for other in suspects])
    blamed: dict[str, tuple[ConflictPath, ...]] = {}
    unsure: list[str] = []
    for other, pair in zip(suspects, outcomes, strict=True):
        if pair.status == "conflict":
            blamed[other] = pair.files
        elif pair.status == "error":
            unsure.append(other)
    if not blamed:
        unsure = suspects
    for other in unsure:
        blamed[other] = tuple(f for f in files if f.path in changed[other]) or files
    return dict(sorted(blamed.items()))


def _check_out(repo: Path, path: Path, branch: str, run_id: str) -> Path:
    """A locked worktree at `path` with `branch` checked out at its current tip."""
    path = Path(os.path.abspath(path))
    common_dir = git_common_dir(repo)
    ensure_private_dir(path.parent)
    reason = f"corral run {run_id} integration"
    with git_metadata_lock(common_dir, f"integration worktree {path}"):
        entry = find_worktree(list_worktrees(repo), path)
        if entry is not None and entry.branch != branch:
            raise IntegrationError(
                f"{path} is a worktree on {entry.branch}, not {branch}; remove it "
                f"(git worktree remove --force {path}) and retry"
            )
        if entry is None:
            run_git(
                repo,
                "worktree",
                "add",
                "--no-checkout",
                "--lock",
                "--reason",
                reason,
                str(path),
                branch,
            )
    run_git(path, *POPULATE_COMMAND)
    return path
