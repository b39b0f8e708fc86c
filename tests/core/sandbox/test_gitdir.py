"""The private git directory: commits made in the sandbox come back as the attempt's branch and
nothing else does."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.core.sandbox.gitdir import CollectError, collect_branch, private_tip
from tests.conftest import git
from tests.core.sandbox.conftest import Attempt


def _collect(attempt: Attempt, tmp_path: Path) -> str | None:
    p = attempt.paths
    return collect_branch(
        attempt.repo,
        gitdir=p.private_gitdir,
        scratch=tmp_path / "scratch",
        common_dir=p.common_dir,
        admin_dir=p.admin_dir,
        worktree=p.worktree,
        branch=attempt.branch,
        start=attempt.start,
    )


def test_sandboxed_commits_come_back_on_the_attempts_branch_only(
    attempt: Attempt, tmp_path: Path
) -> None:
    script = (
        "echo one > one.txt && git add one.txt && git commit -qm one && "
        "echo two > two.txt && git add two.txt && git commit -qm two && "
        "git branch side && git tag v9 && git update-ref refs/heads/main HEAD && "
        "git config core.hooksPath /tmp && echo left > left.txt"
    )
    done = attempt.run(script, sandboxed=True)
    assert done.returncode == 0, done.stderr
    refs_before = git(attempt.repo, "for-each-ref", "--format=%(refname) %(objectname)")
    tip = _collect(attempt, tmp_path)
    assert tip is not None
    assert git(attempt.repo, "rev-parse", attempt.branch) == tip
    assert git(attempt.repo, "log", "--format=%s", f"{attempt.start}..{tip}").split() == [
        "two",
        "one",
    ]
    refs_after = git(attempt.repo, "for-each-ref", "--format=%(refname) %(objectname)")
    changed = set(refs_after.splitlines()) ^ set(refs_before.splitlines())
    assert {line.split()[0] for line in changed} == {f"refs/heads/{attempt.branch}"}
    assert "hookspath" not in (attempt.paths.common_dir / "config").read_text().lower()
    assert not (tmp_path / "scratch").exists()
    # the shared record's index follows the branch: only the uncommitted file is left over
    status = git(attempt.paths.worktree, "status", "--porcelain")
    assert status.splitlines() == ["?? left.txt"]


def test_commits_packed_by_the_agent_come_back(attempt: Attempt, tmp_path: Path) -> None:
    """The private directory starts with the branch in `packed-refs` and no `objects/pack`; git
    makes what it needs, and a tip the agent packed (refs and objects) is found and fetched."""
    script = (
        'test "$(git rev-parse HEAD)" = "$(git rev-parse main)" && '
        "echo one > one.txt && git add one.txt && git commit -qm one && "
        "git gc -q && git pack-refs --all"
    )
    done = attempt.run(script, sandboxed=True)
    assert done.returncode == 0, done.stderr
    gitdir = attempt.paths.private_gitdir
    assert not (gitdir / "refs" / "heads" / attempt.branch).exists()
    assert list((gitdir / "objects" / "pack").glob("*.pack"))
    tip = _collect(attempt, tmp_path)
    assert tip is not None
    assert git(attempt.repo, "log", "-1", "--format=%s", attempt.branch) == "one"


def test_an_unmoved_branch_brings_nothing_back(attempt: Attempt, tmp_path: Path) -> None:
    assert _collect(attempt, tmp_path) is None
    assert git(attempt.repo, "rev-parse", attempt.branch) == attempt.start


def test_a_tip_whose_objects_are_missing_is_refused(attempt: Attempt, tmp_path: Path) -> None:
    ref = attempt.paths.private_gitdir / "refs" / "heads" / attempt.branch
    ref.parent.mkdir(parents=True, exist_ok=True)
    ref.write_text("1" * 40 + "\n")
    assert private_tip(attempt.paths.private_gitdir, attempt.branch) == "1" * 40
    with pytest.raises(CollectError, match="could not be brought back"):
        _collect(attempt, tmp_path)
    assert git(attempt.repo, "rev-parse", attempt.branch) == attempt.start


def test_a_ref_that_is_a_link_is_not_followed(attempt: Attempt, tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text(attempt.start + "\n")
    ref = attempt.paths.private_gitdir / "refs" / "heads" / attempt.branch
    ref.parent.mkdir(parents=True, exist_ok=True)  # the branch starts packed, not loose
    ref.symlink_to(target)
    assert private_tip(attempt.paths.private_gitdir, attempt.branch) is None
