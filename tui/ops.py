"""Blocking reads the console hands to worker threads: an agent's worktree diff, a branch's diff
and an agent's growing output. Nothing here touches a widget; what the console does to a run
(kill, retry, break a lock, start a run, decide) goes through the operator API (core/operator/)."""

from __future__ import annotations

import os
from pathlib import Path

from corral.tui.text import strip_escapes
from corral.worktrees.git import GitError, GitResult, run_git_result

DIFF_LIMIT = 2 << 20
"""Bytes of diff shown; more is cut with a note (a diff is for reading, not for paging 1 GB)."""
OUTPUT_CHUNK = 256 << 10
GIT_TIMEOUT = 60.0
DIFF_OPTIONS = ("diff", "--no-ext-diff", "--no-textconv", "--no-color")
"""`git diff` that starts no external diff or textconv program the repository names."""


def _git(cwd: Path, *args: str) -> GitResult:
    """Read-only git through the engine's one runner (worktrees/git.py), never a runner of its
    own: the repository's hooks, fsmonitor, pager and filter drivers, which an agent can plant in
    the shared config, never run as the person viewing the console (docs/reliability.md S6)."""
    return run_git_result(cwd, *args, timeout=GIT_TIMEOUT)


def _readable(text: str, limit: int | None = None) -> str:
    """git's text (undecodable bytes kept as surrogates) as printable text, escapes made inert."""
    data = text.encode("utf-8", "surrogateescape")
    return strip_escapes(data[:limit].decode("utf-8", "replace"))


def _failed(said: str) -> str:
    return "git diff failed: " + _readable(said)


def _cut(text: str) -> str:
    size = len(text.encode("utf-8", "surrogateescape"))
    shown = _readable(text, DIFF_LIMIT)
    if size > DIFF_LIMIT:
        shown += f"\n… diff cut at {DIFF_LIMIT >> 20} MiB of {size >> 20} MiB\n"
    return shown


def worktree_diff(workspace: str, snapshot: str) -> str:
    """`git diff SNAPSHOT` in the agent's worktree (read-only), plus its untracked files."""
    where = Path(workspace)
    if not workspace or not where.is_dir():
        return "the worktree is gone (removed after the run, or not created yet)"
    try:
        diff = _git(where, *DIFF_OPTIONS, snapshot)
        if diff.status != 0:
            return _failed(diff.stderr)
        untracked = _git(where, "ls-files", "--others", "--exclude-standard", "-z")
    except GitError as exc:
        return _failed(str(exc))
    names = [n for n in untracked.stdout.split("\0") if n]
    text = _cut(diff.stdout)
    if names:
        text += "\n# untracked files (not in the diff until committed):\n"
        text += "".join(f"#   {_readable(n)}\n" for n in names[:200])
    return text or "no changes against the snapshot"


def branch_diff(repo: str, snapshot: str, branch: str, paths: list[str] | None = None) -> str:
    """What a branch changed since the snapshot, optionally only some paths."""
    if not repo or not branch:
        return "no branch recorded"
    args = [*DIFF_OPTIONS, f"{snapshot}...{branch}"]
    if paths:
        args += ["--", *paths]
    try:
        diff = _git(Path(repo), *args)
    except GitError as exc:
        return _failed(str(exc))
    if diff.status != 0:
        return _failed(diff.stderr)
    return _cut(diff.stdout) or "no changes"


def read_more(path: Path, offset: int, inode: int = 0) -> tuple[bytes, int, int]:
    """New bytes of a growing file from `offset` (up to OUTPUT_CHUNK), without following links.

    Returns the data, the next offset and the file's inode. A file replaced since the last call
    (another inode than `inode`: the log redacted when its attempt ended) is read from 0 again.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return b"", offset, inode
    try:
        info = os.fstat(fd)
        if (inode and info.st_ino != inode) or info.st_size < offset:
            offset = 0  # the file was replaced: start over
        if info.st_size == offset:
            return b"", offset, info.st_ino
        os.lseek(fd, offset, os.SEEK_SET)
        data = os.read(fd, min(OUTPUT_CHUNK, info.st_size - offset))
        return data, offset + len(data), info.st_ino
    finally:
        os.close(fd)
