"""Fenced writes: files under the run's shared directory, replaced whole, never through a link.

An agent names a path relative to `<rundir>/shared/` (its CORRAL_SHARED). The path comes from
an untrusted agent, so it must stay inside that directory: no absolute path, no `..`, and no
symbolic link anywhere on the way (each directory is opened with O_NOFOLLOW relative to the one
before, so a link swapped in between a check and the write cannot redirect it). The file is
written as E5 says: a temp file beside it, fsync, rename over the name, fsync the directory.
Whether the write is allowed (the fencing token) is the lock manager's decision, not this one's.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
from pathlib import Path, PurePosixPath

from corral.core.atomic import replacing
from corral.core.errors import CorralError
from corral.core.runs.rundir import ensure_private_dir

MAX_PATH_PARTS = 16
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class FencedPathError(CorralError, ValueError):
    """The path names no file inside the shared directory that corral may write."""


def shared_dir(run_path: Path) -> Path:
    """`<rundir>/shared`: where fenced writes land (agents read it through CORRAL_SHARED)."""
    return run_path / "shared"


def make_shared_dir(run_path: Path) -> Path:
    return ensure_private_dir(shared_dir(run_path))


def check_relative(path: str) -> tuple[str, ...]:
    """The path's parts, if it is a plain relative path; FencedPathError otherwise."""
    if "\0" in path or "\\" in path:
        raise FencedPathError(f"{path!r}: NUL and backslash are not allowed in a shared path")
    pure = PurePosixPath(path)
    if pure.is_absolute():
        raise FencedPathError(f"{path!r} is absolute; give a path relative to CORRAL_SHARED")
    parts = tuple(part for part in path.split("/") if part not in ("", "."))
    if not parts:
        raise FencedPathError(f"{path!r} names no file; give a path such as 'results/out.json'")
    if ".." in parts:
        raise FencedPathError(f"{path!r} contains '..'; shared paths stay inside CORRAL_SHARED")
    if len(parts) > MAX_PATH_PARTS or any(len(part.encode()) > 255 for part in parts):
        raise FencedPathError(f"{path!r} is too deep or has a name longer than 255 bytes")
    if parts[-1].startswith(".corral-"):
        raise FencedPathError(f"{path!r}: names starting '.corral-' are corral's temp files")
    return parts


def _open_parent(root: Path, parts: tuple[str, ...]) -> int:
    """A descriptor of the file's directory, creating missing directories, following no link."""
    fd = os.open(root, _DIR_FLAGS)
    try:
        for part in parts[:-1]:
            try:
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            except FileNotFoundError:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o700, dir_fd=fd)
                child = os.open(part, _DIR_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = child
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise FencedPathError(
                f"{'/'.join(parts)}: a directory on the way is a symbolic link or a file; "
                "corral never writes through links"
            ) from None
        raise
    return fd


def write_shared(root: Path, path: str, data: bytes) -> str:
    """Replace `root/path` with `data` atomically (blocking: run it in a thread); its sha256."""
    parts = check_relative(path)
    name = parts[-1]
    parent = _open_parent(root, parts)
    try:
        try:
            # the rename replaces a link at `name` with the file itself: never writes through one
            with replacing(name, 0o600, dir_fd=parent, temp_prefix=".corral-") as out:
                out.write(data)
        except OSError as exc:
            if exc.errno in (errno.EISDIR, errno.ENOTEMPTY, errno.EEXIST):
                raise FencedPathError(f"{path!r} is a directory; name a file") from None
            raise
    finally:
        os.close(parent)
    return hashlib.sha256(data).hexdigest()
