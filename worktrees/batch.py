"""Register many new worktrees at once: one `update-ref` transaction and a few small files each.

`git worktree add --no-checkout -b` costs 10-20 ms a worktree: it starts `git branch` and `git
symbolic-ref` as children and reads every existing worktree, and it must run under the metadata
lock. With fifty agents starting together that lock alone serialises most of a second. Here the
branches of a whole batch are created by one `git update-ref --stdin` transaction, and each
worktree's metadata is written the way `git worktree add` writes it (gitrepository-layout(5):
`worktrees/<id>/{locked,gitdir,commondir,HEAD}` and the worktree's `.git` file), in git's order:
`locked` first, so `git worktree prune` never takes a half-made one; a crash leaves what a
crashed `git worktree add` would, which `workspace.create_workspace` already repairs.

Whatever `git worktree add` does beyond that makes a batch fall back to it: sparse checkout and
per-worktree config (which it copies), or a branch or directory that already exists (debris of a
crash, repaired by the careful one-at-a-time path).
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from corral.worktrees.git import records_worktree, run_git_result
from corral.worktrees.safety import config_stamp

FALLBACK_SETTINGS = r"^(core\.sparsecheckout|extensions\.worktreeconfig)$"
"""Settings under which `git worktree add` copies files into the new worktree's metadata."""


@dataclass(frozen=True)
class NewWorktree:
    """One worktree to register: where, on which new branch, locked with which reason."""

    path: Path
    """Absolute, and its parent exists."""
    branch: str
    reason: str


def _copies_settings(repo_path: Path) -> bool:
    """True when `worktree add` would copy sparse-checkout or per-worktree config.

    Asked once per state of the repository's config files (a run registers many batches)."""
    stamp = config_stamp(repo_path)
    if stamp is not None and (known := _settings_cache.get(stamp)) is not None:
        return known
    result = run_git_result(repo_path, "config", "--bool", "--get-regexp", FALLBACK_SETTINGS)
    copies = any(line.split(" ", 1)[-1] == "true" for line in result.stdout.splitlines())
    if stamp is not None:
        _settings_cache[stamp] = copies
    return copies


_settings_cache: dict[tuple[tuple[str, int, int, int], ...], bool] = {}


def _create_branches(repo_path: Path, items: Sequence[NewWorktree], commit: str) -> bool:
    """All branches at `commit`, or none (one transaction: `create` fails on an existing ref)."""
    commands = "".join(f"create refs/heads/{item.branch} {commit}\n" for item in items)
    result = run_git_result(
        repo_path, "update-ref", "-m", f"branch: Created from {commit}", "--stdin", input=commands
    )
    return result.status == 0


def _new_record_dir(common_dir: Path, path: Path) -> Path:
    """A new `worktrees/<name>` directory for `path`, numbered like git's when the name is taken.

    Git names a worktree's record after its directory, so a record left for this very path (its
    directory deleted by hand) is among the taken names: then FileExistsError, and the careful
    path (`git worktree add`, which refuses to register one path twice) deals with it."""
    admin_root = common_dir / "worktrees"
    admin_root.mkdir(exist_ok=True)
    counter = 0
    while True:
        candidate = admin_root / (path.name if counter == 0 else f"{path.name}{counter}")
        try:
            candidate.mkdir()
        except FileExistsError:
            if records_worktree(candidate, path):
                raise FileExistsError(f"{path} is already registered in {candidate}") from None
            counter += 1
            continue
        return candidate


def _write(path: Path, text: str) -> None:
    with open(path, "x", encoding="utf-8") as file:
        file.write(text)


def _write_metadata(common_dir: Path, item: NewWorktree) -> None:
    """The files `git worktree add --no-checkout --lock -b` leaves, in the order it writes them."""
    admin = _new_record_dir(common_dir, item.path)
    try:
        _write(admin / "locked", f"{item.reason}\n")
        item.path.mkdir()
        _write(admin / "gitdir", f"{os.path.realpath(item.path)}/.git\n")
        _write(item.path / ".git", f"gitdir: {os.path.realpath(admin)}\n")
        _write(admin / "commondir", "../..\n")
        _write(admin / "HEAD", f"ref: refs/heads/{item.branch}\n")
    except BaseException:
        shutil.rmtree(admin, ignore_errors=True)
        with contextlib.suppress(OSError):
            (item.path / ".git").unlink(missing_ok=True)
            item.path.rmdir()
        raise


def register_batch(
    repo_path: Path, common_dir: Path, items: Sequence[NewWorktree], commit: str
) -> list[OSError | None]:
    """Register `items` at `commit` (metadata only); call with the metadata lock held.

    Returns one entry per item: None when registered, the error when its files could not be
    written, e.g. because its directory appeared meanwhile (its branch then exists at `commit`,
    which the careful path accepts). Raises
    `FastPathUnavailable` before changing anything when the batch must go through `git worktree add`.
    """
    if not items:
        return []
    if _copies_settings(repo_path) or not _create_branches(repo_path, items, commit):
        raise FastPathUnavailable
    outcomes: list[OSError | None] = []
    for item in items:
        try:
            _write_metadata(common_dir, item)
        except OSError as exc:
            outcomes.append(exc)
        else:
            outcomes.append(None)
    return outcomes


class FastPathUnavailable(Exception):
    """The batch needs `git worktree add`; nothing was changed."""
