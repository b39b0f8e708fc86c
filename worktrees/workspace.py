"""An agent's workspace: a locked git worktree on its own branch, created at a fixed commit.

Creation is split so that parallel callers overlap: the ~10 ms metadata step (`worktree add
--no-checkout --lock`) runs under a cross-process lock, and the files are written outside it.
Creation is idempotent per (run, agent, attempt) (docs/reliability.md S5): debris of a crashed earlier
call is repaired or cleared, but commits on the attempt's branch are never thrown away.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from corral.worktrees.batch import FastPathUnavailable, NewWorktree, register_batch
from corral.worktrees.errors import (
    GitCommandFailed,
    GitError,
    WorkspaceDirty,
    WorkspaceError,
)
from corral.worktrees.git import (
    WorktreeEntry,
    admin_dir,
    find_worktree,
    git_common_dir,
    list_worktrees,
    records_worktree,
    resolve_commit,
    run_git,
    run_git_result,
    same_path,
)
from corral.worktrees.gitlock import ensure_private_dir, git_metadata_lock
from corral.worktrees.untracked import copy_untracked

__all__ = [
    "POPULATE_COMMAND",
    "GitError",
    "Registration",
    "Workspace",
    "WorkspaceDirty",
    "WorkspaceError",
    "branch_name",
    "changed_paths",
    "copy_untracked",
    "create_workspace",
    "default_root",
    "is_dirty",
    "lock_reason",
    "populate_workspace",
    "register_workspaces",
    "remove_workspace",
    "unlock_workspace",
    "workspace_path",
]

BRANCH_PREFIX = "corral"

POPULATE_COMMAND: tuple[str, ...] = ("read-tree", "-u", "--reset", "HEAD")
"""Writes the files of a --no-checkout worktree; measured against `reset --hard -q` and
`checkout -f` in bench/bench_worktrees.py. It also overwrites a half-written earlier checkout."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


@dataclass(frozen=True)
class Workspace:
    """Where an attempt works, on which branch, starting from which commit."""

    path: Path
    branch: str
    commit: str


def _check_name(kind: str, value: str) -> None:
    """Run ids and agent ids become a ref component and a directory name; keep both valid."""
    if not _NAME.fullmatch(value) or ".." in value or value.endswith((".lock", ".")):
        raise WorkspaceError(
            f"{kind} {value!r} cannot name a branch and a directory; use up to 100 letters, "
            "digits, '.', '_' or '-', starting with a letter or digit"
        )


def _check_attempt(attempt: int) -> None:
    if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 0:
        raise WorkspaceError(f"attempt {attempt!r} must be a whole number, 0 or more")


def branch_name(run_id: str, agent: str, attempt: int) -> str:
    """`corral/<run>/<agent>/<attempt>`: each retry gets a new branch (docs/reliability.md S3)."""
    _check_name("run id", run_id)
    _check_name("agent id", agent)
    _check_attempt(attempt)
    return f"{BRANCH_PREFIX}/{run_id}/{agent}/{attempt}"


def lock_reason(run_id: str, agent: str, attempt: int) -> str:
    """Shown by `git worktree list`; gc also recognises a run's worktrees by it."""
    return f"corral run {run_id} agent {agent} attempt {attempt}"


def default_root(repo_path: Path) -> Path:
    """Inside the shared git dir: outside every working tree, and shared by all of them."""
    return git_common_dir(repo_path) / "corral" / "worktrees"


def workspace_path(root: Path, run_id: str, agent: str, attempt: int) -> Path:
    """`<root>/<run>/<agent>-<attempt>`; unique because the attempt is the last `-N`."""
    branch_name(run_id, agent, attempt)  # validates the parts
    return root / run_id / f"{agent}-{attempt}"


def _branch_sha(repo_path: Path, branch: str) -> str | None:
    result = run_git_result(repo_path, "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}")
    return result.stdout.strip() if result.status == 0 else None


def _find_admin_dir(common_dir: Path, path: Path) -> Path | None:
    """The `.git/worktrees/<id>` that points at `path`, found without the worktree itself."""
    admin_root = common_dir / "worktrees"
    if not admin_root.is_dir():
        return None
    return next((admin for admin in admin_root.iterdir() if records_worktree(admin, path)), None)


def _forget(repo_path: Path, common_dir: Path, path: Path) -> None:
    """Unregister and delete one worktree, locked or dirty; the precise form of `worktree prune`.

    Call with the metadata lock held.
    """
    result = run_git_result(repo_path, "worktree", "remove", "--force", "--force", str(path))
    if result.status == 0:
        return
    admin = _find_admin_dir(common_dir, path)
    if admin is None:
        args = ("worktree", "remove", "--force", "--force", str(path))
        raise GitCommandFailed(repo_path, args, result.status, result.stderr)
    shutil.rmtree(admin)
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)


