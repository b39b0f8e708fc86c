"""Landing an approved commit on a branch the way `git merge --ff-only` would, in every checkout.

Moving a branch with a bare `update-ref` leaves every worktree that has it checked out on the
old index and files: `git status` then shows the landed change staged in reverse, and the next
`git commit -a` undoes it. So a landing also updates those checkouts, and holds to this:

- The branch moves only by compare-and-swap from the commit the caller names (RELIABILITY M1).
- In each worktree with the branch checked out, only the paths that differ between the old and
  the new commit change, through `git read-tree -m -u OLD NEW`: git's own two-tree (fast-forward)
  merge, which refuses, changing nothing, when a local change (staged, unstaged, or an untracked
  file in the way) would be overwritten. Local changes to other paths stay as they were.
- Every checkout is tried (`read-tree -n`) before the branch moves, so a dirty checkout refuses
  the landing with nothing changed. An edit made between that check and the update is still
  never overwritten: the update refuses, and what was already done (the branch, the checkouts
  already updated) is put back, so either all of it lands or none of it does.
- A landing cut off after the ref moved (the process was killed) can be finished: with
  `resume`, the ref must already be at `new`, and each checkout is brought to it the same way
  (a checkout already updated is left as it is); if one refuses, all of it is put back.
- A landing refuses while the branch is being rebased, or while a merge, cherry-pick or revert
  is under way in one of its checkouts; finishing those would otherwise drop or tangle it.
- Landings of one repository are serialised by `<common dir>/corral/land.lock`, so two
  approvals never race on one checkout's index. Every git call goes through `git.run_git_result`
  (hooks, fsmonitor and the repository's own drivers off).
"""

from __future__ import annotations

import dataclasses
import re
import time
from dataclasses import dataclass
from pathlib import Path

from corral.worktrees.errors import LandingIncomplete, LandingRefused
from corral.worktrees.git import (
    GitResult,
    WorktreeEntry,
    admin_dir,
    git_common_dir,
    list_worktrees,
    run_git_result,
)
from corral.worktrees.gitlock import git_metadata_lock
from corral.worktrees.plumbing import (
    ENGINE_EMAIL,
    ENGINE_NAME,
    checked,
    commit_tree,
    identity_env,
    rev_parse,
    update_ref_cas,
)

__all__ = [
    "Landing",
    "LandingIncomplete",
    "LandingRefused",
    "apply_landing",
    "approval_merge",
    "checkouts_of",
    "land",
    "parents_and_trailers",
    "prepare_landing",
    "undo_landing",
]

IN_PROGRESS = (
    ("MERGE_HEAD", "a merge"),
    ("CHERRY_PICK_HEAD", "a cherry-pick"),
    ("REVERT_HEAD", "a revert"),
)
"""Files in a worktree's git directory that say an operation there is not finished."""


@dataclass(frozen=True)
class Landing:
    """One move of `ref` from `old` to `new` and the checkouts it updates (or updated)."""

    repo: Path
    ref: str
    old: str
    new: str
    checkouts: tuple[Path, ...]
    """Before `apply_landing`: those checked; after: those updated, which `undo_landing` reverts."""
    resumed: bool = False
    """The ref was already at `new`: a landing cut off after the move (a crash) is finished."""

    @property
    def branch(self) -> str:
        return self.ref.removeprefix("refs/heads/")


def approval_merge(repo: Path, base: str, tip: str, message: str) -> str:
    """A merge commit (no ref moves) of `tip` into `base` with `tip`'s tree, made by corral.

    `tip` must descend from `base`: the tree is `tip`'s as it is, so the commit records a
    decision (its message) and keeps both histories, like `git merge --no-ff`.
    """
    tree = rev_parse(repo, f"{tip}^{{tree}}")
    if tree is None:
        raise LandingRefused(f"{tip} is not a commit in {repo}; nothing was landed")
    identity = identity_env(ENGINE_NAME, ENGINE_EMAIL, f"@{int(time.time())} +0000")
    return commit_tree(repo, tree, [base, tip], message, identity)


def parents_and_trailers(repo: Path, commit: str) -> tuple[tuple[str, ...], dict[str, str]]:
    """A commit's parents and the trailers of its message (`Key: value`, the last of each key)."""
    args = ("rev-list", "--no-walk", "--format=%P%x00%(trailers:only,unfold)", commit, "--")
    out = checked(repo, args, run_git_result(repo, *args))
    _, _, body = out.partition("\n")  # the first line is `commit <sha>`
    parents, _, block = body.partition("\0")
    trailers = {}
    for line in block.splitlines():
        key, sep, value = line.partition(": ")
        if sep:
            trailers[key] = value
    return tuple(parents.split()), trailers


def checkouts_of(repo: Path, ref: str) -> tuple[Path, ...]:
    """Every worktree (the main one first) whose HEAD is `ref` and whose directory exists."""
    return _checkouts(list_worktrees(repo), ref)


