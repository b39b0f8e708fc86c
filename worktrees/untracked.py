"""Copy untracked files an agent needs (such as `.env`) from the main working tree.

The list comes from the plan and the workspace may hold tracked symlinks, so both ends are
checked: nothing is read from outside the repository or written outside the workspace.
"""

from __future__ import annotations

import os
import shutil
import stat
import threading
from pathlib import Path, PurePosixPath

from corral.worktrees.errors import UnsafePath, WorkspaceError
from corral.worktrees.git import repo_toplevel


def _inside(child: str, parent: str) -> bool:
    return os.path.commonpath([child, parent]) == parent


def relative_parts(name: str) -> tuple[str, ...]:
    """The components of a plan-given relative path; refuses anything that could escape."""
    if not name or "\0" in name:
        raise UnsafePath(f"copy entry {name!r} is empty or has a NUL byte; name a file by its path")
    pure = PurePosixPath(name)
    if pure.is_absolute() or name.startswith("~"):
        raise UnsafePath(
            f"copy entry {name!r} is absolute; name it relative to the repository root (e.g. .env)"
        )
    parts = tuple(part for part in pure.parts if part != ".")
    if ".." in parts:
        raise UnsafePath(f"copy entry {name!r} climbs out with '..'; name a file in the repository")
    if not parts:
        raise UnsafePath(f"copy entry {name!r} names the repository itself; name a file in it")
    if ".git" in parts:
        raise UnsafePath(f"copy entry {name!r} is in .git; corral copies working-tree files only")
    return parts


def _make_parents(workspace: str, parts: tuple[str, ...]) -> str:
    """Create the directories of `parts[:-1]` under `workspace`, refusing any symlink on the way."""
    current = workspace
    for part in parts[:-1]:
        current = os.path.join(current, part)
        try:
            info = os.lstat(current)
        except FileNotFoundError:
            os.mkdir(current)
            continue
        if not stat.S_ISDIR(info.st_mode):
            raise UnsafePath(
                f"{current} in the workspace is a symlink or a file, so corral will not write "
                "through it; drop this entry from the copy list or fix the path"
            )
    return current


def _source_of(top: str, name: str) -> tuple[tuple[str, ...], str]:
    """The checked components of `name` and the real file to read for it."""
    parts = relative_parts(name)
    source = os.path.join(top, *parts)
    if not os.path.lexists(source):
        raise WorkspaceError(
            f"file {name!r} to copy into the workspace does not exist in {top}; create it there "
            "or remove it from the agent's copy list"
        )
    real_source = os.path.realpath(source)
    if not _inside(real_source, top):
        raise UnsafePath(
            f"{name!r} in {top} leads to {real_source}, outside the repository; copy the file "
            "itself into the repository or remove it from the copy list"
        )
    if not os.path.isfile(real_source):
        raise WorkspaceError(f"{name!r} in {top} is not a regular file; list files one by one")
    return parts, real_source


def _copy_one(workspace: str, parts: tuple[str, ...], real_source: str) -> None:
    parent = _make_parents(workspace, parts)
    target = os.path.join(parent, parts[-1])
    if os.path.isdir(target) and not os.path.islink(target):
        raise WorkspaceError(f"{target} is a directory in the workspace; cannot put a file there")
    temp = os.path.join(parent, f".{parts[-1]}.corral-{os.getpid()}-{threading.get_ident()}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW
    fd = os.open(temp, flags, 0o600)
    try:
        with os.fdopen(fd, "wb") as out, open(real_source, "rb") as src:
            shutil.copyfileobj(src, out)
            os.fchmod(out.fileno(), os.stat(real_source).st_mode & 0o777)  # no setuid bits
        os.replace(temp, target)  # replaces a symlink at `target` itself, never what it points to
    except BaseException:
        if os.path.lexists(temp):
            os.unlink(temp)
        raise


def copy_untracked(repo_path: Path, workspace: Path, files: list[str]) -> None:
    """Copy each of `files` from the repository's working tree to the same place in `workspace`.

    All entries are checked before any is copied, so a bad list copies nothing.
    """
    for name in files:
        relative_parts(name)
    if not files:
        return
    top = os.path.realpath(repo_toplevel(repo_path))
    sources = [_source_of(top, name) for name in files]
    real_workspace = os.path.realpath(workspace)
    for parts, real_source in sources:
        _copy_one(real_workspace, parts, real_source)
