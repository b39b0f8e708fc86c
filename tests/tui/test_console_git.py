"""The console's git is the engine's git: an agent's planted drivers never run for the viewer.

An agent can write the shared `.git/config` and its worktree's `.gitattributes`. Each trap below
is a program that leaves a marker file when git starts it; showing the agent's diff in the
console (the functions of tui/ops.py, and the agent screen itself) must leave no marker.
"""

from __future__ import annotations

import asyncio
import shlex
from pathlib import Path

import pytest

from corral.core.runs.rundir import RunDir
from corral.tui import ops
from corral.tui.app import CorralApp
from corral.tui.screens.agent import AgentScreen
from tests.conftest import git
from tests.core.engine_helpers import agent_block, corral, only_run, write_plan
from tests.tui.conftest import on_screen, until

TRAPS = ("filter.x.clean", "filter.x.smudge", "filter.x.process", "diff.x.textconv")
"""Repository config keys that name a program, each one pointed at its own trap."""


def _trap(directory: Path, name: str, then: str) -> str:
    """A script that leaves `directory/ran-NAME` and then does `then`; returns its path."""
    script = directory / f"trap-{name}.sh"
    script.write_text(f"#!/bin/sh\ntouch {shlex.quote(str(directory / f'ran-{name}'))}\n{then}\n")
    script.chmod(0o755)
    return str(script)


def plant(common: Path, worktree: Path, traps: Path) -> None:
    """What a hostile agent writes: drivers in the shared config, attributes that use them."""
    traps.mkdir(exist_ok=True)
    for key in TRAPS:
        git(common, "config", key, _trap(traps, key, "cat"))
    git(common, "config", "core.fsmonitor", _trap(traps, "core.fsmonitor", "exit 0"))
    git(common, "config", "diff.external", _trap(traps, "diff.external", "exit 0"))
    git(common, "config", "core.pager", _trap(traps, "core.pager", "cat"))
    git(common, "config", "core.hooksPath", str(traps / "hooks"))
    (traps / "hooks").mkdir(exist_ok=True)
    for hook in ("post-checkout", "post-index-change", "reference-transaction"):
        _trap(traps / "hooks", hook, "exit 0")
        (traps / "hooks" / f"trap-{hook}.sh").rename(traps / "hooks" / hook)
    (worktree / ".gitattributes").write_text("* filter=x diff=x\n")


def ran(traps: Path) -> list[str]:
    return sorted(path.name for path in traps.rglob("ran-*"))


@pytest.fixture
def planted(repo: Path, tmp_path: Path) -> tuple[Path, str, Path]:
    """A linked worktree with a change and the traps; returns (worktree, snapshot, traps)."""
    snapshot = git(repo, "rev-parse", "HEAD")
    worktree = tmp_path / "agent-wt"
    git(repo, "worktree", "add", "-q", "-b", "corral/r/agent", str(worktree), snapshot)
    (worktree / "README.md").write_text("# changed by the agent\n")
    (worktree / "new.txt").write_text("new\n")
    git(worktree, "commit", "-q", "-am", "agent work")
    (worktree / "src" / "app.py").write_text("print('changed again')\n")
    traps = tmp_path / "traps"
    plant(repo, worktree, traps)
    return worktree, snapshot, traps


def test_the_traps_are_real(planted: tuple[Path, str, Path]) -> None:
    """Plain git in the same worktree runs the agent's filter: what the console must not do."""
    worktree, snapshot, traps = planted
    git(worktree, "diff", snapshot)
    assert "ran-filter.x.process" in ran(traps)  # git prefers the long-running filter


def test_the_worktree_diff_runs_no_program_of_the_repository(
    planted: tuple[Path, str, Path],
) -> None:
    worktree, snapshot, traps = planted
    text = ops.worktree_diff(str(worktree), snapshot)
    assert "changed again" in text
    assert "new.txt" in text
    assert ran(traps) == []


def test_the_branch_diff_runs_no_program_of_the_repository(
    repo: Path, planted: tuple[Path, str, Path]
) -> None:
    _, snapshot, traps = planted
    text = ops.branch_diff(str(repo), snapshot, "corral/r/agent")
    assert "changed by the agent" in text
    assert "changed by the agent" in ops.branch_diff(
        str(repo), snapshot, "corral/r/agent", ["README.md"]
    )
    assert ran(traps) == []


def test_a_driver_git_cannot_switch_off_is_shown_not_run(
    planted: tuple[Path, str, Path], repo: Path
) -> None:
    """A driver name `-c` cannot express is refused by the guard; the console says so."""
    worktree, snapshot, traps = planted
    config = repo / ".git" / "config"
    script = _trap(traps, "unnamed", "cat")
    config.write_text(config.read_text() + f'[filter "a=b"]\n\tclean = {script}\n')
    (worktree / ".gitattributes").write_text("* filter=a=b\n")
    text = ops.worktree_diff(str(worktree), snapshot)
    assert "cannot switch off" in text
    assert ran(traps) == []


@pytest.mark.slow
def test_the_agent_screen_diff_runs_no_program_the_agent_planted(
    repo: Path, tmp_path: Path, engines: list[RunDir]
) -> None:
    """End to end: a real agent plants the traps, a person opens its diff in the console."""
    traps = tmp_path / "traps"
    traps.mkdir()
    filter_trap = _trap(traps, "filter.x.clean", "cat")
    textconv_trap = _trap(traps, "diff.x.textconv", "cat")
    monitor_trap = _trap(traps, "core.fsmonitor", "exit 0")
    script = (
        f"git config filter.x.clean {shlex.quote(filter_trap)} && "
        f"git config diff.x.textconv {shlex.quote(textconv_trap)} && "
        f"git config core.fsmonitor {shlex.quote(monitor_trap)} && "
        "echo '* filter=x diff=x' > .gitattributes && echo planted >> README.md && "
        "echo ready && sleep 600"
    )
    plan = write_plan(tmp_path, agent_block("hostile", ["sh", "-c", script]), "min_success = 0\n")
    detached = corral(repo, "run", str(plan), "--detach")
    assert detached.returncode == 0, detached.stderr
    rundir = only_run(repo)
    engines.append(rundir)

    async def scenario() -> None:
        app = CorralApp(repo, rundir.run_id)
        async with app.run_test(size=(120, 36)) as pilot:
            await until(
                pilot,
                lambda: (
                    app.session is not None
                    and app.session.feed is not None
                    and app.session.feed.state.agents["hostile"].state == "running"
                ),
                what="the agent running",
            )
            await until(
                pilot, lambda: "running" in on_screen(app, "hostile", "state"), what="the row"
            )
            await pilot.press("enter")
            detail = app.screen
            assert isinstance(detail, AgentScreen)
            await until(pilot, lambda: "ready" in detail.output.lines, what="the traps planted")
            await pilot.press("2")
            await until(pilot, lambda: "+planted" in detail.diff_text, what="the worktree diff")

    asyncio.run(scenario())
    assert ran(traps) == []
