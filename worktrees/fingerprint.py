"""A cheap answer to "can this worktree's snapshot have changed?", in pure Python.

A snapshot costs three or four git processes; walking a worktree of a few hundred files and
lstat-ing each costs about a millisecond. The fingerprint hashes, for every entry under the
worktree (the top-level `.git` aside, symlinks not followed), its path, inode, size, mode, ctime
and mtime, plus the git state that changes a snapshot without touching a working file: the
worktree's own `HEAD` (content too) and `index`, the branch's loose ref and `packed-refs`, and
the config and exclude files. Equal fingerprints mean the snapshot would be the same commit, so
the last one can be reused; a fingerprint is only ever a reason to skip work, never to do less
than `git add -A` would see, so whenever in doubt there is none (None) and the caller snapshots.

Racy timestamps: Linux stamps files from a coarse clock (one tick is a few milliseconds), so a
second write in the same tick as the first can leave size, ctime and mtime all unchanged. A
fingerprint is therefore `trusted` only when every timestamp in it is older than the walk's start
minus `RACY_MARGIN_NS`: any later write then gets a strictly newer ctime and shows. An untrusted
fingerprint must not be cached; the next pass snapshots again (as git rehashes "racily clean"
index entries).
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from corral.worktrees.git import admin_dir

RACY_MARGIN_NS = 1_000_000_000
"""How much older than the walk's start every timestamp must be for the fingerprint to count."""
ENTRY_LIMIT = 20_000
"""Past this many entries (an ignored node_modules, a build tree) the walk gives up: git skips
ignored directories, this walk would not, and a snapshot is then the cheaper answer."""
_MISSING = b"-"
_PER_WORKTREE_REFS = ("refs/worktree/", "refs/bisect/", "refs/rewritten/")
"""Refs kept in the worktree's own git directory rather than the common one."""


@dataclass(frozen=True)
class Fingerprint:
    """What a worktree looked like to `lstat` at one moment; compare with `==`."""

    digest: bytes
    entries: int
    """Files, directories and symlinks in the worktree (its `.git` aside)."""
    trusted: bool = field(compare=False)
    """Every timestamp was older than the walk's start minus the racy margin: safe to cache."""


class _TooLarge(Exception):
    pass


class _Hasher:
    def __init__(self, limit: int) -> None:
        self.hash = hashlib.blake2b(digest_size=20)
        self.limit = limit
        self.entries = 0
        self.newest_ns = 0

    def add_entry(self, name: bytes, st: os.stat_result) -> None:
        self.entries += 1
        if self.entries > self.limit:
            raise _TooLarge
        self.add(name, st)

    def add(self, name: bytes, st: os.stat_result) -> None:
        self.newest_ns = max(self.newest_ns, st.st_ctime_ns, st.st_mtime_ns)
        self.hash.update(
            b"%s\0%d %d %d %d %d\n"
            % (name, st.st_ino, st.st_size, st.st_mode, st.st_ctime_ns, st.st_mtime_ns)
        )

    def add_file(self, label: bytes, path: Path, *, content: bool = False) -> bytes:
        """A git file's stat (and content, when asked), or a mark that it is missing.

        Labels start with `/`, which no path relative to the worktree does."""
        try:
            with open(path, "rb") as file:
                st = os.fstat(file.fileno())
                data = file.read(4096) if content else b""
        except FileNotFoundError:
            self.hash.update(b"%s\0%s\n" % (label, _MISSING))
            return b""
        self.add(label, st)
        self.hash.update(b"%d:%s\n" % (len(data), data))
        return data


def _walk(hasher: _Hasher, root: Path) -> None:
    pending: list[tuple[str, bytes]] = [(str(root), b"")]
    while pending:
        directory, prefix = pending.pop()
        with os.scandir(directory) as scan:
            found = sorted(scan, key=lambda entry: entry.name)
        for entry in found:
            if not prefix and entry.name == ".git":
                continue
            name = prefix + os.fsencode(entry.name)
            st = entry.stat(follow_symlinks=False)
            hasher.add_entry(name, st)
            if stat.S_ISDIR(st.st_mode):
                pending.append((entry.path, name + b"/"))


def _git_state(hasher: _Hasher, workspace: Path) -> bool:
    """Hash what moves a snapshot without touching a working file; False when unreadable."""
    admin = admin_dir(workspace)
    if admin is None:
        return False
    try:
        common_text = (admin / "commondir").read_text().strip()
    except FileNotFoundError:
        common_text = "."
    common = admin / common_text
    head = hasher.add_file(b"/git/HEAD", admin / "HEAD", content=True)
    hasher.add_file(b"/git/index", admin / "index")
    if head.startswith(b"ref: "):
        ref = head.removeprefix(b"ref: ").strip().decode("utf-8", "surrogateescape")
        if not ref.startswith("refs/") or ".." in ref.split("/"):
            return False
        where = admin if ref.startswith(_PER_WORKTREE_REFS) else common
        hasher.add_file(b"/git/ref", where / ref, content=True)
    elif not head.strip():
        return False
    for label, path in (
        (b"/git/packed-refs", common / "packed-refs"),
        (b"/git/config", common / "config"),
        (b"/git/config.worktree", admin / "config.worktree"),
        (b"/git/info/exclude", common / "info" / "exclude"),
        (b"/git/info/attributes", common / "info" / "attributes"),
    ):
        hasher.add_file(label, path)
    return True


def fingerprint(
    workspace: Path, *, limit: int = ENTRY_LIMIT, margin_ns: int = RACY_MARGIN_NS
) -> Fingerprint | None:
    """The worktree's fingerprint, or None when it cannot stand in for a snapshot (unreadable,
    not a linked worktree, more than `limit` entries). See the module docstring."""
    started_ns = time.time_ns()
    hasher = _Hasher(limit)
    try:
        if not _git_state(hasher, workspace):
            return None
        _walk(hasher, workspace)
    except (OSError, _TooLarge):
        return None
    trusted = hasher.newest_ns < started_ns - margin_ns
    return Fingerprint(hasher.hash.digest(), hasher.entries, trusted)
