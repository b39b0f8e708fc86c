"""Register many new worktrees at once: one `update-ref` transaction and a few small files each.

`git worktree add --no-checkout -b` costs 10-20 ms a worktree: it starts `git branch` and `git
symbolic-ref` as children and reads every existing worktree, and it must run under the metadata
lock. With fifty agents starting together that lock alone serialises most of a second. Here the
branches of a whole batch are created by one `git update-ref --stdin` transaction, and each
worktree's metadata is written the way `git worktree add` writes it (gitrepository-layout(5):
`worktrees/<id>/{locked,gitdir,commondir,HEAD,logs/HEAD}` and the worktree's `.git` file), in
git's order: `locked` first, so `git worktree prune` never takes a half-made one; a crash leaves what a
crashed `git worktree add` would, which `workspace.create_workspace` already repairs.

The fast path is taken only for repository formats it is known to match (an allowlist, not a
list of what is known to differ): format version 0 or 1, only the extensions in
KNOWN_EXTENSIONS with a value it handles (refs in files, no per-worktree config), no relative
worktree paths and no sparse checkout. tests/worktrees/test_batch.py compares its files with
`git worktree add`'s byte for byte in each of those formats. Anything else (reftable refs,
relative paths, per-worktree config and sparse patterns `worktree add` copies, an extension
added by a later git), a config git cannot read, or a branch or directory that already exists
(debris of a crash, repaired by the careful one-at-a-time path) goes through `git worktree add`.
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

FALSE = frozenset({"false", "no", "off", "0"})
"""How git spells a boolean setting that is off (a key given without a value is on)."""
KNOWN_EXTENSIONS: dict[str, frozenset[str] | None] = {
    "extensions.objectformat": frozenset({"sha1", "sha256"}),
    "extensions.refstorage": frozenset({"files"}),
    "extensions.worktreeconfig": FALSE,
    "extensions.preciousobjects": None,  # any value: it only stops pruning, never adding
}
"""The `extensions.*` settings the batch's files match `git worktree add`'s under, and the values
it matches them with (None: every value). Config keys as `git config --list` prints them."""
FORMAT_VERSIONS = frozenset({"0", "1"})
"""`core.repositoryformatversion` values (unset reads as 0)."""
OFF_SETTINGS = ("core.sparsecheckout", "worktree.userelativepaths")
"""Settings that must be off (or unset): `worktree add` would copy the sparse patterns, or write
relative paths where the batch writes absolute ones."""


@dataclass(frozen=True)
class NewWorktree:
    """One worktree to register: where, on which new branch, locked with which reason."""

    path: Path
    """Absolute, and its parent exists."""
    branch: str
    reason: str


def fast_path_refusal(settings: Sequence[tuple[str, str | None]]) -> str | None:
    """Why the batch must not write worktree metadata under these config entries (in `git
    config --list` order, a key given without a value as None), or None when it may."""
    last = dict(settings)
    version = last.get("core.repositoryformatversion") or "0"
    if version not in FORMAT_VERSIONS:
        return f"core.repositoryformatversion is {version}"
    for key in OFF_SETTINGS:
        if key in last and (last[key] or "true").lower() not in FALSE:
            return f"{key} is {last[key]}"
    for key, value in last.items():
        if not key.startswith("extensions."):
            continue
        if key not in KNOWN_EXTENSIONS:
            return f"{key} is not a known extension"
        allowed = KNOWN_EXTENSIONS[key]
        if allowed is not None and (value or "true").lower() not in allowed:
            return f"{key} is {value}"
    return None


def _config_entries(output: str) -> list[tuple[str, str | None]]:
    """`git config --null --list` output as (key, value) pairs."""
    entries: list[tuple[str, str | None]] = []
    for record in output.split("\0"):
        if record:
            key, newline, value = record.partition("\n")
            entries.append((key.lower(), value if newline else None))
    return entries


def _fast_path_fits(repo_path: Path) -> bool:
    """True when the repository's format is one the batch's files are known to match.

    Asked once per state of the repository's config files (a run registers many batches)."""
    stamp = config_stamp(repo_path)
    if stamp is not None and (known := _settings_cache.get(stamp)) is not None:
        return known
    result = run_git_result(repo_path, "config", "--null", "--list")
    fits = result.status == 0 and fast_path_refusal(_config_entries(result.stdout)) is None
    if stamp is not None:
        _settings_cache[stamp] = fits
    return fits


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


def _head_log_entry(common_dir: Path, branch: str) -> str | None:
    """The first line of the new worktree's HEAD reflog, which `git worktree add` writes when it
    points HEAD at the branch: the branch's creation entry (the same who and when), without its
    message. None when refs keep no reflog (`core.logAllRefUpdates` off), as git then writes none."""
    try:
        lines = (common_dir / "logs" / "refs" / "heads" / branch).read_text().splitlines()
    except FileNotFoundError:
        return None
    return lines[-1].partition("\t")[0] + "\n" if lines else None


def _write_metadata(common_dir: Path, item: NewWorktree) -> None:
    """The files `git worktree add --no-checkout --lock -b` leaves, in the order it writes them
    (`logs/HEAD` last: git adds it when it points the new HEAD at the branch)."""
    admin = _new_record_dir(common_dir, item.path)
    try:
        _write(admin / "locked", f"{item.reason}\n")
        item.path.mkdir()
        _write(admin / "gitdir", f"{os.path.realpath(item.path)}/.git\n")
        _write(item.path / ".git", f"gitdir: {os.path.realpath(admin)}\n")
        _write(admin / "commondir", "../..\n")
        _write(admin / "HEAD", f"ref: refs/heads/{item.branch}\n")
        if (entry := _head_log_entry(common_dir, item.branch)) is not None:
            (admin / "logs").mkdir()
            _write(admin / "logs" / "HEAD", entry)
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
    if not _fast_path_fits(repo_path) or not _create_branches(repo_path, items, commit):
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
