"""Leftover commits, the integration branch, and verification, on real repositories."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from corral.worktrees.integrate import (
    IntegrationError,
    commit_leftovers,
    integrate,
    integration_branch,
)
from corral.worktrees.mergetree import ConflictPath
from corral.worktrees.plumbing import update_ref_cas
from tests.conftest import git
from tests.worktrees.merge_helpers import (
    agent,
    base_repo,
    commit_all,
    conflict_scene,
    edit_line,
)


def ref_log(repo: Path, ref: str) -> list[str]:
    return git(repo, "reflog", "show", "--format=%H %gs", ref).splitlines()


def test_commit_leftovers_names_agent_and_attempt(tmp_path: Path) -> None:
    repo = base_repo(tmp_path)
    ws = agent(repo, "coder", attempt=2)
    assert commit_leftovers(ws.path, "coder", 2, branch=ws.branch) is None  # nothing to commit
    edit_line(ws.path / "src/app.py", 1, "changed")
    (ws.path / "brand-new.txt").write_text("new\n")
    hooks, marker = tmp_path / "hooks", tmp_path / "hook-ran"
    hooks.mkdir()
    for hook in ("pre-commit", "commit-msg", "post-commit", "reference-transaction"):
        (hooks / hook).write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
        (hooks / hook).chmod(0o755)
    git(repo, "config", "core.hooksPath", str(hooks))

    commit = commit_leftovers(ws.path, "coder", 2, branch=ws.branch)

    assert commit is not None
    assert git(repo, "rev-parse", ws.branch) == commit
    assert git(repo, "rev-parse", f"{commit}^") == ws.commit
    assert git(repo, "log", "-1", "--format=%an <%ae>", commit) == (
        "coder (corral attempt 2) <coder.2@agents.corral.invalid>"
    )
    assert "agent coder, attempt 2" in git(repo, "log", "-1", "--format=%s", commit)
    assert not marker.exists()  # no hook ran
    assert git(ws.path, "-c", "core.hooksPath=/dev/null", "status", "--porcelain") == ""
    assert git(repo, "show", f"{commit}:brand-new.txt") == "new"
    assert git(repo, "rev-parse", "main") == ws.commit  # base untouched


def test_commit_leftovers_sees_a_same_size_edit_made_right_after_checkout(tmp_path: Path) -> None:
    """Racily clean: the edit lands in the checkout's clock tick; status must still see it."""
    repo = base_repo(tmp_path)
    ws = agent(repo, "coder")
    target = ws.path / "src/app.py"
    text = target.read_text()
    target.write_text(text.replace("1", "9", 1))  # same size, same tick, most likely
    assert len(target.read_text()) == len(text)
    commit = commit_leftovers(ws.path, "coder", 1, branch=ws.branch)
    assert commit is not None
    assert git(repo, "show", f"{commit}:src/app.py") == target.read_text().rstrip("\n")


def test_an_attempt_that_committed_everything_leaves_nothing(tmp_path: Path) -> None:
    repo = base_repo(tmp_path)
    ws = agent(repo, "coder")
    (ws.path / "done.txt").write_text("done\n")
    git(ws.path, "add", "done.txt")
    git(ws.path, "-c", "core.hooksPath=/dev/null", "commit", "-q", "-m", "the agent's own commit")
    tip = git(repo, "rev-parse", ws.branch)
    assert commit_leftovers(ws.path, "coder", 1, branch=ws.branch) is None
    assert git(repo, "rev-parse", ws.branch) == tip


def test_commit_leftovers_refuses_a_detached_head(tmp_path: Path) -> None:
    repo = base_repo(tmp_path)
    ws = agent(repo, "coder")
    git(ws.path, "switch", "-q", "--detach")
    with pytest.raises(IntegrationError, match="detached HEAD"):
        commit_leftovers(ws.path, "coder", 1, branch=ws.branch)


def test_commit_leftovers_refuses_another_branch(tmp_path: Path) -> None:
    repo = base_repo(tmp_path)
    ws = agent(repo, "coder")
    git(ws.path, "switch", "-q", "-c", "elsewhere")
    (ws.path / "x.txt").write_text("x\n")
    with pytest.raises(IntegrationError, match="not the attempt's branch"):
        commit_leftovers(ws.path, "coder", 1, branch=ws.branch)


