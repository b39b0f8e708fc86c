"""Whole-or-nothing file writes (docs/reliability.md E5, M3): temp, fsync, rename, fsync the dir.

`replacing` is the one implementation; every writer in core that replaces a file whole uses it
(`write_atomic` for bytes, the redactor's streamed copy, fenced writes to shared files, the runs
index). The workspace layer (worktrees/) must not import core, so it keeps its own copy loop.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

_TEMP_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def fsync_dir(path: Path) -> None:
    """Make a created, renamed or linked name in `path` durable (E5)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def replacing(
    path: Path | str,
    mode: int = 0o600,
    *,
    dir_fd: int | None = None,
    temp_prefix: str | None = None,
) -> Iterator[BinaryIO]:
    """Write the new content of `path` to the yielded file; when the block ends cleanly it
    replaces `path` whole (a reader sees the old file or the new one, never a mix), durably.
    If the block (or the rename) fails, the temp file is removed and `path` is untouched.

    `mode` is set exactly (no umask). With `dir_fd`, `path` is a bare name in that directory
    (for callers that opened the directory without following links). The rename replaces a
    symbolic link at `path` itself, never what it points to. The temp file is
    `<temp_prefix or .name.><random>.tmp` in the same directory.
    """
    name = os.fspath(path)
    directory, base = os.path.split(name)
    temp = os.path.join(directory, f"{temp_prefix or f'.{base}.'}{secrets.token_hex(6)}.tmp")
    fd = os.open(temp, _TEMP_FLAGS, 0o600, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb", closefd=False) as out:
            os.fchmod(fd, mode)
            yield out
            out.flush()
            os.fsync(fd)
        os.close(fd)
        fd = -1
        os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp, dir_fd=dir_fd)
        raise
    if dir_fd is not None:
        os.fsync(dir_fd)
    else:
        fsync_dir(Path(directory or "."))


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace `path` with `data` (see `replacing`)."""
    with replacing(path, mode) as out:
        out.write(data)
