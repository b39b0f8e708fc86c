"""Blocking reads the console hands to worker threads: an agent's worktree diff, a branch's diff,
an agent's growing output and the code a finding points at. Nothing here touches a widget; what
the console does to a run (kill, retry, break a lock, start a run, decide) goes through the
operator API (core/operator/)."""

from __future__ import annotations

import contextlib
import os
import shlex
import tempfile
from dataclasses import dataclass
from pathlib import Path

from corral.core.findings.schema import repo_path
from corral.tui.text import inert_lines, strip_escapes
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


SOURCE_LIMIT = 16 << 20
"""Bytes of a file read to show the code around a finding or to open it in an editor."""


@dataclass(frozen=True)
class Excerpt:
    """The lines around a finding's line in one commit's version of its file."""

    path: str
    commit: str
    first: int
    """Number of the first line in `text` (1-based)."""
    text: str
    problem: str = ""
    """Why there is no code to show ('' when there is)."""


def _blob(repo: str, commit: str, path: str) -> tuple[str, str]:
    """(content, problem) of `commit:path`; the path is the report's, so it is checked first."""
    try:
        path = repo_path(path)
    except ValueError as exc:
        return "", f"not a path inside the repository: {exc}"
    if not repo or not commit:
        return "", "no commit recorded"
    spec = f"{commit}:{path}"
    try:
        size = _git(Path(repo), "cat-file", "-s", spec)
        if size.status != 0:
            return "", f"{path} is not in {commit[:12]}"
        if int(size.stdout.strip() or 0) > SOURCE_LIMIT:
            return "", f"{path} is over {SOURCE_LIMIT >> 20} MiB"
        blob = _git(Path(repo), "cat-file", "blob", spec)
    except GitError as exc:
        return "", _readable(str(exc))
    if blob.status != 0:
        return "", "git cat-file failed: " + _readable(blob.stderr)
    return blob.stdout, ""


def excerpt(repo: str, commit: str, path: str, line: int | None, around: int = 6) -> Excerpt:
    """`around` lines either side of `line` (the file's start without one), escapes inert."""
    content, problem = _blob(repo, commit, path)
    if problem:
        return Excerpt(path, commit, 1, "", problem)
    lines = _readable(content).splitlines()
    middle = min(line or 1, max(len(lines), 1))
    first = max(middle - around, 1)
    shown = lines[first - 1 : middle + (around if line else 2 * around)]
    return Excerpt(path, commit, first, "\n".join(shown), "" if shown else "the file is empty")


def export_file(repo: str, commit: str, path: str) -> tuple[Path | None, str]:
    """`commit:path` written to a new private temp dir, read-only, under its own file name (an
    editor then knows its language); (None, why) when it cannot be read."""
    content, problem = _blob(repo, commit, path)
    if problem:
        return None, problem
    where = Path(tempfile.mkdtemp(prefix=f"corral-{commit[:12]}-")) / Path(path).name
    where.write_bytes(content.encode("utf-8", "surrogateescape"))
    where.chmod(0o444)
    return where, ""


def discard_export(path: Path) -> None:
    """Remove what `export_file` wrote (the copy and its private directory), once the editor
    is done with it."""
    with contextlib.suppress(OSError):
        path.unlink()
    with contextlib.suppress(OSError):
        path.parent.rmdir()


def editor_command(path: Path, line: int | None) -> list[str]:
    """`$VISUAL` or `$EDITOR` (default vi) at `line`: the `+LINE FILE` form vi, vim, nvim,
    nano, emacs, micro and kak all read."""
    editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
    return [*shlex.split(editor), *([f"+{line}"] if line else []), str(path)]


DIFFSTAT_FILES = 12
"""Files a combined diffstat names before it says how many more."""
LOG_TAIL = 64 << 10
"""Bytes of the end of the verification log shown in the review."""


def diffstat(repo: str, snapshot: str, commit: str) -> str:
    """What landing `commit` on `snapshot` changes, `git diff --stat` of all the merged work
    together: the first DIFFSTAT_FILES files, then how many more, then the totals."""
    if not repo or not commit or commit == snapshot:
        return ""
    try:
        stat = _git(Path(repo), *DIFF_OPTIONS, "--stat=100,70", snapshot, commit)
    except GitError as exc:
        return _failed(str(exc))
    if stat.status != 0:
        return _failed(stat.stderr)
    lines = _readable(stat.stdout, DIFF_LIMIT).rstrip("\n").splitlines()
    files, total = lines[:-1], lines[-1:]
    if len(files) > DIFFSTAT_FILES:
        files = [*files[:DIFFSTAT_FILES], f" … and {len(files) - DIFFSTAT_FILES} more files"]
    return "\n".join([*files, *total])


def log_tail(path: str) -> str:
    """The last LOG_TAIL bytes of a log corral wrote (the verification's), escapes inert; no
    link is followed."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError as exc:
        return f"cannot read {path}: {exc.strerror}"
    try:
        size = os.fstat(fd).st_size
        os.lseek(fd, max(size - LOG_TAIL, 0), os.SEEK_SET)
        data = os.read(fd, LOG_TAIL)
    finally:
        os.close(fd)
    text = "\n".join(inert_lines(data.decode("utf-8", "replace")))
    return (f"… the last {LOG_TAIL >> 10} KiB of {size} bytes\n" if size > LOG_TAIL else "") + text
