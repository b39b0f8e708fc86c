"""What the worktree tests check of a batch of workspaces (shared by the concurrency and batch
tests)."""

from __future__ import annotations

from pathlib import Path

from corral.worktrees.git import list_worktrees
from corral.worktrees.workspace import Workspace, is_dirty
from tests.conftest import git


def assert_all_present(repo: Path, made: list[Workspace], commit: str) -> None:
    """Every workspace made is registered, locked, on its own branch, complete and clean."""
    entries = {entry.path: entry for entry in list_worktrees(repo)[1:]}
    assert len(entries) == len(made)
    assert len({ws.branch for ws in made}) == len(made)
    for ws in made:
        entry = entries[ws.path]
        assert entry.branch == ws.branch
        assert entry.head == commit == ws.commit
        assert entry.locked
        assert (ws.path / "src" / "app.py").read_text() == "print('hi')\n"
        assert not is_dirty(ws.path)
    branches = git(repo, "for-each-ref", "--format=%(refname)", "refs/heads/corral/")
    assert sorted(branches.splitlines()) == sorted(f"refs/heads/{ws.branch}" for ws in made)
