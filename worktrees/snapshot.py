"""What a live worktree holds right now, as a tree and a commit, without touching the agent.

The agent's index is never read through git and never written: its file is copied to a private
temporary file (so the stat data saves rehashing unchanged files), `git add -A` and `git
write-tree` run against the copy through `GIT_INDEX_FILE`, and the copy is deleted. The copy keeps
the original's mtime: git judges "racily clean" entries (changed in the same clock tick as the
index was written) against the index file's own mtime, and a fresh mtime would hide them. Untracked
files count, ignored ones do not (as `git add -A` decides). Blobs and the tree land in the shared
object store as unreferenced objects; no ref moves.

`git merge-tree --write-tree` in git 2.39 merges commits, not trees (`--merge-base` for trees came
in 2.40), so `snapshot_commit` wraps the tree in a dangling commit whose parent is the
worktree's HEAD. Its identity and date are fixed, so the same content on the same HEAD always
gives the same commit id: an unchanged worktree gives an unchanged snapshot.

A snapshot runs three git processes (four when the worktree is dirty): one `rev-list` for HEAD,
its tree and its date, `add -A`, `write-tree`, and `commit-tree` if needed. The index's path is
read from the worktree's `.git` file rather than asked of git.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from corral.worktrees.errors import GitError
from corral.worktrees.git import admin_dir, run_git, run_git_result
from corral.worktrees.plumbing import checked, commit_tree, identity_env, run_git_env

SNAPSHOT_NAME = "corral snapshot"
SNAPSHOT_EMAIL = "snapshot@corral.invalid"
SNAPSHOT_MESSAGE = "corral snapshot of uncommitted work\n"


@dataclass(frozen=True)
class Snapshot:
    """A worktree's content at one moment."""

    head: str
    """The commit checked out (the snapshot's parent)."""
    tree: str
    commit: str
    """`head` itself when nothing is uncommitted, else a dangling commit on top of it."""

    @property
    def dirty(self) -> bool:
        return self.commit != self.head


def _index_path(workspace: Path) -> Path:
    admin = admin_dir(workspace)
    if admin is not None:
        return admin / "index"
    return Path(run_git(workspace, "rev-parse", "--path-format=absolute", "--git-path", "index"))


@contextlib.contextmanager
def _temporary_index(workspace: Path) -> Iterator[str]:
    """A private copy of the worktree's index (or a missing file when it has none)."""
    own_index = _index_path(workspace)
    directory = tempfile.mkdtemp(prefix="corral-index-")
    copy = os.path.join(directory, "index")
    try:
        try:
            # git replaces the index by rename, so one open() sees one whole version of it.
            with open(own_index, "rb") as src, open(copy, "xb") as dst:
                shutil.copyfileobj(src, dst)
                stat = os.fstat(src.fileno())
            os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        except FileNotFoundError:
            pass  # a worktree without an index: `add -A` builds one from scratch
        yield copy
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _tree_with_index(workspace: Path, index: str) -> str:
    env = {"GIT_INDEX_FILE": index}
    add = ("add", "--all", "--", ".")
    result = run_git_env(workspace, *add, env=env)
    if result.status != 0 and os.path.exists(index):
        # An index git cannot read (a newer format, a torn copy): start from HEAD instead.
        os.unlink(index)
        checked(
            workspace, ("read-tree", "HEAD"), run_git_env(workspace, "read-tree", "HEAD", env=env)
        )
        result = run_git_env(workspace, *add, env=env)
    checked(workspace, add, result)
    return checked(workspace, ("write-tree",), run_git_env(workspace, "write-tree", env=env))


def snapshot_tree(workspace: Path) -> str:
    """The tree id of everything in `workspace` now: committed, staged, unstaged and untracked."""
    with _temporary_index(workspace) as index:
        return _tree_with_index(workspace, index)


def head_facts(workspace: Path) -> tuple[str, str, str]:
    """HEAD's commit, tree and committer date, read in one process from one resolution of HEAD."""
    args = ("rev-list", "--no-walk", "--no-commit-header", "--format=%H %T %ct", "HEAD", "--")
    result = run_git_result(workspace, *args)
    fields = result.stdout.split()
    if result.status != 0 or len(fields) != 3:
        raise GitError(f"{workspace} has no HEAD commit; a corral worktree always starts at one")
    head, tree, date = fields
    return head, tree, date


def snapshot(workspace: Path) -> Snapshot:
    """Tree and commit of the worktree's current content (see the module docstring)."""
    head, head_tree, head_date = head_facts(workspace)
    tree = snapshot_tree(workspace)
    if tree == head_tree:
        return Snapshot(head=head, tree=tree, commit=head)
    date = f"@{head_date} +0000"
    identity = identity_env(SNAPSHOT_NAME, SNAPSHOT_EMAIL, date)
    commit = commit_tree(workspace, tree, [head], SNAPSHOT_MESSAGE, identity)
    return Snapshot(head=head, tree=tree, commit=commit)


def snapshot_commit(workspace: Path) -> str:
    """A commit holding the worktree's current content, for `git merge-tree`; moves no ref."""
    return snapshot(workspace).commit
