"""The one way corral runs git, and the read-only queries built on it.

Nothing else in corral starts git (worktrees/plumbing.py adds variables through `run_git_env`;
tests/test_architecture.py scans core, worktrees and tui for any other start): every command
gets the options and environment of safety.py, so no program an agent planted in the shared
repository's config runs as the engine or as the person viewing the console.

`run_git` uses subprocess rather than GitPython's `Git.execute`: GitPython merges `os.environ`
into every call, so `GIT_DIR`/`GIT_INDEX_FILE` inherited from a hook would redirect our commands,
and it falls back to the process's cwd when the working directory is missing. GitPython is used
where a `Repo` object is wanted (`open_repo`), one per `with` block, never a global.
"""

from __future__ import annotations

import os
import re
import subprocess
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from corral.worktrees.errors import (
    GitCommandFailed,
    GitError,
    NotARepository,
    UnknownRevision,
    UnsafeRepositoryConfig,
)
from corral.worktrees.safety import (
    DRIVER_SCAN,
    cached_driver_overrides,
    driver_overrides,
    safe_git_env,
    static_options,
)

if TYPE_CHECKING:
    import git

__all__ = [
    "GitCommandFailed",
    "GitError",
    "GitResult",
    "NotARepository",
    "UnknownRevision",
    "UnsafeRepositoryConfig",
    "WorktreeEntry",
    "admin_dir",
    "current_branch",
    "find_worktree",
    "git_common_dir",
    "list_worktrees",
    "open_repo",
    "records_worktree",
    "repo_toplevel",
    "repository_driver_overrides",
    "resolve_commit",
    "run_git",
    "run_git_result",
    "safe_git_env",
    "safe_git_options",
    "same_path",
]

MINIMUM_GIT = (2, 36)
"""`worktree list -z` (2.36), `worktree add --lock --reason` (2.35), `--path-format` (2.31)."""

_version_checked = False
_version_lock = threading.Lock()


@dataclass(frozen=True)
class GitResult:
    """What a finished git command said; `status` decides, never the emptiness of stdout."""

    status: int
    stdout: str
    stderr: str


def _check_git_version() -> None:
    """Fail once, early and clearly, on a git too old for the commands below."""
    global _version_checked
    with _version_lock:
        if _version_checked:
            return
        try:
            out = subprocess.run(
                ["git", "version"], capture_output=True, text=True, check=True, env=safe_git_env()
            ).stdout
        except FileNotFoundError:
            msg = "git is not installed or not on PATH; install git 2.36 or newer"
            raise GitError(msg) from None
        except subprocess.CalledProcessError as exc:
            msg = f"`git version` failed ({exc.stderr.strip()}); check the git install"
            raise GitError(msg) from None
        found = re.search(r"(\d+)\.(\d+)", out)
        if found is None or (int(found[1]), int(found[2])) < MINIMUM_GIT:
            raise GitError(
                f"{out.strip()} is too old; corral needs git {MINIMUM_GIT[0]}.{MINIMUM_GIT[1]} "
                "or newer, upgrade git"
            )
        _version_checked = True


REF_ONLY_COMMANDS = frozenset(
    (
        "rev-parse",
        "symbolic-ref",
        "for-each-ref",
        "update-ref",
        "show-ref",
        "rev-list",
        "merge-base",
    )
)
"""Commands that never read or write file content, so never start a filter or merge driver."""


def _converts_content(args: tuple[str, ...]) -> bool:
    if not args:
        return True
    if args[0] == "worktree":
        return len(args) < 2 or args[1] not in ("list", "lock", "unlock")
    return args[0] not in REF_ONLY_COMMANDS


