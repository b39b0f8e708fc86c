"""worktrees/bundle.py: the one rule for history that comes back from where an attempt ran (an
SSH host, a Ray node); the runtimes' own tests cover the snapshot check end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.worktrees.bundle import BranchRefused, take_branch
from tests.conftest import git, make_repo


def _attempt_bundle(tmp_path: Path, repo: Path, snapshot: str) -> tuple[Path, str]:
    """A clone that commits on the attempt's branch, and that branch as a bundle."""
    work = tmp_path / "work"
    git(tmp_path, "clone", "-q", str(repo), str(work))
    git(work, "checkout", "-qb", "corral/r/a/1", snapshot)
    (work / "b.txt").write_text("b\n")
    git(work, "add", "b.txt")
    git(work, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "b")
    bundle = tmp_path / "branch.bundle"
    git(work, "bundle", "create", "-q", str(bundle), "corral/r/a/1", f"^{snapshot}")
    return bundle, git(work, "rev-parse", "HEAD")


def test_the_branch_is_taken_once_at_the_tip_the_far_side_named(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    snapshot = git(repo, "rev-parse", "HEAD")
    bundle, tip = _attempt_bundle(tmp_path, repo, snapshot)
    with pytest.raises(BranchRefused, match=f"holds {tip}, not the tip {snapshot} it named"):
        take_branch(repo, bundle, "corral/r/a/1", snapshot, tip=snapshot)
    assert "corral/r/a/1" not in git(repo, "branch", "--list")
    assert take_branch(repo, bundle, "corral/r/a/1", snapshot, tip=tip) == tip
    assert git(repo, "rev-parse", "corral/r/a/1") == tip
    with pytest.raises(BranchRefused, match="exists already; its work is not taken over"):
        take_branch(repo, bundle, "corral/r/a/1", snapshot)
    with pytest.raises(BranchRefused, match="exists already"):
        take_branch(repo, None, "corral/r/a/1", snapshot)
    assert git(repo, "rev-parse", "corral/r/a/1") == tip, "left as it was"
    assert git(repo, "for-each-ref", "refs/corral-fetch/") == "", "no temporary ref is left"
