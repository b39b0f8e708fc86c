"""An attempt's branch taken back from a git bundle made where the attempt ran (an SSH host, a
Ray node): the one way corral accepts history from a place it does not trust.

git fetches the bundle into a private temporary ref (it checks every object and their
connectivity), the tip must be what the far side named when it said one, must descend from the
run's snapshot (a branch that skips it is refused), and becomes the attempt's branch only if no
branch of that name exists yet (`update-ref NAME NEW ""`). Only that one ref is read from the
bundle; no hook, config or other ref of the far side ever is.
"""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path

from corral.worktrees.errors import GitError
from corral.worktrees.git import run_git, run_git_result


class BranchRefused(GitError):
    """The bundle does not hold the branch, holds another tip, skips the snapshot, or the
    branch exists here already: the attempt's work is left out."""


def take_branch(
    repo_top: Path, bundle: Path | None, branch: str, snapshot: str, *, tip: str | None = None
) -> str:
    """Create `refs/heads/BRANCH` in `repo_top` from `bundle` (None: the attempt added nothing,
    the branch is made at the snapshot); `tip`: the commit the far side said the branch is at.
    Returns the branch's commit; raises BranchRefused."""
    if bundle is None:
        made = run_git_result(repo_top, "update-ref", f"refs/heads/{branch}", snapshot, "")
        if made.status != 0:
            raise BranchRefused(f"the local branch {branch} exists already: {made.stderr.strip()}")
        return snapshot
    incoming = f"refs/corral-fetch/{uuid.uuid4().hex}"
    fetched = run_git_result(
        repo_top,
        "fetch",
        "-q",
        "--no-tags",
        "--no-write-fetch-head",
        str(bundle),
        f"refs/heads/{branch}:{incoming}",
    )
    try:
        if fetched.status != 0:
            raise BranchRefused(
                f"the attempt's bundle of {branch} could not be fetched: {fetched.stderr.strip()}"
            )
        got = run_git(repo_top, "rev-parse", "--verify", f"{incoming}^{{commit}}")
        if tip is not None and got != tip:
            raise BranchRefused(f"the bundle of {branch} holds {got}, not the tip {tip} it named")
        if run_git_result(repo_top, "merge-base", "--is-ancestor", snapshot, got).status != 0:
            raise BranchRefused(
                f"{branch} at {got[:12]} does not descend from the snapshot {snapshot[:12]}; "
                "it is left out"
            )
        created = run_git_result(
            repo_top,
            "update-ref",
            "-m",
            "corral: the attempt's branch from where it ran",
            f"refs/heads/{branch}",
            got,
            "",
        )
        if created.status != 0:
            raise BranchRefused(
                f"the local branch {branch} exists already; its work is not taken over: "
                f"{created.stderr.strip()}"
            )
        return got
    finally:
        with contextlib.suppress(GitError):
            run_git(repo_top, "update-ref", "-d", incoming, check=False)