def _checkouts(entries: list[WorktreeEntry], ref: str) -> tuple[Path, ...]:
    if not ref.startswith("refs/heads/"):
        return ()  # HEAD can only name a branch
    branch = ref.removeprefix("refs/heads/")
    return tuple(
        entry.path
        for entry in entries
        if not entry.bare and entry.branch == branch and entry.prunable is None
    )


def _git_dir(worktree: Path) -> Path | None:
    dotgit = worktree / ".git"
    return dotgit if dotgit.is_dir() else admin_dir(worktree)


def _check_no_operation_under_way(entries: list[WorktreeEntry], ref: str) -> None:
    """Refuse while `ref` is being rebased anywhere, or a checkout of it is mid-merge."""
    branch = ref.removeprefix("refs/heads/")
    for entry in entries:
        gitdir = None if entry.bare or entry.prunable is not None else _git_dir(entry.path)
        if gitdir is None:
            continue
        for state in ("rebase-merge", "rebase-apply"):
            try:
                rebased = (gitdir / state / "head-name").read_text().strip()
            except OSError:
                continue
            if rebased == ref:
                raise LandingRefused(
                    f"{branch} is being rebased in {entry.path}; finish or abort that rebase "
                    f"(git -C {entry.path} rebase --continue, or --abort), then approve again; "
                    "nothing was landed"
                )
        if entry.branch != branch:
            continue
        for name, what in IN_PROGRESS:
            if (gitdir / name).exists():
                raise LandingRefused(
                    f"{what} is under way in {entry.path}, which has {branch} checked out; "
                    "commit or abort it, then approve again; nothing was landed"
                )


def _two_tree_merge(checkout: Path, old: str, new: str, *, dry_run: bool) -> GitResult:
    """`read-tree -m -u OLD NEW` in `checkout`: changes exactly the paths that differ, or refuses."""
    args = ["read-tree", "-m", "-u", *(["-n"] if dry_run else []), old, new]
    return run_git_result(checkout, *args)


def _changed_paths(repo: Path, old: str, new: str) -> set[str]:
    args = ("diff-tree", "-r", "-z", "--name-only", "--no-renames", old, new)
    return {path for path in checked(repo, args, run_git_result(repo, *args)).split("\0") if path}


def _local_changes_in_the_way(checkout: Path, old: str, new: str) -> list[str]:
    """The checkout's uncommitted paths (staged, unstaged, untracked) that the landing changes."""
    args = ("status", "--porcelain", "-z", "--untracked-files=all", "--no-renames")
    result = run_git_result(checkout, *args)
    if result.status != 0:
        return []
    changed = _changed_paths(checkout, old, new)
    dirty = {entry[3:] for entry in result.stdout.split("\0") if len(entry) > 3}
    return sorted(path for path in dirty if path in changed)


_QUOTED = re.compile(r"'([^']+)'")


def _refusal(checkout: Path, branch: str, old: str, new: str, result: GitResult) -> str:
    """Why `checkout` cannot take the landing, naming the paths and what to do."""
    paths = _local_changes_in_the_way(checkout, old, new)
    if not paths:
        paths = [
            match[1] for line in result.stderr.splitlines() for match in _QUOTED.finditer(line)
        ]
        paths = [path for path in paths if "index.lock" not in path]
    if paths:
        more = f" and {len(paths) - 8} more" if len(paths) > 8 else ""
        return (
            f"the checkout at {checkout} ({branch}) has uncommitted changes that landing would "
            f"overwrite: {', '.join(paths[:8])}{more}; commit or stash them (move untracked "
            "files away), then approve again"
        )
    said = "; ".join(line.strip() for line in result.stderr.splitlines() if line.strip())
    return (
        f"git cannot update the checkout at {checkout} ({branch}): {said or 'no message'}; "
        "fix that (a git command still running there holds index.lock), then approve again"
    )


def prepare_landing(repo: Path, ref: str, old: str, new: str, *, resume: bool = False) -> Landing:
    """Check that `ref` is at `old` and that every checkout of it can take `new`; change nothing.

    With `resume`, `ref` must already be at `new` (a landing cut off after the move): checkouts
    already updated pass the check, since a two-tree merge keeps an index that has `new`; when
    one refuses, the ref and the checkouts are put back to `old` (reverting a checkout still at
    `old` changes nothing). Raises LandingRefused, naming the checkout and its paths in the way.
    """
    branch = ref.removeprefix("refs/heads/")
    expected = new if resume else old
    if rev_parse(repo, f"{ref}^{{commit}}") != expected:
        raise LandingRefused(f"{branch} is no longer at {expected[:12]}; nothing was landed")
    entries = list_worktrees(repo)
    _check_no_operation_under_way(entries, ref)
    checkouts = _checkouts(entries, ref)
    for checkout in checkouts:
        # Stale stat data (a file re-saved unchanged) would read as a change; git merge refreshes
        # first too. Only the index's stat cache is written; contents are untouched.
        run_git_result(checkout, "update-index", "-q", "--ignore-submodules", "--refresh")
        trial = _two_tree_merge(checkout, old, new, dry_run=True)
        if trial.status != 0:
            if resume:  # take the cut-off landing back, so that nothing stays landed
                others = tuple(path for path in checkouts if path != checkout)
                undo = Landing(repo=repo, ref=ref, old=old, new=new, checkouts=others)
                _put_back(undo, "corral: interrupted landing taken back")
            raise LandingRefused(
                _refusal(checkout, branch, old, new, trial) + "; nothing was landed"
            )
    return Landing(repo=repo, ref=ref, old=old, new=new, checkouts=checkouts, resumed=resume)


