"""Worktree fingerprints: equal while nothing git would see changed, different after any change."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from corral.worktrees.fingerprint import Fingerprint, fingerprint
from tests.conftest import git, wait_until
from tests.worktrees.merge_helpers import agent, base_repo

LONG_MARGIN_NS = 60 * 1_000_000_000


def trusted(path: Path) -> Fingerprint:
    """The worktree's fingerprint once every file in it is older than the racy margin."""
    found = wait_until(
        lambda: (f := fingerprint(path)) is not None and f.trusted and f,
        timeout=10,
        what=f"a trusted fingerprint of {path}",
    )
    assert isinstance(found, Fingerprint)
    return found


def same_size_edit(path: Path) -> None:
    target = path / "src/util.py"
    old = target.read_text()
    with open(target, "r+") as file:  # in place: same inode, same size
        file.write(old.replace("1", "2"))


def move_branch(path: Path) -> None:
    """A new commit on the branch without the index or any working file being written."""
    commit = git(path, "commit-tree", "HEAD^{tree}", "-p", "HEAD", "-m", "moved")
    git(path, "update-ref", "HEAD", commit)


def pack_refs(path: Path) -> None:
    git(path, "pack-refs", "--all")


CHANGES: dict[str, Callable[[Path], object]] = {
    "same-size edit in place": same_size_edit,
    "new file": lambda p: (p / "new.txt").write_text("new\n"),
    "new empty directory": lambda p: (p / "empty").mkdir(),
    "deleted file": lambda p: (p / "docs/guide.md").unlink(),
    "rename, same length": lambda p: os.rename(p / "README.md", p / "READNE.md"),
    "chmod +x": lambda p: os.chmod(p / "src/app.py", 0o755),
    "commit, files unchanged": lambda p: git(p, "commit", "-q", "--allow-empty", "-m", "moved"),
    "branch moved, index untouched": move_branch,
    "refs packed": pack_refs,
    "git rm --cached": lambda p: git(p, "rm", "-q", "--cached", "src/util.py"),
    "HEAD detached in place": lambda p: git(p, "update-ref", "--no-deref", "HEAD", "HEAD"),
}


def test_unchanged_worktree_keeps_its_fingerprint(tmp_path: Path) -> None:
    ws = agent(base_repo(tmp_path), "a")
    first = trusted(ws.path)
    git(ws.path, "rev-parse", "HEAD")  # a read-only git command changes nothing
    again = fingerprint(ws.path)
    assert again == first
    assert again is not None
    assert again.trusted
    walked = [p for p in ws.path.rglob("*") if p.relative_to(ws.path).parts[0] != ".git"]
    assert first.entries == len(walked)


def test_every_change_git_would_see_changes_the_fingerprint(tmp_path: Path) -> None:
    # A repository each: some changes (packing refs) touch every worktree of a repository.
    spaces = {
        name: agent(base_repo(tmp_path / f"case{n}"), "a").path for n, name in enumerate(CHANGES)
    }
    before = {name: trusted(path) for name, path in spaces.items()}
    for name, change in CHANGES.items():
        change(spaces[name])
    unchanged = [name for name, path in spaces.items() if fingerprint(path) == before[name]]
    assert unchanged == []


def test_a_fresh_write_is_never_trusted(tmp_path: Path) -> None:
    ws = agent(base_repo(tmp_path), "a")
    trusted(ws.path)
    (ws.path / "src/util.py").write_text("just now\n")
    found = fingerprint(ws.path, margin_ns=LONG_MARGIN_NS)
    assert found is not None
    assert not found.trusted
    trusted(ws.path)  # with the real margin, once it has passed
    git(ws.path, "add", "src/util.py")  # only the index is new: git state counts too
    found = fingerprint(ws.path, margin_ns=LONG_MARGIN_NS)
    assert found is not None
    assert not found.trusted


def test_no_fingerprint_when_it_cannot_stand_in_for_a_snapshot(tmp_path: Path) -> None:
    repo = base_repo(tmp_path)
    ws = agent(repo, "a")
    found = fingerprint(ws.path)
    assert found is not None
    assert fingerprint(ws.path, limit=found.entries - 1) is None  # too many entries to walk
    assert fingerprint(repo) is None  # the main worktree: `.git` is a directory
    assert fingerprint(tmp_path / "gone") is None
    stray = tmp_path / "stray"
    stray.mkdir()
    (stray / ".git").write_text(f"gitdir: {tmp_path / 'nowhere'}\n")
    assert fingerprint(stray) is None


def test_symlinks_are_not_followed(tmp_path: Path) -> None:
    ws = agent(base_repo(tmp_path), "a")
    outside = tmp_path / "outside"
    outside.mkdir()
    for n in range(50):
        (outside / f"f{n}").write_text("x")
    before = fingerprint(ws.path)
    assert before is not None
    (ws.path / "link").symlink_to(outside, target_is_directory=True)
    after = fingerprint(ws.path, limit=before.entries + 1)
    assert after is not None
    assert after.entries == before.entries + 1
