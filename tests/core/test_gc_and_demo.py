"""`corral gc` cleans finished runs only (the demo's tests are in test_demo.py)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from corral.core.log import events as ev
from tests.conftest import git
from tests.core.engine_helpers import (
    agent_block,
    corral,
    kill9,
    processes_with_env,
    start_corral,
    wait_for_event,
    wait_for_run,
    write_plan,
)


def worktrees(repo: Path) -> list[str]:
    lines = git(repo, "worktree", "list", "--porcelain").splitlines()
    return [line.split(" ", 1)[1] for line in lines if line.startswith("worktree ")][1:]


def test_gc_removes_finished_runs_and_keeps_live_and_dirty_ones(repo: Path, tmp_path: Path) -> None:
    # a failed agent's work is not merged, so its worktree keeps uncommitted changes
    dirty = agent_block("dirty", ["sh", "-c", "echo scratch > notes.txt; exit 1"])
    clean = agent_block("clean", ["sh", "-c", "echo change >> README.md"])
    plan = write_plan(tmp_path, dirty + clean, header="min_success = 1\n")
    corral(repo, "run", str(plan), "--quiet", check=True)
    assert len(worktrees(repo)) == 3, "two agents and the integration worktree"
    dry = corral(repo, "gc", "--dry-run", check=True)
    assert "would remove 3 worktree(s)" in dry.stdout
    assert len(worktrees(repo)) == 3
    result = corral(repo, "gc", check=True)
    assert "removed 2 worktree(s)" in result.stdout
    assert "uncommitted" in result.stdout or "dirty" in result.stdout or "changes" in result.stdout
    assert len(worktrees(repo)) == 1, "the dirty worktree is kept without --force"
    forced = corral(repo, "gc", "--force", check=True)
    assert "removed 1 worktree(s)" in forced.stdout
    assert worktrees(repo) == []
    assert "corral/" not in git(repo, "branch", "--list"), "forced gc removes the run's branches"


def test_gc_never_touches_a_live_run(repo: Path, tmp_path: Path) -> None:
    plan = write_plan(tmp_path, agent_block("long", ["sleep", "600"]))
    engine = start_corral(repo, "run", str(plan), "--quiet")
    rundir = wait_for_run(repo)
    wait_for_event(rundir, lambda e: isinstance(e, ev.AgentStarted), what="the agent to start")
    result = corral(repo, "gc", "--force", check=True)
    assert "kept, its engine is running" in result.stdout
    assert len(worktrees(repo)) == 1
    kill9(engine)
    interrupted = corral(repo, "gc", check=True)
    assert "kept, it is interrupted" in interrupted.stdout
    assert len(worktrees(repo)) == 1
    for pid in processes_with_env("CORRAL_RUN_ID", rundir.run_id):  # the orphaned agent
        os.kill(pid, signal.SIGKILL)
