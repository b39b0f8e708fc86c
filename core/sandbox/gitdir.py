"""The attempt's private git directory: how a sandboxed agent commits without write access to
the shared repository, and how its branch comes back (docs/reliability.md T6).

Inside the sandbox the shared git directory is read-only, and this private directory is mounted
over the worktree's record (`.git/worktrees/<id>`), so the worktree's `.git` file leads git to
it. It is a whole git directory of its own: HEAD on the attempt's branch, a copy of the
worktree's index, its own refs and config, and its own `objects` whose `info/alternates` names
the shared objects (read-only). Commits, branches, tags, config and hooks the agent writes all
land here and touch nothing shared; the shared `.git/config`, hooks, info and every ref stay as
they were, by construction rather than by a check afterwards.

After the attempt, `collect_branch` brings back exactly one thing, the tip of the attempt's own
branch: its objects are copied into a scratch repository corral creates itself (so no config or
hook the agent wrote is ever read by a git corral starts), fetched from there (git verifies
every object and its connectivity), and the branch moves by compare-and-swap from the commit
the attempt started at. Nothing else the agent did in git leaves the sandbox.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
from collections.abc import Mapping
from pathlib import Path

from corral.core.errors import CorralError
from corral.worktrees.git import run_git, run_git_result

_OBJECT_ID = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")
_LOOSE_DIR = re.compile(r"^[0-9a-f]{2}$")
_LOOSE_NAME = re.compile(r"^[0-9a-f]{38}(?:[0-9a-f]{24})?$")
_PACK_NAME = re.compile(r"^pack-[0-9a-f]{40,64}\.(?:pack|idx)$")

_SCRATCH_CONFIG = (
    "[core]\n\trepositoryformatversion = 0\n\tbare = true\n"
    "[uploadpack]\n\tallowAnySHA1InWant = true\n"
)
_PACKED_HEADER = "# pack-refs with: sorted \n"
"""The traits git itself writes and reads (`sorted`: in refname order; no peeled lines)."""
_CONFIG = "[core]\n\trepositoryformatversion = 0\n\tbare = false\n\tlogallrefupdates = true\n"


class CollectError(CorralError):
    """The private branch could not be brought back (the message says why and what to do)."""


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_text(text, encoding="utf-8")


def _create(path: Path, text: str) -> None:
    """A new file in a directory known to exist (no `mkdir`, no `stat` first)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as file:
        file.write(text)


def prepare_private_gitdir(
    gitdir: Path,
    *,
    common_dir: Path,
    admin_dir: Path,
    branch: str,
    commit: str,
    refs: Mapping[str, str] | None = None,
) -> None:
    """Create `gitdir` for an attempt on `branch` (`corral/<run>/<agent>/<attempt>`) at `commit`.

    `refs` are extra read-mostly refs the agent may want to see (`{"refs/heads/main": base}`);
    they are copies, so moving them inside moves nothing shared. Plain file writes, no git, and
    as few as a git directory needs: every attempt makes one while the worktrees' checkouts
    create thousands of files on the same disk. The refs are one `packed-refs` file rather than
    a directory per component of `corral/<run>/<agent>/`; git makes the directories it needs
    (`refs/heads/...`, `objects/pack`, `logs`) the first time the agent writes there.
    """
    for value in (commit, *(refs or {}).values()):
        if not _OBJECT_ID.match(value):
            raise ValueError(f"{value!r} is not a full object id")
    gitdir.mkdir(mode=0o700, parents=True)
    for sub in ("objects", "objects/info", "refs"):
        (gitdir / sub).mkdir(mode=0o700)
    _create(gitdir / "objects/info/alternates", f"{common_dir.resolve() / 'objects'}\n")
    _create(gitdir / "config", _CONFIG)
    _create(gitdir / "HEAD", f"ref: refs/heads/{branch}\n")
    packed = sorted({**(refs or {}), f"refs/heads/{branch}": commit}.items())
    lines = "".join(f"{value} {name}\n" for name, value in packed)
    _create(gitdir / "packed-refs", f"{_PACKED_HEADER}{lines}")
    with contextlib.suppress(FileNotFoundError):  # a worktree without an index: git makes one
        shutil.copyfile(admin_dir / "index", gitdir / "index")


