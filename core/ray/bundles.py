"""Git history in and out of a host as one file: a git bundle, made and taken in a bare repository.

Generic (any runtime whose attempts run where the repository is not: Ray nodes, SSH hosts):

- `snapshot_bundle`: the run's snapshot commit as a bundle, made in a scratch bare repository
  that borrows the repository's objects (an alternate), so nothing is written to the user's refs.
- `unpack_snapshot`: the bundle into a cache bare repository on the far side, once per host
  (under a file lock, so the attempts of a node share one copy).
- `branch_bundle`: an attempt's branch, from its clone, as a bundle of what it added.
- `fetch_branch`: that bundle into the repository, by worktrees/bundle.py's rule (shared with
  the SSH runtime): git checks every object and its connectivity, and the branch is created by
  compare-and-swap only if it descends from the snapshot (an agent cannot hand back a history
  that skips it).

Git runs through `corral.worktrees.git.run_git` (safe options, no hooks, no drivers).
"""

from __future__ import annotations

import fcntl
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from corral.worktrees.bundle import take_branch
from corral.worktrees.git import run_git, run_git_result

SNAPSHOT_REF = "refs/heads/corral-snapshot"


def _bare(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)
    if not (path / "HEAD").exists():
        run_git(path, "init", "--quiet", "--bare")


def snapshot_bundle(repo_top: Path, snapshot: str, scratch: Path) -> bytes:
    """The commit `snapshot` of `repo_top` (and its history) as a bundle's bytes."""
    _bare(scratch)
    objects = run_git(repo_top, "rev-parse", "--path-format=absolute", "--git-common-dir")
    alternates = scratch / "objects" / "info" / "alternates"
    alternates.write_text(str(Path(objects) / "objects") + "\n")
    run_git(scratch, "update-ref", SNAPSHOT_REF, snapshot)
    target = scratch / "snapshot.bundle"
    run_git(scratch, "bundle", "create", "--quiet", str(target), SNAPSHOT_REF)
    return target.read_bytes()


def unpack_snapshot(cache: Path, snapshot: str, fetch_bundle: Callable[[], bytes]) -> Path:
    """The bare repository at `cache` holding `snapshot`, made from the bundle once.

    `fetch_bundle` is called (no arguments, returning the bundle's bytes) only when the cache
    does not hold the commit yet, so a node fetches the bundle from the object store once."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    with open(str(cache) + ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (cache / "HEAD").exists() and _has_commit(cache, snapshot):
            return cache
        _bare(cache)
        data = fetch_bundle()
        with tempfile.NamedTemporaryFile(dir=cache, suffix=".bundle", delete=False) as file:
            file.write(data)
        try:
            run_git(
                cache, "fetch", "--quiet", "--no-tags", file.name, f"+{SNAPSHOT_REF}:{SNAPSHOT_REF}"
            )
        finally:
            os.unlink(file.name)
        return cache


def _has_commit(repo: Path, commit: str) -> bool:
    return run_git_result(repo, "cat-file", "-e", f"{commit}^{{commit}}").status == 0


def clone_attempt(cache: Path, workspace: Path, snapshot: str, branch: str) -> None:
    """A working copy of `snapshot` on a new `branch`, sharing the cache's objects."""
    workspace.parent.mkdir(parents=True, exist_ok=True)
    run_git(
        workspace.parent,
        "clone",
        "--quiet",
        "--shared",
        "--no-checkout",
        str(cache),
        str(workspace),
    )
    run_git(workspace, "checkout", "--quiet", "-b", branch, snapshot)


def branch_bundle(workspace: Path, branch: str, snapshot: str) -> bytes | None:
    """What `branch` added to `snapshot` as a bundle; None when it added nothing."""
    tip = run_git(workspace, "rev-parse", "--verify", f"refs/heads/{branch}^{{commit}}")
    if tip == snapshot:
        return None
    target = workspace.parent / "branch.bundle"
    run_git(
        workspace,
        "bundle",
        "create",
        "--quiet",
        str(target),
        f"refs/heads/{branch}",
        f"^{snapshot}",
    )
    try:
        return target.read_bytes()
    finally:
        target.unlink(missing_ok=True)


def fetch_branch(repo_top: Path, branch: str, snapshot: str, bundle: bytes | None) -> str:
    """Create `branch` in `repo_top` from the node's `bundle` (None: at the snapshot); its tip.
    What is taken is worktrees/bundle.py's rule; raises its BranchRefused."""
    if bundle is None:
        return take_branch(repo_top, None, branch, snapshot)
    with tempfile.NamedTemporaryFile(suffix=".bundle") as file:
        file.write(bundle)
        file.flush()
        return take_branch(repo_top, Path(file.name), branch, snapshot)
