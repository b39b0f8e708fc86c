"""A repository's refs, read from the files git keeps them in, without starting git.

gitrepository-layout(5): `packed-refs` holds packed refs (`<sha> <name>` lines, `^<sha>` after an
annotated tag for the commit it peels to), and a loose file under `refs/` overrides its packed
entry. Reading them costs no process, which matters to a caller that reads them as every agent
attempt ends. A loose symbolic ref reads as `ref: <target>`, as its file says; `HEAD` likewise.
A repository that keeps its refs in a reftable (git 2.45's `extensions.refStorage`) is asked
through the safe runner (`for-each-ref`) instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from corral.worktrees.git import run_git

REF_FILE_LIMIT = 4096


def repository_refs(
    repo: Path, git_dir: Path, *, skip: str = "", also: Iterable[str] = ()
) -> dict[str, str]:
    """Every ref of the main worktree (`git_dir`: the shared git dir) with what it holds, and
    `HEAD`; refs under the prefix `skip` are left out (their directory is not walked) except the
    ones named in `also`."""
    wanted = list(also)
    if (git_dir / "reftable").is_dir():
        out = run_git(repo, "for-each-ref", "--format=%(objectname) %(refname)")
        every = {name: sha for sha, _, name in (line.partition(" ") for line in out.splitlines())}
    else:
        every = _packed_refs(git_dir / "packed-refs")
        _loose_refs(git_dir / "refs", "refs", skip, every)
        for name in wanted:
            if (loose := _ref_file(git_dir / name)) is not None:
                every[name] = loose
    refs = {name: sha for name, sha in every.items() if not skip or not name.startswith(skip)}
    refs |= {name: every[name] for name in wanted if name in every}
    refs["HEAD"] = _ref_file(git_dir / "HEAD") or "missing"
    return refs


def _ref_file(path: Path) -> str | None:
    try:
        with open(path, "rb") as file:
            return file.read(REF_FILE_LIMIT).decode("utf-8", "replace").strip()
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"unreadable ({exc.strerror})"


def _packed_refs(path: Path) -> dict[str, str]:
    try:
        text = path.read_text("utf-8", "replace")
    except FileNotFoundError:
        return {}
    refs: dict[str, str] = {}
    for line in text.splitlines():
        if line and line[0] not in "#^":  # the header, and the commit a tag above peels to
            sha, _, name = line.partition(" ")
            refs[name.strip()] = sha
    return refs


def _loose_refs(directory: Path, prefix: str, skip: str, refs: dict[str, str]) -> None:
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return
    for entry in entries:
        name = f"{prefix}/{entry.name}"
        if skip and f"{name}/".startswith(skip):
            continue
        if entry.is_dir(follow_symlinks=False):
            _loose_refs(Path(entry.path), name, skip, refs)
        elif not entry.name.endswith(".lock"):  # a ref git is writing at this moment
            refs[name] = _ref_file(Path(entry.path)) or "gone"
