"""The lock that serialises worktree metadata changes across threads and processes.

`git worktree add/remove` edit `.git/worktrees/` and refs that every worktree shares; `remove`
even deletes `.git/worktrees/` when it empties, under the feet of a concurrent `add`. Only those
steps run under this lock: `add --no-checkout` (~10 ms) and `remove`, never a checkout. It is an
OS lock (flock): a holder that dies releases it, so it is never stale. The holder writes who it
is into the file, so a waiter that gives up can say whom it waited for.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import filelock

from corral.worktrees.errors import GitError

LOCK_TIMEOUT = 120.0
"""Metadata steps take ~10 ms each; two minutes of waiting means something is stuck."""


def ensure_private_dir(path: Path) -> Path:
    """Create `path` and any missing parents with mode 0700; refuse symlinks and foreign owners.

    Directories that already existed keep their mode: they are the user's, not corral's.
    """
    missing: list[Path] = []
    probe = path
    while not os.path.lexists(probe):
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):  # a concurrent caller made it: checked below
            os.mkdir(directory, 0o700)
    for directory in missing or [path]:
        info = os.lstat(directory)
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
            raise GitError(
                f"{directory} is not a directory owned by you (a symlink, a file or another "
                "user's); remove it so corral can create its own"
            )
    return path


def _describe_holder(path: Path) -> str:
    try:
        owner = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        return "an unknown holder"
    if not owner:
        return "an unknown holder"
    return (
        f"pid {owner.get('pid')} on {owner.get('host')} ({owner.get('purpose')}, "
        f"since {owner.get('since')})"
    )


@contextmanager
def git_metadata_lock(
    common_dir: Path, purpose: str, timeout: float = LOCK_TIMEOUT, *, name: str = "git.lock"
) -> Iterator[None]:
    """Hold `<common_dir>/corral/<name>` for one step.

    `git.lock` guards worktree metadata steps; `land.lock` serialises landings on a base branch
    (`land.py`), which take longer and must not hold up worktree creation.
    """
    path = ensure_private_dir(common_dir / "corral") / name

    def record_owner(fd: int) -> None:
        owner = {
            "pid": os.getpid(),
            "thread": threading.get_ident(),
            "host": socket.gethostname(),
            "purpose": purpose,
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        data = json.dumps(owner).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)

    lock = filelock.FileLock(path, timeout=timeout, mode=0o600, on_acquired=record_owner)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise GitError(
            f"waited {timeout:g}s for {path}, held by {_describe_holder(path)}; wait for it to "
            "finish, or stop that process (the lock frees itself when its holder exits)"
        ) from None
    try:
        yield
    finally:
        lock.release()