def run_git_result(
    path: Path,
    *args: str,
    input: str | None = None,
    timeout: float | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> GitResult:
    """Run `git -C path ARGS` with the safe options and environment; never raises on exit status.

    `extra_env` is added to the safe environment; only `plumbing.run_git_env` passes it, after
    checking the variables. Raises NotARepository when `path` does not exist, GitError when git
    cannot be started or times out, and UnsafeRepositoryConfig when the repository defines a
    driver we cannot disable.
    """
    _check_git_version()
    if not os.path.isdir(path):
        raise NotARepository(path, "does not exist or is not a directory")
    options = static_options()
    if _converts_content(args):  # the scan costs a process; ref-only commands need none
        for key, value in repository_driver_overrides(path):
            options += ["-c", f"{key}={value}"]
    return _start(path, options, args, input=input, timeout=timeout, extra_env=extra_env)


def _start(
    path: Path,
    options: list[str],
    args: tuple[str, ...],
    *,
    input: str | None = None,
    timeout: float | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> GitResult:
    """The one place corral starts git on a repository (tests/test_architecture.py holds it)."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(path), *options, *args],
            input=input,
            # never the caller's terminal (the console's, say): git reads nothing it is not given
            stdin=subprocess.DEVNULL if input is None else None,
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="surrogateescape",
            env={**safe_git_env(), **(extra_env or {})},
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise GitError(
            f"`git {' '.join(args)}` did not finish within {timeout:g}s in {path}; "
            "check for a stuck git process or a slow disk"
        ) from None
    return GitResult(proc.returncode, proc.stdout, proc.stderr)


def repository_driver_overrides(path: Path) -> list[tuple[str, str]]:
    """`-c` settings that switch off the filter and merge drivers `path`'s own config defines.

    One `git config` scan (its parsing and cache are in safety.py), skipped while the config
    files are unchanged. Raises UnsafeRepositoryConfig for a driver `-c` cannot name.
    """
    stamp, cached = cached_driver_overrides(path)
    if cached is not None:
        return cached
    scan = _start(path, static_options(), DRIVER_SCAN)
    return driver_overrides(path, stamp, scan.status, scan.stdout)


def safe_git_options(repo: Path | None = None) -> list[str]:
    """`-c` options for every git command the engine runs.

    Given `repo`, also switches off the filter and merge drivers its own config defines (one
    extra `git config` call). Commands that diff should also pass `--no-ext-diff --no-textconv`.
    """
    options = static_options()
    if repo is not None:
        for key, value in repository_driver_overrides(repo):
            options += ["-c", f"{key}={value}"]
    return options


def run_git(
    path: Path,
    *args: str,
    check: bool = True,
    input: str | None = None,
    timeout: float | None = None,
) -> str:
    """Run git in `path`; return stdout without its final newline.

    With `check`, a non-zero exit raises NotARepository or GitCommandFailed (which keeps the
    status and stderr). Use `run_git_result` when the exit status itself is the answer.
    """
    result = run_git_result(path, *args, input=input, timeout=timeout)
    if check and result.status != 0:
        if "not a git repository" in result.stderr:
            raise NotARepository(path)
        raise GitCommandFailed(path, args, result.status, result.stderr)
    return result.stdout.removesuffix("\n")


@contextmanager
def open_repo(path: Path) -> Iterator[git.Repo]:
    """A GitPython `Repo` for one operation, closed afterwards (GitPython leaks when kept open)."""
    import git  # deferred: 90 ms of import that thin commands never need

    try:
        repo = git.Repo(path, search_parent_directories=True)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise NotARepository(path) from None
    try:
        yield repo
    finally:
        repo.close()


def repo_toplevel(path: Path) -> Path:
    """The root of the working tree that contains `path`."""
    result = run_git_result(path, "rev-parse", "--show-toplevel")
    if result.status != 0:
        if "not a git repository" in result.stderr:
            raise NotARepository(path)
        raise GitError(
            f"{path} is not in a working tree (a bare repository or inside .git); "
            "run corral in the repository's working tree"
        )
    return Path(result.stdout.strip())


_common_dirs: dict[str, Path] = {}


def git_common_dir(path: Path) -> Path:
    """The repository's shared git directory, also when `path` is inside a linked worktree.

    Remembered per path for the life of the process: a directory does not change repository
    while corral runs, and the engine asks for every agent it starts.
    """
    key = os.path.abspath(path)
    found = _common_dirs.get(key)
    if found is None:
        found = Path(run_git(path, "rev-parse", "--path-format=absolute", "--git-common-dir"))
        _common_dirs[key] = found
    return found


def current_branch(path: Path) -> str | None:
    """The branch checked out at `path`, or None when HEAD is detached."""
    result = run_git_result(path, "symbolic-ref", "--quiet", "HEAD")
    if result.status == 1:
        return None
    if result.status != 0:
        if "not a git repository" in result.stderr:
            raise NotARepository(path)
        args = ("symbolic-ref", "--quiet", "HEAD")
        raise GitCommandFailed(path, args, result.status, result.stderr)
    return result.stdout.strip().removeprefix("refs/heads/")


def resolve_commit(path: Path, rev: str) -> str:
    """The full sha of the commit `rev` names (`rev^{commit}`)."""
    if not rev or rev.startswith("-") or any(ch in rev for ch in "\0\n"):
        raise UnknownRevision(path, rev)
    args = ("rev-parse", "--verify", "--quiet", "--end-of-options", f"{rev}^{{commit}}")
    result = run_git_result(path, *args)
    if result.status == 0:
        return result.stdout.strip()
    if "not a git repository" in result.stderr:
        raise NotARepository(path)
    raise UnknownRevision(path, rev)


@dataclass(frozen=True)
class WorktreeEntry:
    """One record of `git worktree list --porcelain`."""

    path: Path
    head: str | None
    branch: str | None
    """Short name (without refs/heads/), None when detached or bare."""
    detached: bool
    bare: bool
    lock_reason: str | None
    """None when unlocked; "" when locked without a reason."""
    prunable: str | None
    """Why git would prune it (its directory is gone), else None."""

    @property
    def locked(self) -> bool:
        return self.lock_reason is not None


def _parse_worktree_record(fields: list[str]) -> WorktreeEntry:
    values: dict[str, str | None] = {}
    for field in fields:
        name, sep, value = field.partition(" ")
        values[name] = value if sep else None
    branch = values.get("branch")
    return WorktreeEntry(
        path=Path(values.get("worktree") or ""),
        head=values.get("HEAD"),
        branch=branch.removeprefix("refs/heads/") if branch else None,
        detached="detached" in values,
        bare="bare" in values,
        lock_reason=(values["locked"] or "") if "locked" in values else None,
        prunable=(values["prunable"] or "") if "prunable" in values else None,
    )


def list_worktrees(path: Path) -> list[WorktreeEntry]:
    """Every worktree of the repository containing `path`; the main one comes first."""
    args = ("worktree", "list", "--porcelain", "-z")
    out = run_git_result(path, *args)
    if out.status != 0:
        if "not a git repository" in out.stderr:
            raise NotARepository(path)
        raise GitCommandFailed(path, args, out.status, out.stderr)
    entries: list[WorktreeEntry] = []
    record: list[str] = []
    for field in out.stdout.split("\0"):
        if field:
            record.append(field)
        elif record:
            entries.append(_parse_worktree_record(record))
            record = []
    if record:
        entries.append(_parse_worktree_record(record))
    return entries


def same_path(a: Path, b: Path) -> bool:
    """Whether two paths name one place, resolving symlinks as far as they exist."""
    return os.path.realpath(a) == os.path.realpath(b)


def admin_dir(workspace: Path) -> Path | None:
    """A linked worktree's own git directory, from its `.git` file (`gitdir: <path>`).

    None when `.git` is a directory (the main worktree) or anything unexpected: callers then ask
    git, or do without.
    """
    try:
        with open(workspace / ".git", "rb") as file:
            text = file.read(4097)
    except OSError:  # IsADirectoryError for the main worktree
        return None
    line = text.decode("utf-8", "surrogateescape").strip()
    if len(text) > 4096 or "\n" in line or not line.startswith("gitdir: "):
        return None
    path = workspace / line.removeprefix("gitdir: ")  # a relative gitdir is relative to the file
    return path if path.is_dir() else None


def records_worktree(admin: Path, path: Path) -> bool:
    """Whether the worktree record `admin` (`.git/worktrees/<id>`) is the one of `path`."""
    try:
        target = (admin / "gitdir").read_text().strip()
    except OSError:
        return False
    return same_path(Path(target).parent, path)


def find_worktree(entries: list[WorktreeEntry], path: Path) -> WorktreeEntry | None:
    """The entry registered at `path`, if any."""
    return next((entry for entry in entries if same_path(entry.path, path)), None)
