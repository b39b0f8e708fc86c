"""Snapshots of live worktrees: uncommitted and untracked work counts, the agent's index doesn't move."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from corral.worktrees.git import run_git
from corral.worktrees.snapshot import snapshot, snapshot_commit, snapshot_tree
from tests.conftest import git
from tests.worktrees.merge_helpers import agent, base_repo, edit_line


def index_file(workspace: Path) -> Path:
    return Path(run_git(workspace, "rev-parse", "--path-format=absolute", "--git-path", "index"))


def test_clean_worktree_snapshot_is_its_head(tmp_path: Path) -> None:
    repo = base_repo(tmp_path)
    ws = agent(repo, "a")
    snap = snapshot(ws.path)
    assert snap.commit == snap.head == ws.commit
    assert not snap.dirty
    assert snap.tree == git(repo, "rev-parse", "main^{tree}")


def test_uncommitted_and_untracked_work_without_touching_the_agents_index(tmp_path: Path) -> None:
    repo = base_repo(tmp_path)
    ws = agent(repo, "a")
    edit_line(ws.path / "src/app.py", 3, "changed by a")
    git(ws.path, "add", "src/app.py")  # staged
    (ws.path / "README.md").write_text("# unstaged\n")  # unstaged
    (ws.path / "new.txt").write_text("untracked\n")  # untracked
    (ws.path / ".gitignore").write_text("*.log\n")
    (ws.path / "debug.log").write_text("ignored\n")
    status_before = git(ws.path, "status", "--porcelain")  # refreshes the index: do it first
    index = index_file(ws.path)
    before = (index.read_bytes(), os.stat(index).st_mtime_ns)

    first = snapshot(ws.path)

    assert (index.read_bytes(), os.stat(index).st_mtime_ns) == before
    assert git(ws.path, "-c", "core.fsmonitor=false", "status", "--porcelain") == status_before
    assert not (index.parent / "index.lock").exists()
    assert git(ws.path, "rev-parse", "HEAD") == ws.commit  # no ref moved
    assert first.dirty
    assert git(repo, "rev-parse", f"{first.commit}^") == ws.commit
    assert git(repo, "show", f"{first.tree}:new.txt") == "untracked"
    assert git(repo, "show", f"{first.tree}:README.md") == "# unstaged"
    assert "changed by a" in git(repo, "show", f"{first.tree}:src/app.py")
    names = git(repo, "ls-tree", "-r", "--name-only", first.tree).splitlines()
    assert "debug.log" not in names
    # Same content, same commit: an idle agent's snapshot does not change.
    assert snapshot_commit(ws.path) == first.commit
    assert snapshot_tree(ws.path) == first.tree
    (ws.path / "new.txt").write_text("untracked, edited\n")
    assert snapshot_commit(ws.path) != first.commit


def test_deleted_files_and_a_missing_index(tmp_path: Path) -> None:
    repo = base_repo(tmp_path)
    ws = agent(repo, "a")
    (ws.path / "docs/guide.md").unlink()
    index = index_file(ws.path)
    index.unlink()  # a worktree without an index: every file counts as new
    tree = snapshot_tree(ws.path)
    names = git(repo, "ls-tree", "-r", "--name-only", tree).splitlines()
    assert "docs/guide.md" not in names
    assert "src/app.py" in names
    assert not index.exists()


def git_commands(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The git subcommands started from now on (option pairs skipped), in order."""
    started: list[str] = []
    real = subprocess.Popen

    class Counted(real):  # type: ignore[valid-type,misc]
        def __init__(self, argv: list[str], *args: Any, **kwargs: Any) -> None:
            words = iter(argv[1:])
            for word in words:
                if word in ("-C", "-c"):
                    next(words)
                else:
                    started.append(word)
                    break
            super().__init__(argv, *args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", Counted)
    return started


def test_three_processes_when_clean_four_when_dirty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = base_repo(tmp_path)
    ws = agent(repo, "a")
    snapshot(ws.path)  # the repository's driver config is read once, then cached
    started = git_commands(monkeypatch)
    assert not snapshot(ws.path).dirty
    assert started == ["rev-list", "add", "write-tree"]
    started.clear()
    (ws.path / "new.txt").write_text("untracked\n")
    assert snapshot(ws.path).dirty
    assert started == ["rev-list", "add", "write-tree", "commit-tree"]


def test_the_main_worktree_asks_git_for_its_index(tmp_path: Path) -> None:
    repo = base_repo(tmp_path)
    (repo / "README.md").write_text("# changed in the main worktree\n")
    snap = snapshot(repo)
    assert snap.dirty
    assert git(repo, "show", f"{snap.tree}:README.md") == "# changed in the main worktree"


def test_racily_clean_entries_are_rehashed(tmp_path: Path) -> None:
    """A file rewritten in the index's clock tick, same size, looks clean by its stat data alone;
    git looks again because its mtime is not older than the index file's. The copy must keep the
    index's mtime for git to see that."""
    repo = base_repo(tmp_path)
    ws = agent(repo, "a")
    git(ws.path, "config", "core.trustctime", "false")  # only mtime and size tell, as in a tick
    target = ws.path / "src/util.py"
    old = os.stat(target).st_mtime_ns - 100 * 10**9
    os.utime(target, ns=(old, old))
    git(ws.path, "update-index", "--refresh")  # the entry now holds `old` and the real size
    with open(target, "r+") as file:  # same inode, same size, new content
        file.write(target.read_text().replace("1", "2"))
    os.utime(target, ns=(old, old))
    os.utime(index_file(ws.path), ns=(old, old))  # as if the index was written in that tick
    snap = snapshot(ws.path)
    assert snap.dirty
    assert "return 2" in git(repo, "show", f"{snap.tree}:src/util.py")
