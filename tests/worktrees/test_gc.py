"""Collecting a finished run: precise removal that keeps work and leaves other runs alone."""

from __future__ import annotations

import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from corral.worktrees.gc import GcResult, collect_run, list_run_branches, list_run_workspaces
from corral.worktrees.git import find_worktree, list_worktrees
from corral.worktrees.workspace import (
    Workspace,
    create_workspace,
    default_root,
    unlock_workspace,
)
from tests.conftest import git


def make_run(repo: Path, run_id: str, agents: list[str]) -> list[Workspace]:
    root = default_root(repo)
    return [create_workspace(repo, root, run_id, agent, 1, "main") for agent in agents]


def finish(workspaces: list[Workspace]) -> None:
    for ws in workspaces:
        unlock_workspace(ws.path)


def test_lists_a_runs_worktrees_and_branches_only(repo: Path) -> None:
    mine = make_run(repo, "run1", ["a", "b"])
    make_run(repo, "run10", ["a"])  # a run id that starts like ours is another run
    assert sorted(list_run_workspaces(repo, "run1")) == sorted(ws.path for ws in mine)
    assert list_run_branches(repo, "run1") == ["corral/run1/a/1", "corral/run1/b/1"]


def test_collect_removes_a_finished_run_and_leaves_others_alone(repo: Path) -> None:
    done = make_run(repo, "run1", ["a", "b", "c"])
    live = make_run(repo, "run2", ["a"])
    finish(done)
    result = collect_run(repo, "run1", force=False)
    assert sorted(result.removed_worktrees) == sorted(ws.path for ws in done)
    assert sorted(result.removed_branches) == [
        "corral/run1/a/1",
        "corral/run1/b/1",
        "corral/run1/c/1",
    ]
    assert result.kept == []
    assert not (default_root(repo) / "run1").exists()
    assert [e.path for e in list_worktrees(repo)[1:]] == [live[0].path]
    assert (live[0].path / "README.md").exists()
    branches = git(repo, "for-each-ref", "--format=%(refname:short)", "refs/heads/corral/")
    assert branches == "corral/run2/a/1"


def test_collect_keeps_dirty_worktrees_and_their_branches_unless_forced(repo: Path) -> None:
    clean, dirty = make_run(repo, "run1", ["clean", "dirty"])
    (dirty.path / "notes.txt").write_text("unsaved")
    result = collect_run(repo, "run1", force=False)
    assert result.removed_worktrees == [clean.path]
    assert result.removed_branches == ["corral/run1/clean/1"]
    reasons = dict(result.kept)
    assert "uncommitted changes (1: notes.txt)" in reasons[str(dirty.path)]
    assert "remove it with force" in reasons[str(dirty.path)]
    assert reasons["corral/run1/dirty/1"] == (
        f"checked out in worktree {dirty.path}; remove that worktree first"
    )
    assert (dirty.path / "notes.txt").read_text() == "unsaved"

    forced = collect_run(repo, "run1", force=True)
    assert forced == GcResult([dirty.path], ["corral/run1/dirty/1"], [])
    assert list_worktrees(repo)[1:] == []


def test_collect_keeps_branches_with_commits_found_nowhere_else(repo: Path) -> None:
    (ws,) = make_run(repo, "run1", ["coder"])
    (ws.path / "feature.txt").write_text("new")
    git(ws.path, "add", "feature.txt")
    git(ws.path, "commit", "-q", "-m", "feature")
    result = collect_run(repo, "run1", force=False)
    assert result.removed_worktrees == [ws.path]  # clean: the work is committed
    assert result.kept == [
        (
            "corral/run1/coder/1",
            "holds 1 commit(s) no other branch has; merge them, or collect with force",
        )
    ]
    git(repo, "branch", "merged", "corral/run1/coder/1")  # once merged elsewhere, it may go
    assert collect_run(repo, "run1", force=False).removed_branches == ["corral/run1/coder/1"]


def test_collect_is_precise_about_vanished_directories(repo: Path) -> None:
    (gone,) = make_run(repo, "run1", ["a"])
    (other,) = make_run(repo, "run2", ["a"])
    shutil.rmtree(gone.path)
    shutil.rmtree(other.path)
    git(repo, "worktree", "unlock", str(other.path))  # now `git worktree prune` would take it
    result = collect_run(repo, "run1", force=False)
    assert result.removed_worktrees == [gone.path]
    assert find_worktree(list_worktrees(repo), gone.path) is None
    assert find_worktree(list_worktrees(repo), other.path) is not None  # no prune happened


def test_collect_finds_an_agent_that_detached_head(repo: Path) -> None:
    (ws,) = make_run(repo, "run1", ["a"])
    git(ws.path, "switch", "-q", "--detach")
    assert list_run_workspaces(repo, "run1") == [ws.path]
    finish([ws])
    assert list_run_workspaces(repo, "run1") == [ws.path]  # by its place, once unlocked
    assert collect_run(repo, "run1", force=False).removed_worktrees == [ws.path]


def test_collect_while_another_run_is_being_created(repo: Path) -> None:
    done = make_run(repo, "run1", [f"a{i}" for i in range(6)])
    finish(done)
    root = default_root(repo)
    start = threading.Barrier(3)

    def create(index: int) -> Workspace:
        start.wait()
        return create_workspace(repo, root, "run2", f"b{index}", 1, "main")

    def collect() -> GcResult:
        start.wait()
        return collect_run(repo, "run1", force=False)

    with ThreadPoolExecutor(3) as pool:
        collected = pool.submit(collect)
        made = [pool.submit(create, 0), pool.submit(create, 1)]
        result = collected.result()
        created = [future.result() for future in made]
        more = [create_workspace(repo, root, "run2", f"b{i}", 1, "main") for i in range(2, 6)]
    assert len(result.removed_worktrees) == 6, result.kept
    assert result.kept == []
    remaining = {e.path for e in list_worktrees(repo)[1:]}
    assert remaining == {ws.path for ws in created + more}