def _clear_debris(path: Path) -> None:
    """Delete what a crashed `worktree add` left at an unregistered `path`, and nothing more."""
    if os.path.islink(path) or not os.path.isdir(path):
        raise WorkspaceError(f"{path} exists and is not a directory; move it away, then retry")
    leftovers = set(os.listdir(path))
    if not leftovers <= {".git"}:
        raise WorkspaceError(
            f"{path} exists, is not a registered worktree and holds files ({len(leftovers)}); "
            "move it away or delete it, then retry"
        )
    if leftovers:
        os.unlink(path / ".git")
    os.rmdir(path)


def _register(
    repo_path: Path, common_dir: Path, path: Path, branch: str, commit: str, reason: str
) -> None:
    """Make `path` a locked worktree on `branch` at `commit` (metadata only). Lock held."""
    lock_args = ("--no-checkout", "--lock", "--reason", reason)
    add_new = ("worktree", "add", *lock_args, "-b", branch, str(path), commit)
    if run_git_result(repo_path, *add_new).status == 0:
        return
    # Something is in the way: debris of an earlier call for this attempt, or a real conflict.
    branch_sha = _branch_sha(repo_path, branch)
    if branch_sha is not None and branch_sha != commit:
        raise WorkspaceError(
            f"branch {branch} already exists at {branch_sha[:12]}, not at {commit[:12]}, so this "
            "attempt already has work; start a new attempt, or delete the branch "
            f"(git branch -D {branch}) if that work is unwanted"
        )
    entries = list_worktrees(repo_path)
    for other in entries:
        if other.branch == branch and not same_path(other.path, path):
            raise WorkspaceError(
                f"branch {branch} is checked out in another worktree, {other.path}; "
                f"remove that one first (git worktree remove {other.path})"
            )
    entry = find_worktree(entries, path)
    if entry is not None:
        if _reusable(entry, branch):
            if not entry.locked:
                run_git(repo_path, "worktree", "lock", "--reason", reason, str(path))
            _drop_stale_index_lock(path)
            return
        _forget(repo_path, common_dir, path)
    if os.path.lexists(path):
        _clear_debris(path)
    if branch_sha is None:
        run_git(repo_path, *add_new)
    else:
        run_git(repo_path, "worktree", "add", *lock_args, str(path), branch)


def _reusable(entry: WorktreeEntry, branch: str) -> bool:
    return entry.branch == branch and os.path.isdir(entry.path) and (entry.path / ".git").is_file()


def _drop_stale_index_lock(path: Path) -> None:
    """A checkout killed mid-way leaves index.lock; nobody else uses an attempt being re-created."""
    admin = admin_dir(path)
    if admin is not None:
        (admin / "index.lock").unlink(missing_ok=True)


_FULL_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


@dataclass(frozen=True)
class Registration:
    """What `register_workspaces` did for one attempt: its workspace, or why there is none."""

    agent: str
    attempt: int
    workspace: Workspace | None
    error: WorkspaceError | GitError | None = None


def register_workspaces(
    repo_path: Path, root: Path, run_id: str, commit: str, attempts: Sequence[tuple[str, int]]
) -> list[Registration]:
    """Locked worktrees, metadata only, for many (agent, attempt) pairs at `commit` at once.

    New attempts go through one batch (`worktrees.batch`); a directory already in the way, an
    unusual repository or a failed batch entry goes through `git worktree add` one at a time,
    which also repairs what a crash left. One attempt's failure never fails the others.
    `populate_workspace` then writes each one's files, outside the metadata lock.
    """
    # the engine passes the snapshot it resolved at run start; a full sha needs no second look
    # (a missing object still fails, in `update-ref` or `worktree add`)
    sha = commit if _FULL_SHA.fullmatch(commit) else resolve_commit(repo_path, commit)
    common_dir = git_common_dir(repo_path)
    base = Path(os.path.abspath(root))
    results: dict[int, Registration] = {}
    wanted: dict[int, NewWorktree] = {}
    for index, (agent, attempt) in enumerate(attempts):
        try:
            path = workspace_path(base, run_id, agent, attempt)
        except WorkspaceError as exc:
            results[index] = Registration(agent, attempt, None, exc)
            continue
        reason = lock_reason(run_id, agent, attempt)
        wanted[index] = NewWorktree(path, branch_name(run_id, agent, attempt), reason)
    for parent in {item.path.parent for item in wanted.values()}:
        ensure_private_dir(parent)
    fresh = {index: item for index, item in wanted.items() if not os.path.lexists(item.path)}
    careful = [index for index in wanted if index not in fresh]
    with git_metadata_lock(common_dir, f"create {len(wanted)} worktree(s) of run {run_id}"):
        try:
            outcomes = register_batch(repo_path, common_dir, list(fresh.values()), sha)
        except FastPathUnavailable:
            careful += fresh
        else:
            careful += [
                index for index, failed in zip(fresh, outcomes, strict=True) if failed is not None
            ]
        for index in sorted(careful):
            item = wanted[index]
            agent, attempt = attempts[index]
            try:
                _register(repo_path, common_dir, item.path, item.branch, sha, item.reason)
            except (WorkspaceError, GitError) as exc:
                results[index] = Registration(agent, attempt, None, exc)
    for index, item in wanted.items():
        if index not in results:
            agent, attempt = attempts[index]
            results[index] = Registration(agent, attempt, Workspace(item.path, item.branch, sha))
    return [results[index] for index in range(len(attempts))]


