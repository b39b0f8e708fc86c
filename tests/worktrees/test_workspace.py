"""Creating, copying into, unlocking and removing workspaces, on real repositories."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from corral.worktrees.errors import GitError, UnsafePath
from corral.worktrees.git import find_worktree, list_worktrees, run_git
from corral.worktrees.gitlock import git_metadata_lock
from corral.worktrees.workspace import (
    Workspace,
    WorkspaceDirty,
    WorkspaceError,
    branch_name,
    changed_paths,
    copy_untracked,
    create_workspace,
    default_root,
    is_dirty,
    remove_workspace,
    unlock_workspace,
    workspace_path,
)
from tests.conftest import git

HOLD_LOCK = """
import sys
from pathlib import Path
from corral.worktrees.gitlock import git_metadata_lock
with git_metadata_lock(Path(sys.argv[1]), "create worktree x"):
    print("held", flush=True)
    sys.stdin.readline()
"""


def write_script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


def create(repo: Path, agent: str = "coder", attempt: int = 1, run_id: str = "run1") -> Workspace:
    return create_workspace(repo, default_root(repo), run_id, agent, attempt, "main")


def test_names_and_places() -> None:
    assert branch_name("r1", "coder", 2) == "corral/r1/coder/2"
    assert workspace_path(Path("/w"), "r1", "coder", 2) == Path("/w/r1/coder-2")
    for bad in ("", "../x", "a/b", "-x", "a..b", "x.lock", "a b"):
        with pytest.raises(WorkspaceError, match="cannot name a branch and a directory"):
            branch_name("r1", bad, 1)
    with pytest.raises(WorkspaceError, match="whole number"):
        branch_name("r1", "coder", -1)


def test_create_gives_branch_commit_files_and_a_locked_worktree(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    ws = create(repo)
    assert ws == Workspace(
        path=repo / ".git" / "corral" / "worktrees" / "run1" / "coder-1",
        branch="corral/run1/coder/1",
        commit=head,
    )
    assert (ws.path / "src" / "app.py").read_text() == "print('hi')\n"
    assert git(ws.path, "rev-parse", "HEAD") == head
    assert git(ws.path, "symbolic-ref", "--short", "HEAD") == "corral/run1/coder/1"
    assert not is_dirty(ws.path)
    entry = find_worktree(list_worktrees(repo), ws.path)
    assert entry is not None
    assert entry.lock_reason == "corral run run1 agent coder attempt 1"
    assert git(repo, "status", "--porcelain") == ""  # the main working tree does not see it
    assert stat.S_IMODE(os.stat(ws.path.parent).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(default_root(repo)).st_mode) == 0o700


def test_create_resolves_the_base_once_and_refuses_unknown_ones(repo: Path) -> None:
    with pytest.raises(WorkspaceError):
        create_workspace(repo, default_root(repo), "run1", "../up", 1, "main")
    with pytest.raises(Exception, match="base 'nope' does not exist"):
        create_workspace(repo, default_root(repo), "run1", "coder", 1, "nope")
    assert list_worktrees(repo)[1:] == []


def test_hooks_do_not_run(repo: Path, tmp_path: Path) -> None:
    marker = tmp_path / "hook-ran"
    for hook in ("post-checkout", "reference-transaction", "post-index-change"):
        write_script(repo / ".git" / "hooks" / hook, f"echo {hook} >> {marker}")
    ws = create(repo)
    remove_workspace(repo, ws.path, force=True)
    assert not marker.exists()
    git(repo, "worktree", "add", "-q", "-b", "plain", str(tmp_path / "plain"))
    assert "post-checkout" in marker.read_text()  # the same hooks do run for plain git


def test_repository_fsmonitor_is_not_executed(repo: Path, tmp_path: Path) -> None:
    marker = tmp_path / "fsmonitor-ran"
    script = write_script(tmp_path / "monitor.sh", f"touch {marker}; exit 1")
    git(repo, "config", "core.fsmonitor", str(script))
    ws = create(repo)
    (ws.path / "new.txt").write_text("x")
    assert is_dirty(ws.path)
    assert not is_dirty(repo)
    remove_workspace(repo, ws.path, force=True)
    assert not marker.exists()
    git(repo, "status")
    assert marker.exists()  # plain git does run it


def test_repository_filters_are_not_executed_on_checkout(repo: Path, tmp_path: Path) -> None:
    marker = tmp_path / "smudged"
    script = write_script(tmp_path / "smudge.sh", f"touch {marker}; cat")
    git(repo, "config", "filter.evil.smudge", str(script))
    (repo / ".git" / "info" / "attributes").write_text("* filter=evil\n")
    ws = create(repo)
    assert (ws.path / "README.md").read_text() == "# sample\n"
    assert not marker.exists()
    git(repo, "worktree", "add", "-q", "-b", "plain", str(tmp_path / "plain"))
    assert marker.exists()


def test_recreate_after_a_crash_between_metadata_and_checkout(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    path = workspace_path(default_root(repo), "run1", "coder", 1)
    path.parent.mkdir(parents=True)
    git(
        repo, "worktree", "add", "-q", "--no-checkout", "-b", "corral/run1/coder/1", str(path), head
    )
    assert not (path / "README.md").exists()
    ws = create(repo)
    assert (ws.path / "README.md").read_text() == "# sample\n"
    assert not is_dirty(ws.path)
    entry = find_worktree(list_worktrees(repo), ws.path)
    assert entry is not None
    assert entry.locked


def test_recreate_after_a_checkout_killed_midway(repo: Path) -> None:
    ws = create(repo)
    (ws.path / "README.md").write_text("half written")
    (ws.path / "src" / "app.py").unlink()
    admin = Path(git(ws.path, "rev-parse", "--absolute-git-dir"))
    (admin / "index.lock").write_text("")
    again = create(repo)
    assert again == ws
    assert (ws.path / "README.md").read_text() == "# sample\n"
    assert (ws.path / "src" / "app.py").exists()
    assert not is_dirty(ws.path)


def test_recreate_when_only_the_branch_or_only_the_registration_survived(repo: Path) -> None:
    head = git(repo, "rev-parse", "HEAD")
    git(repo, "branch", "corral/run1/a/1", head)  # crash after `git branch`, before the worktree
    assert (create(repo, "a").path / "README.md").exists()

    ws = create(repo, "b")
    shutil.rmtree(ws.path)  # the directory went, the locked registration stayed
    again = create(repo, "b")
    assert (again.path / "README.md").exists()
    assert len([e for e in list_worktrees(repo) if e.branch == "corral/run1/b/1"]) == 1


def test_recreate_clears_debris_but_never_foreign_files(repo: Path) -> None:
    path = workspace_path(default_root(repo), "run1", "coder", 1)
    path.mkdir(parents=True)
    (path / ".git").write_text("gitdir: /nowhere\n")  # what a killed `worktree add` leaves
    assert (create(repo).path / "README.md").exists()

    other = workspace_path(default_root(repo), "run1", "coder", 2)
    other.mkdir(parents=True)
    (other / "notes.txt").write_text("mine")
    with pytest.raises(WorkspaceError, match="is not a registered worktree and holds files"):
        create(repo, attempt=2)
    assert (other / "notes.txt").read_text() == "mine"


def test_recreate_never_discards_commits_of_the_attempt(repo: Path) -> None:
    ws = create(repo)
    (ws.path / "work.txt").write_text("done")
    git(ws.path, "add", "work.txt")
    git(ws.path, "commit", "-q", "-m", "work")
    tip = git(ws.path, "rev-parse", "HEAD")
    with pytest.raises(WorkspaceError, match="already has work; start a new attempt"):
        create(repo)
    assert git(repo, "rev-parse", "corral/run1/coder/1") == tip


def test_copy_untracked_copies_env_files_with_their_mode(repo: Path) -> None:
    (repo / ".env").write_text("TOKEN=1\n")
    (repo / ".env").chmod(0o600)
    (repo / "config").mkdir()
    (repo / "config" / "local.toml").write_text("x = 1\n")
    (repo / "alias.env").symlink_to(".env")  # a link inside the repository is fine
    ws = create(repo)
    copy_untracked(repo, ws.path, [".env", "config/local.toml", "alias.env", "./.env"])
    assert (ws.path / ".env").read_text() == "TOKEN=1\n"
    assert stat.S_IMODE(os.stat(ws.path / ".env").st_mode) == 0o600
    assert (ws.path / "config" / "local.toml").read_text() == "x = 1\n"
    assert (ws.path / "alias.env").read_text() == "TOKEN=1\n"
    assert not (ws.path / "alias.env").is_symlink()


def test_copy_untracked_refuses_escapes(repo: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("do not copy")
    (repo / "leak").symlink_to(secret)
    ws = create(repo)
    for name, why in (
        ("../x", "climbs out"),
        (str(secret), "is absolute"),
        ("leak", "outside the repository"),
        (".git/config", "is in .git"),
    ):
        with pytest.raises(UnsafePath, match=why):
            copy_untracked(repo, ws.path, [name])
    assert not (ws.path / "leak").exists()


def test_copy_untracked_never_writes_through_a_symlink_in_the_workspace(
    repo: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (repo / "src" / "local.env").write_text("A=1\n")
    ws = create(repo)
    shutil.rmtree(ws.path / "src")
    (ws.path / "src").symlink_to(outside)
    with pytest.raises(UnsafePath, match="will not write through it"):
        copy_untracked(repo, ws.path, ["src/local.env"])
    assert list(outside.iterdir()) == []


def test_copy_untracked_names_a_missing_file_and_copies_nothing(repo: Path) -> None:
    (repo / ".env").write_text("A=1\n")
    ws = create(repo)
    with pytest.raises(WorkspaceError, match=r"file '\.env\.local' .* does not exist in"):
        copy_untracked(repo, ws.path, [".env", ".env.local"])
    assert not (ws.path / ".env").exists()


def test_unlock_tolerates_an_unlocked_worktree(repo: Path) -> None:
    ws = create(repo)
    unlock_workspace(ws.path)
    unlock_workspace(ws.path)
    entry = find_worktree(list_worktrees(repo), ws.path)
    assert entry is not None
    assert not entry.locked


def test_unlock_never_follows_a_forged_git_file_to_another_worktree(repo: Path) -> None:
    mine, other = create(repo, "mine"), create(repo, "other")
    (mine.path / ".git").write_text((other.path / ".git").read_text())  # the agent's doing
    unlock_workspace(mine.path)
    entry = find_worktree(list_worktrees(repo), other.path)
    assert entry is not None
    assert entry.locked


def test_dirty_means_modified_staged_or_untracked(repo: Path) -> None:
    ws = create(repo)
    assert changed_paths(ws.path) == []
    (ws.path / "README.md").write_text("edited")
    (ws.path / "new file.txt").write_text("x")
    assert sorted(changed_paths(ws.path)) == ["README.md", "new file.txt"]
    run_git(ws.path, "add", "-A")
    git(ws.path, "mv", "src/app.py", "src/main.py")
    assert "src/main.py" in changed_paths(ws.path)
    assert is_dirty(ws.path)


def test_remove_refuses_a_dirty_workspace_without_force(repo: Path) -> None:
    ws = create(repo)
    (ws.path / "unsaved.txt").write_text("work")
    with pytest.raises(WorkspaceDirty) as caught:
        remove_workspace(repo, ws.path, force=False)
    assert str(caught.value) == (
        f"worktree {ws.path} has uncommitted changes (1: unsaved.txt); commit or discard them, "
        "or remove it with force"
    )
    assert (ws.path / "unsaved.txt").exists()
    entry = find_worktree(list_worktrees(repo), ws.path)
    assert entry is not None
    assert entry.locked
    remove_workspace(repo, ws.path, force=True)
    assert not ws.path.exists()
    assert find_worktree(list_worktrees(repo), ws.path) is None
    assert git(repo, "rev-parse", "--verify", ws.branch) == ws.commit  # the branch stays


def test_remove_a_clean_locked_workspace_and_again(repo: Path) -> None:
    ws = create(repo)
    remove_workspace(repo, ws.path, force=False)
    assert not ws.path.exists()
    remove_workspace(repo, ws.path, force=False)  # already gone: nothing to do
    with pytest.raises(WorkspaceError, match="main working tree"):
        remove_workspace(repo, repo, force=True)


def test_a_waiter_on_the_git_lock_is_told_who_holds_it(repo: Path) -> None:
    common = repo / ".git"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(common)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "held"
        with (
            pytest.raises(GitError, match=rf"held by pid {holder.pid} on .*\(create worktree x"),
            git_metadata_lock(common, "mine", timeout=0.2),
        ):
            pass
    finally:
        holder.communicate("done\n", timeout=30)
    with git_metadata_lock(common, "mine", timeout=5):
        pass  # released when its holder let go
    assert stat.S_IMODE(os.stat(common / "corral" / "git.lock").st_mode) == 0o600
