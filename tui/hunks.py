"""The conflicting hunks of two branches, side by side: `git merge-tree --write-tree` merges
them without a worktree (worktrees/mergetree.py, the merge's own trial), and each conflicted
file of the merged tree is read with its conflict markers and split into what each side has.
Only blob and tree objects are written to the object store, unreferenced (gc drops them)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from corral.tui.ops import SOURCE_LIMIT, _git, _readable
from corral.worktrees.git import GitError
from corral.worktrees.mergetree import merge_pair

HUNKS_SHOWN = 50
"""Conflicting hunks shown a file; the rest are counted."""


@dataclass
class Hunk:
    line: int
    """Line of the `<<<<<<<` marker in the merged file (1-based)."""
    ours_label: str
    theirs_label: str
    ours: list[str] = field(default_factory=list)
    theirs: list[str] = field(default_factory=list)


def parse_hunks(text: str) -> list[Hunk]:
    """The conflict blocks of a file with markers (a diff3 base section is left out)."""
    hunks: list[Hunk] = []
    current: Hunk | None = None
    side = ""
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("<<<<<<<"):
            current, side = Hunk(number, line[7:].strip(), ""), "ours"
        elif current is None:
            continue
        elif line.startswith("|||||||"):
            side = "base"
        elif line.startswith("=======") and side in ("ours", "base"):
            side = "theirs"
        elif line.startswith(">>>>>>>") and side == "theirs":
            current.theirs_label = line[7:].strip()
            hunks.append(current)
            current, side = None, ""
        elif side == "ours":
            current.ours.append(line)
        elif side == "theirs":
            current.theirs.append(line)
    return hunks


def conflict_sides(repo: str, ours: str, theirs: str, paths: list[str]) -> tuple[str, str] | None:
    """Left and right text: per conflicted file (of `paths`, all when empty), each hunk with its
    marker lines, ours on the left and theirs on the right. None when the two merge cleanly now
    or git cannot say (the caller shows the branches' diffs instead)."""
    if not repo or not ours or not theirs:
        return None
    try:
        outcome = merge_pair(Path(repo), ours, theirs, timeout=60.0)
    except GitError:
        return None
    if outcome.status != "conflict" or outcome.tree is None:
        return None
    left: list[str] = []
    right: list[str] = []
    for conflicted in outcome.files:
        if paths and conflicted.path not in paths:
            continue
        head = f"── {_readable(conflicted.path)} ({conflicted.kind})"
        left.append(head)
        right.append(head)
        hunks = _file_hunks(repo, outcome.tree, conflicted.path)
        if not hunks:
            note = "  no text conflict markers (a binary, deleted or renamed file)"
            left.append(note)
            right.append(note)
        for hunk in hunks[:HUNKS_SHOWN]:
            rows = max(len(hunk.ours), len(hunk.theirs))
            left += [f"@@ line {hunk.line}", f"<<<<<<< {_readable(hunk.ours_label)}"]
            right += [f"@@ line {hunk.line}", "======="]
            left += [_readable(line) for line in hunk.ours] + [""] * (rows - len(hunk.ours))
            right += [_readable(line) for line in hunk.theirs] + [""] * (rows - len(hunk.theirs))
            left.append("=======")
            right.append(f">>>>>>> {_readable(hunk.theirs_label)}")
        if len(hunks) > HUNKS_SHOWN:
            more = f"… and {len(hunks) - HUNKS_SHOWN} more conflicting hunks"
            left.append(more)
            right.append(more)
        left.append("")
        right.append("")
    if not left:
        return None
    return "\n".join(left), "\n".join(right)


def _file_hunks(repo: str, tree: str, path: str) -> list[Hunk]:
    spec = f"{tree}:{path}"
    try:
        size = _git(Path(repo), "cat-file", "-s", spec)
        if size.status != 0 or int(size.stdout.strip() or 0) > SOURCE_LIMIT:
            return []
        blob = _git(Path(repo), "cat-file", "blob", spec)
    except GitError:
        return []
    return parse_hunks(blob.stdout) if blob.status == 0 else []
