"""Git plumbing that needs its own environment: a temporary index, a fixed identity and date.

`git.run_git_result` scrubs `GIT_INDEX_FILE` and identity overrides out of the environment on
purpose. The commands here need exactly those, so they are run with the same safety (the `-c`
options of `safety`, the repository's own filter and merge drivers switched off, the safe base
environment) plus the variables the caller names. Nothing else in corral sets git's environment.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from corral.worktrees.errors import GitCommandFailed
from corral.worktrees.git import GitResult, run_git_result

ALLOWED_VARIABLES = frozenset(
    {
        "GIT_INDEX_FILE",
        "GIT_AUTHOR_NAME",
        "GIT_AUTHOR_EMAIL",
        "GIT_AUTHOR_DATE",
        "GIT_COMMITTER_NAME",
        "GIT_COMMITTER_EMAIL",
        "GIT_COMMITTER_DATE",
    }
)
"""The only variables a caller may add: where the index is, who commits, and when."""

ENGINE_NAME = "corral"
ENGINE_EMAIL = "engine@corral.invalid"


def run_git_env(
    path: Path,
    *args: str,
    env: Mapping[str, str],
    input: str | None = None,
    timeout: float | None = None,
) -> GitResult:
    """`git -C path ARGS` with the safe options and `env` added; never raises on exit status."""
    unknown = set(env) - ALLOWED_VARIABLES
    if unknown:
        raise ValueError(f"run_git_env does not set {sorted(unknown)}; only {ALLOWED_VARIABLES}")
    return run_git_result(path, *args, input=input, timeout=timeout, extra_env=env)


def checked(path: Path, args: tuple[str, ...], result: GitResult) -> str:
    """stdout of a finished command without its final newline, or GitCommandFailed."""
    if result.status != 0:
        raise GitCommandFailed(path, args, result.status, result.stderr)
    return result.stdout.removesuffix("\n")


def identity_env(name: str, email: str, date: str) -> dict[str, str]:
    """Author and committer `name <email>` at `date` (git's `@<epoch> +0000` form works)."""
    return {
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_AUTHOR_DATE": date,
        "GIT_COMMITTER_NAME": ENGINE_NAME,
        "GIT_COMMITTER_EMAIL": ENGINE_EMAIL,
        "GIT_COMMITTER_DATE": date,
    }


def commit_time(repo: Path, commit: str) -> int:
    """The committer timestamp of `commit` (seconds since the epoch)."""
    args = ("rev-list", "--no-walk", "--format=%ct", commit, "--")
    lines = checked(repo, args, run_git_result(repo, *args)).splitlines()
    return int(lines[-1])


def commit_tree(
    repo: Path, tree: str, parents: list[str], message: str, identity: Mapping[str, str]
) -> str:
    """A new commit object (no ref moves) with `tree`, `parents` and `message`."""
    args: tuple[str, ...] = ("commit-tree", tree)
    for parent in parents:
        args += ("-p", parent)
    args += ("-F", "-")
    return checked(repo, args, run_git_env(repo, *args, env=identity, input=message))


def update_ref_cas(repo: Path, ref: str, new: str, old: str | None, reason: str) -> bool:
    """Move `ref` from `old` to `new` only if it still points at `old` (None: must not exist).

    Returns False when the ref had moved (or already existed): nothing was changed then.
    """
    expected = old if old is not None else "0" * 40
    args = ("update-ref", "-m", reason, "--no-deref", ref, new, expected)
    result = run_git_result(repo, *args)
    if result.status == 0:
        return True
    if "cannot lock ref" in result.stderr or "but expected" in result.stderr:
        return False
    raise GitCommandFailed(repo, args, result.status, result.stderr)


def rev_parse(repo: Path, rev: str) -> str | None:
    """The full sha `rev` names, or None when it names nothing."""
    result = run_git_result(repo, "rev-parse", "--verify", "--quiet", "--end-of-options", rev)
    return result.stdout.strip() if result.status == 0 else None