def apply_landing(landing: Landing, reason: str) -> Landing:
    """Move the branch (CAS) and update every checkout of it; all of it, or none of it.

    The checkouts are listed again after the move, so one that switched to the branch since
    `prepare_landing` is updated too (read-tree still refuses to overwrite its changes). Returns
    the landing with the checkouts it updated. Raises LandingRefused when nothing was landed,
    LandingIncomplete when a failure could not be undone.
    """
    repo, ref, old, new = landing.repo, landing.ref, landing.old, landing.new
    if landing.resumed:
        if rev_parse(repo, f"{ref}^{{commit}}") != new:
            raise LandingRefused(f"{landing.branch} moved since it was checked; nothing was done")
    elif not update_ref_cas(repo, ref, new, old, reason):
        raise LandingRefused(
            f"{landing.branch} moved since it was checked (it was at {old[:12]}); "
            "nothing was landed"
        )
    done: list[Path] = []
    refused: str | None = None
    try:
        for checkout in checkouts_of(repo, ref):
            # Listed before it is updated: if the update is interrupted (Ctrl-C, a git that
            # timed out), it is put back too; reverting a checkout still at `old` changes nothing.
            done.append(checkout)
            result = _two_tree_merge(checkout, old, new, dry_run=False)
            if result.status != 0:
                done.pop()  # read-tree refused before writing anything
                refused = _refusal(checkout, landing.branch, old, new, result)
                break
    except BaseException:
        _put_back(dataclasses.replace(landing, checkouts=tuple(done)), f"{reason} (interrupted)")
        raise
    if refused is not None:
        _put_back(dataclasses.replace(landing, checkouts=tuple(done)), f"{reason} (undone)")
        raise LandingRefused(f"{refused}; nothing was landed")
    return dataclasses.replace(landing, checkouts=tuple(done))


def _put_back(landing: Landing, reason: str) -> None:
    """Move the branch back (CAS) and revert the checkouts `landing` updated."""
    repo, ref, old, new = landing.repo, landing.ref, landing.old, landing.new
    if not update_ref_cas(repo, ref, old, new, reason):
        # Someone moved the branch on after the landing: their commit builds on it, so
        # neither the branch nor its checkouts may be taken back.
        raise LandingIncomplete(
            f"{landing.branch} moved on from {new[:12]} while corral was undoing its landing; "
            f"it was left as it is (the landed commit {new[:12]} is in its history) and so were "
            f"the checkouts: {', '.join(map(str, landing.checkouts)) or 'none'}"
        )
    stuck = []
    for checkout in reversed(landing.checkouts):
        result = _two_tree_merge(checkout, new, old, dry_run=False)
        if result.status != 0:
            stuck.append(checkout)
    if stuck:
        fixes = "; ".join(f"git -C {path} read-tree -m -u {new} {old}" for path in stuck)
        raise LandingIncomplete(
            f"{landing.branch} was moved back to {old[:12]}, but these checkouts were changed "
            f"since and still hold the landed files: {', '.join(map(str, stuck))}; once their "
            f"changes are saved elsewhere, run: {fixes}"
        )


def land(repo: Path, ref: str, old: str, new: str, reason: str, *, resume: bool = False) -> Landing:
    """Check, then move `ref` from `old` to `new` and update its checkouts, under the land lock.

    With `resume`, finish a landing whose ref move already happened (see `prepare_landing`); if
    a checkout refuses, the ref is moved back to `old` as well, so nothing stays landed.
    """
    with git_metadata_lock(git_common_dir(repo), f"land {ref}", name="land.lock"):
        return apply_landing(prepare_landing(repo, ref, old, new, resume=resume), reason)


def undo_landing(landing: Landing, reason: str) -> None:
    """Take back a landing that `land` returned: the branch (CAS) and the checkouts it updated."""
    with git_metadata_lock(git_common_dir(landing.repo), f"undo {landing.ref}", name="land.lock"):
        _put_back(landing, reason)
