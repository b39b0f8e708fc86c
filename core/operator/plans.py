"""Which plan files a person may start a run from: the repository's `*.toml` that hold agents,
and the one an earlier run was started from (for running it again)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from corral.core.runs.rundir import RunDir

MAX_PLANS = 200
"""Plans offered at most: a list to pick from, not a search of a monorepo."""
PLAN_MARK = b"[[agent]]"
"""What every plan holds and a `pyproject.toml` or a preset file does not."""
HEAD_BYTES = 256 << 10
"""How much of each candidate is read to find the mark."""


@dataclass(frozen=True)
class PlanFile:
    name: str
    """Relative to the repository's top, as a person names it."""
    path: Path


def find_plans(repo: Path) -> list[PlanFile]:
    """The `*.toml` files of the repository (tracked, or untracked and not ignored) that hold
    `[[agent]]`, sorted by name; at most MAX_PLANS. Read-only git through the one runner
    (worktrees/git.py), so no hook or config of the repository runs."""
    from corral.worktrees.git import GitError, run_git_result

    try:
        top = run_git_result(repo, "rev-parse", "--show-toplevel", timeout=30.0)
        listed = run_git_result(
            repo,
            "ls-files",
            "--cached",
            "--others",
            "--exclude-standard",
            "-z",
            "--full-name",
            "--",
            ":(top,glob)**/*.toml",
            timeout=30.0,
        )
    except GitError:
        return []
    if top.status != 0 or listed.status != 0:
        return []
    root = Path(top.stdout.strip())
    found: list[PlanFile] = []
    for name in sorted({n for n in listed.stdout.split("\0") if n}):
        if _holds_agents(root / name):
            found.append(PlanFile(name, root / name))
            if len(found) >= MAX_PLANS:
                break
    return found


def _holds_agents(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return PLAN_MARK in handle.read(HEAD_BYTES)
    except OSError:
        return False


def plan_of_run(rundir: RunDir, repo: Path) -> PlanFile | None:
    """The repository's plan file whose bytes are the ones `rundir` ran (its copy, `plan.toml`,
    is what the log's `plan_sha256` names); None when it changed or moved since. The file, not
    the copy, is started again: its relative paths (prompts, `repo`) are relative to it."""
    try:
        ran = rundir.plan.read_bytes()
    except OSError:
        return None
    for plan in find_plans(repo):
        try:
            if plan.path.read_bytes() == ran:
                return plan
        except OSError:
            continue
    return None