def private_tip(gitdir: Path, branch: str) -> str | None:
    """The private branch's commit as the agent left it (loose or packed), or None if gone.

    Read as data: never through a link, never more than a line, only a full object id counts.
    A loose ref that is anything but a regular file (a link, a directory) counts as gone, not
    as absent: its packed value is not read instead.
    """
    loose = gitdir / "refs" / "heads" / branch
    try:
        os.lstat(loose)
    except FileNotFoundError:
        pass
    except OSError:
        return None
    else:
        text = _read_regular(loose, 200)
        value = (text or "").strip()
        return value if _OBJECT_ID.match(value) else None
    packed = _read_regular(gitdir / "packed-refs", 1 << 20) or ""
    for line in packed.splitlines():
        value, _, name = line.partition(" ")
        if name == f"refs/heads/{branch}" and _OBJECT_ID.match(value):
            return value
    return None


def _read_regular(path: Path, limit: int) -> str | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        return os.read(fd, limit).decode("ascii", "replace")
    finally:
        os.close(fd)


def _copy_objects(source: Path, target: Path) -> None:
    """Loose objects and packs only, regular files only: nothing else the agent put there."""
    for entry in os.scandir(source):
        if entry.is_dir(follow_symlinks=False) and _LOOSE_DIR.match(entry.name):
            for obj in os.scandir(entry.path):
                if obj.is_file(follow_symlinks=False) and _LOOSE_NAME.match(obj.name):
                    (target / entry.name).mkdir(exist_ok=True)
                    shutil.copyfile(obj.path, target / entry.name / obj.name)
    pack_dir = source / "pack"
    if pack_dir.is_dir() and not pack_dir.is_symlink():
        for obj in os.scandir(pack_dir):
            if obj.is_file(follow_symlinks=False) and _PACK_NAME.match(obj.name):
                shutil.copyfile(obj.path, target / "pack" / obj.name)


def collect_branch(
    repo: Path,
    *,
    gitdir: Path,
    scratch: Path,
    common_dir: Path,
    admin_dir: Path,
    worktree: Path,
    branch: str,
    start: str,
) -> str | None:
    """Move the shared `branch` from `start` to the private tip; the new commit, or None.

    None when the agent did not move its branch (or deleted it). The worktree's index in the
    shared record is then reset to the new commit (files untouched), so the engine's usual
    leftovers commit sees only what was left uncommitted. `scratch` must not exist; it is
    removed afterwards. Raises CollectError when the tip cannot be brought back.
    """
    tip = private_tip(gitdir, branch)
    if tip is None or tip == start:
        return None
    scratch.mkdir(mode=0o700, parents=True)
    try:
        for sub in ("objects/pack", "objects/info", "refs/heads"):
            (scratch / sub).mkdir(parents=True, exist_ok=True)
        _write(scratch / "objects/info/alternates", f"{common_dir.resolve() / 'objects'}\n")
        _write(scratch / "config", _SCRATCH_CONFIG)
        _write(scratch / "HEAD", "ref: refs/heads/tip\n")
        _write(scratch / "refs/heads/tip", f"{tip}\n")
        _copy_objects(gitdir / "objects", scratch / "objects")
        fetched = run_git_result(
            repo, "fetch", "--no-tags", "--no-write-fetch-head", "--quiet", str(scratch), tip
        )
        kind = run_git_result(repo, "cat-file", "-t", tip).stdout.strip()
        if fetched.status != 0 or kind != "commit":
            raise CollectError(
                f"the tip {tip} of {branch} could not be brought back from the sandbox as a "
                f"commit ({fetched.stderr.strip() or kind}); the agent's commits are left out, "
                "its files are still in the worktree"
            )
        run_git(
            repo,
            "update-ref",
            "-m",
            "corral: collect sandboxed commits",
            f"refs/heads/{branch}",
            tip,
            start,
        )
        run_git(repo, f"--git-dir={admin_dir}", f"--work-tree={worktree}", "reset", "-q")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return tip


def discard_when_collected(
    own_dir: Path, *, repo: Path, gitdir: Path, branch: str, start: str
) -> bool:
    """Remove an attempt's sandbox directory (its private git directory and scratch) once
    nothing in it is needed: its branch never moved from `start`, or its tip is on the shared
    `branch` (collected). True when removed; it is kept when the tip did not come back (a failed
    attempt, which is not collected, or a failed collection), so no commit is lost before
    `corral gc`. A resumed run never needs it: it starts new attempts, each with its own."""
    tip = private_tip(gitdir, branch)
    if tip is not None and tip != start:
        on_branch = run_git_result(repo, "merge-base", "--is-ancestor", tip, f"refs/heads/{branch}")
        if on_branch.status != 0:
            return False
    shutil.rmtree(own_dir, ignore_errors=True)
    return True