def test_integrate_merges_clean_branches_and_leaves_out_a_conflicting_one(tmp_path: Path) -> None:
    repo = base_repo(tmp_path)
    base = git(repo, "rev-parse", "main")
    a, b, c, d = (agent(repo, name) for name in ("alpha", "bravo", "charlie", "delta"))
    edit_line(a.path / "src/app.py", 3, "alpha line 3")
    (b.path / "docs/guide.md").write_text("bravo's guide\n")
    edit_line(c.path / "src/app.py", 3, "charlie line 3")  # collides with alpha
    (c.path / "docs/other.md").write_text("charlie\n")
    for ws, name in ((a, "alpha"), (b, "bravo"), (c, "charlie")):
        assert commit_leftovers(ws.path, name, 1, branch=ws.branch) is not None
    # delta made no change at all
    branches = [
        (name, 1, ws.branch)
        for name, ws in (("delta", d), ("charlie", c), ("bravo", b), ("alpha", a))
    ]
    refs_before = git(repo, "for-each-ref", "--format=%(refname) %(objectname)")

    result = integrate(repo, "r1", base, branches)

    refs_after = git(repo, "for-each-ref", "--format=%(refname) %(objectname)")
    assert set(refs_after.splitlines()) - set(refs_before.splitlines()) == {
        f"refs/heads/{integration_branch('r1')} {result.commit}"
    }
    assert set(refs_before.splitlines()) <= set(refs_after.splitlines())

    assert [m.agent for m in result.merged] == ["alpha", "bravo", "delta"]
    assert [m.merge_commit for m in result.merged] == [True, True, False]
    assert [lo.agent for lo in result.left_out] == ["charlie"]
    left = result.left_out[0]
    assert left.conflicts_with == ("alpha",)
    assert left.files == (ConflictPath("src/app.py", "content"),)
    assert "alpha" in left.reason
    assert "src/app.py" in left.reason
    name = integration_branch("r1")
    assert git(repo, "rev-parse", name) == result.commit
    assert git(repo, "rev-parse", "main") == base  # the base branch is untouched
    parents = git(repo, "log", "-1", "--format=%P", result.merged[1].commit).split()
    assert parents == [result.merged[0].commit, git(repo, "rev-parse", b.branch)]
    assert "agent bravo, attempt 1" in git(
        repo, "log", "-1", "--format=%s", result.merged[1].commit
    )
    # The integration worktree holds the result; every ref move was a compare-and-swap step.
    assert result.worktree is not None
    assert (result.worktree / "src/app.py").read_text().splitlines()[2] == "alpha line 3"
    assert (result.worktree / "docs/guide.md").read_text() == "bravo's guide\n"
    assert not (result.worktree / "docs/other.md").exists()
    moves = ref_log(repo, name)
    assert [line.split(" ", 1)[1] for line in reversed(moves)] == [
        "corral: integration of r1",
        "corral: merge alpha/1",
        "corral: merge bravo/1",
    ]

    again = integrate(repo, "r1", base, branches)  # after a crash: the same commits again
    assert again.commit == result.commit
    assert [m.commit for m in again.merged] == [m.commit for m in result.merged]


def test_left_out_names_every_agent_it_collides_with(tmp_path: Path) -> None:
    repo = base_repo(tmp_path)
    base = git(repo, "rev-parse", "main")
    a, b, z = agent(repo, "a"), agent(repo, "b"), agent(repo, "z")
    edit_line(a.path / "src/app.py", 1, "a")
    (b.path / "src/util.py").write_text("b\n")
    edit_line(z.path / "src/app.py", 1, "z")
    (z.path / "src/util.py").write_text("z\n")
    tips = [commit_all(ws.path, ws.path.name) for ws in (a, b, z)]
    assert all(tips)
    result = integrate(
        repo,
        "r2",
        base,
        [(n, 1, ws.branch) for n, ws in (("a", a), ("b", b), ("z", z))],
        checkout=False,
    )
    assert result.worktree is None
    assert [lo.conflicts_with for lo in result.left_out] == [("a", "b")]


def test_a_left_out_branch_blames_only_the_agents_it_conflicts_with_file_by_file(
    tmp_path: Path,
) -> None:
    repo, base, branches = conflict_scene(tmp_path)
    tips = {name: git(repo, "rev-parse", branch) for name, _, branch in branches}
    assert git_status(repo, "merge-tree", "--write-tree", tips["c"], tips["z"]) == 0

    result = integrate(repo, "r3", base, branches, checkout=False)

    assert [m.agent for m in result.merged] == ["a", "c", "d"]
    [left] = result.left_out
    assert left.agent == "z"
    assert left.conflicts_with == ("a", "d")
    assert left.files == (
        ConflictPath("src/app.py", "content"),
        ConflictPath("src/lib.py", "content"),
    )
    assert left.pair_files == {
        "a": (ConflictPath("src/app.py", "content"),),
        "d": (ConflictPath("src/lib.py", "content"),),
    }
    assert "conflicts with a, d" in left.reason


def git_status(repo: Path, *args: str) -> int:
    return subprocess.run(["git", "-C", str(repo), *args], capture_output=True).returncode


def test_integrate_refuses_duplicates_and_reports_missing_branches(tmp_path: Path) -> None:
    repo = base_repo(tmp_path)
    base = git(repo, "rev-parse", "main")
    with pytest.raises(IntegrationError, match="latest attempt"):
        integrate(repo, "r1", base, [("a", 1, "x"), ("a", 2, "y")])
    with pytest.raises(IntegrationError, match="may not be called"):
        integrate(repo, "r1", base, [("integration", 1, "x")])
    result = integrate(repo, "r1", base, [("a", 1, "corral/r1/a/1")], checkout=False)
    assert result.left_out[0].reason == "branch corral/r1/a/1 does not exist"
    assert result.commit == base


def test_refs_move_only_from_the_value_expected(tmp_path: Path) -> None:
    repo = base_repo(tmp_path)
    base = git(repo, "rev-parse", "main")
    ws = agent(repo, "a")
    (ws.path / "a.txt").write_text("a\n")
    tip = commit_all(ws.path, "a")
    assert update_ref_cas(repo, "refs/heads/x", base, None, "create")
    assert not update_ref_cas(repo, "refs/heads/x", tip, None, "create again")
    assert not update_ref_cas(repo, "refs/heads/x", tip, tip, "stale old value")
    assert git(repo, "rev-parse", "x") == base
    assert update_ref_cas(repo, "refs/heads/x", tip, base, "move")
    assert git(repo, "rev-parse", "x") == tip
