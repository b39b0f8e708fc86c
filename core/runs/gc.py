"""`corral gc`: the engine decides which runs are over; the workspace layer removes their trees."""

from __future__ import annotations

from pathlib import Path

from corral.core.runs.listing import summarize_runs
from corral.worktrees.gc import collect_run, list_run_branches, list_run_workspaces


def collect_garbage(common_dir: Path, *, force: bool, dry_run: bool) -> list[str]:
    """Remove worktrees and branches of finished runs; return what was done, line by line."""
    repo = common_dir.parent if common_dir.name == ".git" else common_dir
    lines: list[str] = []
    for run in summarize_runs(common_dir):
        if run.engine_live:
            lines.append(f"{run.run_id}: kept, its engine is running")
            continue
        if run.status != "finished" and not force:
            lines.append(f"{run.run_id}: kept, it is {run.status} (resume it, or pass --force)")
            continue
        if dry_run:
            trees = list_run_workspaces(repo, run.run_id)
            branches = list_run_branches(repo, run.run_id)
            lines.append(
                f"{run.run_id}: would remove {len(trees)} worktree(s) and {len(branches)} branch(es)"
            )
            continue
        result = collect_run(repo, run.run_id, force=force)
        lines.append(
            f"{run.run_id}: removed {len(result.removed_worktrees)} worktree(s), "
            f"{len(result.removed_branches)} branch(es)"
        )
        lines.extend(f"  kept {what}: {why}" for what, why in result.kept)
    if not lines:
        lines.append("nothing to collect")
    return lines
