"""Blocking work the console hands to worker threads: control requests, starting a run, reading
an agent's worktree diff, output and findings. Nothing here touches a widget."""

from __future__ import annotations

import getpass
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

from corral.core.client import ControlError, request
from corral.core.rundir import RunDir
from corral.tui.text import strip_escapes

DIFF_LIMIT = 2 << 20
"""Bytes of diff shown; more is cut with a note (a diff is for reading, not for paging 1 GB)."""
OUTPUT_CHUNK = 256 << 10
SAFE_GIT = [
    "git",
    "--no-pager",
    "-c",
    "core.fsmonitor=false",
    "-c",
    "core.hooksPath=/dev/null",
    "-c",
    "diff.external=",
    "-c",
    "core.pager=cat",
]
"""Read-only git: no hooks, no fsmonitor, no external diff or pager (docs/reliability.md S6)."""


def whoami() -> str:
    return getpass.getuser()


def send(rundir: RunDir, payload: dict[str, Any]) -> dict[str, Any]:
    """One control request; raises ControlError with the engine's own words."""
    return request(str(rundir.socket), payload, timeout=10)


def kill(rundir: RunDir, agent: str, reason: str) -> dict[str, Any]:
    return send(rundir, {"op": "kill", "agent": agent, "by": whoami(), "reason": reason})


def retry(rundir: RunDir, agent: str) -> dict[str, Any]:
    return send(rundir, {"op": "retry", "agent": agent, "by": whoami()})


def break_lock(rundir: RunDir, lock: str, reason: str, token: int | None) -> dict[str, Any]:
    """Break only the lease the person was shown (`expect_token`): if it changed hands since,
    the engine refuses rather than break someone else's lease."""
    payload: dict[str, Any] = {"op": "lock_break", "lock": lock, "by": whoami(), "reason": reason}
    if token is not None:
        payload["expect_token"] = token
    return send(rundir, payload)


def start_run(repo: Path, plan: Path) -> str:
    """`corral run PLAN --detach` as its own process; returns the new run's id."""
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "corral.core.cli",
            "--repo",
            str(repo),
            "run",
            str(plan),
            "--detach",
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        check=False,
    )
    found = re.search(r"run (\S+) is running in the background", proc.stdout)
    if proc.returncode != 0 or found is None:
        said = (proc.stderr or proc.stdout).strip().replace("corral: ", "", 1)
        raise ControlError(said or f"corral run exited {proc.returncode}")
    return found.group(1)


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [*SAFE_GIT, "-C", str(cwd), *args],
        capture_output=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0"},
        check=False,
    )


def _cut(data: bytes) -> str:
    text = data[:DIFF_LIMIT].decode("utf-8", "replace")
    if len(data) > DIFF_LIMIT:
        text += f"\n… diff cut at {DIFF_LIMIT >> 20} MiB of {len(data) >> 20} MiB\n"
    return strip_escapes(text)


def worktree_diff(workspace: str, snapshot: str) -> str:
    """`git diff SNAPSHOT` in the agent's worktree (read-only), plus its untracked files."""
    where = Path(workspace)
    if not workspace or not where.is_dir():
        return "the worktree is gone (removed after the run, or not created yet)"
    diff = _git(where, "diff", "--no-ext-diff", "--no-textconv", "--no-color", snapshot)
    if diff.returncode != 0:
        return "git diff failed: " + strip_escapes(diff.stderr.decode("utf-8", "replace"))
    untracked = _git(where, "ls-files", "--others", "--exclude-standard", "-z")
    names = [n for n in untracked.stdout.decode("utf-8", "replace").split("\0") if n]
    text = _cut(diff.stdout)
    if names:
        text += "\n# untracked files (not in the diff until committed):\n"
        text += "".join(f"#   {strip_escapes(n)}\n" for n in names[:200])
    return text or "no changes against the snapshot"


def branch_diff(repo: str, snapshot: str, branch: str, paths: list[str] | None = None) -> str:
    """What a branch changed since the snapshot, optionally only some paths."""
    if not repo or not branch:
        return "no branch recorded"
    args = ["diff", "--no-ext-diff", "--no-textconv", "--no-color", f"{snapshot}...{branch}"]
    if paths:
        args += ["--", *paths]
    diff = _git(Path(repo), *args)
    if diff.returncode != 0:
        return "git diff failed: " + strip_escapes(diff.stderr.decode("utf-8", "replace"))
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