def populate_workspace(workspace: Workspace) -> None:
    """Write the files of a registered workspace (also over a half-written earlier checkout)."""
    run_git(workspace.path, *POPULATE_COMMAND)


def create_workspace(
    repo_path: Path, root: Path, run_id: str, agent: str, attempt: int, commit: str
) -> Workspace:
    """A new locked worktree at `workspace_path(...)` on branch `branch_name(...)` at `commit`.

    Safe to call from many threads and processes at once; calling it again for the same
    attempt repairs what a crash left behind instead of failing.
    """
    (registration,) = register_workspaces(repo_path, root, run_id, commit, [(agent, attempt)])
    if registration.workspace is None:
        assert registration.error is not None
        raise registration.error
    populate_workspace(registration.workspace)
    return registration.workspace


def unlock_workspace(path: Path) -> None:
    """Let git manage the worktree again once its attempt has ended; already unlocked is fine.

    Unlocking is deleting `worktrees/<id>/locked`, which is all `git worktree unlock` does; it is
    done here directly when the worktree's metadata points back at `path` (it runs once per
    ending attempt). A directory the agent deleted is fine too: gc forgets such a registration.
    """
    if not os.path.isdir(path):
        return
    admin = admin_dir(path)
    if admin is not None and _points_back(admin, path):
        (admin / "locked").unlink(missing_ok=True)
        return
    result = run_git_result(path, "worktree", "unlock", str(path))
    if result.status != 0 and "is not locked" not in result.stderr:
        args = ("worktree", "unlock", str(path))
        raise GitCommandFailed(path, args, result.status, result.stderr)


def _points_back(admin: Path, path: Path) -> bool:
    """Whether `admin`, read from a `.git` file the agent could have forged, is a worktree record
    of its own repository naming `path` as its worktree."""
    try:
        common = (admin / (admin / "commondir").read_text().strip()).resolve()
    except OSError:
        return False
    return (
        admin.parent.name == "worktrees"
        and same_path(admin.parent.parent, common)
        and records_worktree(admin, path)
    )


def changed_paths(path: Path) -> list[str]:
    """Paths with uncommitted changes in the worktree, untracked files included."""
    out = run_git(
        path,
        *("status", "--porcelain=v1", "-z", "--untracked-files=normal", "--ignore-submodules=none"),
    )
    paths: list[str] = []
    fields = iter(out.split("\0"))
    for field in fields:
        if len(field) < 4:
            continue
        paths.append(field[3:])
        if field[0] in "RC":
            next(fields, None)  # the rename's source path
    return paths


def is_dirty(path: Path) -> bool:
    """Whether removing the worktree would lose uncommitted work (untracked files count)."""
    return bool(changed_paths(path))


def remove_workspace(repo_path: Path, path: Path, *, force: bool) -> None:
    """Remove the worktree at `path`; its branch stays. A dirty one is refused unless `force`."""
    entries = list_worktrees(repo_path)
    entry = find_worktree(entries, path)
    if entry is None:
        if os.path.lexists(path):
            raise WorkspaceError(
                f"{path} is not a worktree of {repo_path}; nothing was removed "
                "(delete the directory yourself if it is debris)"
            )
        return  # already gone
    if entry is entries[0]:
        raise WorkspaceError(f"{path} is the main working tree; corral never removes it")
    common_dir = git_common_dir(repo_path)
    if not os.path.isdir(path):
        with git_metadata_lock(common_dir, f"forget worktree {path}"):
            _forget(repo_path, common_dir, path)
        return
    if not force and (changes := changed_paths(path)):
        raise WorkspaceDirty(path, changes)
    with git_metadata_lock(common_dir, f"remove worktree {path}"):
        if force:
            run_git(repo_path, "worktree", "remove", "--force", "--force", str(path))
            return
        # Without force git re-checks cleanliness itself, closing the race with a late writer.
        if entry.locked:
            run_git(repo_path, "worktree", "unlock", str(path))
        result = run_git_result(repo_path, "worktree", "remove", str(path))
        if result.status == 0:
            return
        if entry.lock_reason is not None:
            run_git(repo_path, "worktree", "lock", "--reason", entry.lock_reason, str(path))
    changes = changed_paths(path)
    if changes:
        raise WorkspaceDirty(path, changes)
    args = ("worktree", "remove", str(path))
    raise GitCommandFailed(repo_path, args, result.status, result.stderr)
