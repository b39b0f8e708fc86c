"""The console names the host a remote agent (runtime `ssh`) runs on, in the dashboard's
workspace column and the agent detail, and the event tail says when a host's late commit was
refused (docs/reliability.md T7)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from corral.core.log import events as ev
from corral.core.runs.rundir import RunDir, runs_root
from corral.tui.app import CorralApp
from corral.tui.screens.agent import AgentScreen
from corral.tui.screens.dashboard import DashboardScreen
from tests.tui.conftest import screen_text, until
from tests.tui.synthetic import at, frozen_clock, started, summary, this_engine, write_events

RUN_ID = "20231114-221320-sshrun"
PLAN = """
[run]
runtime = "ssh"

[[host]]
name = "build-7"
address = "corral@build7.example:22"
identity = "/keys/id"

[[agent]]
id = "remote"
command = ["true"]
"""


def remote_run(repo: Path) -> RunDir:
    rundir = RunDir(runs_root(repo / ".git") / RUN_ID)
    events: list[ev.EventBase] = [
        started(
            RUN_ID, repo, [summary("remote")], this_engine(), "a1b2c3d4e5f60718293a4b5c6d7e8f90"
        ),
        ev.AgentStarting(
            ts=at(1),
            agent="remote",
            attempt=1,
            workspace="~/.cache/corral/attempts/r1/remote-1/wt",
            branch="corral/r1/remote/1",
            output_dir="/work/runs/r1/agents/remote/1/out",
            log_path="/work/runs/r1/agents/remote/1/output.log",
            host="build-7",
        ),
        ev.AgentStarted(
            ts=at(1.2),
            agent="remote",
            attempt=1,
            runtime="ssh",
            identity=ev.ExecutionIdentity(runtime="ssh", host="build-7", remote_pid=4242),  # type: ignore[call-arg]
        ),
        ev.LateResultRefused(
            ts=at(5), agent="remote", attempt=1, host="build-7", what="commit", detail="abc123"
        ),
    ]
    write_events(rundir, events)
    rundir.plan.write_text(PLAN)
    return rundir


def test_the_agent_detail_names_the_host_and_the_tail_the_late_commit(repo: Path) -> None:
    rundir = remote_run(repo)

    async def scenario() -> None:
        app = CorralApp(repo, rundir.run_id, clock=frozen_clock)
        async with app.run_test(size=(200, 40)) as pilot:
            await until(
                pilot,
                lambda: isinstance(app.screen, DashboardScreen) and app.screen.draws > 0,
                what="the dashboard",
            )
            shown = screen_text(pilot)
            assert "remote#1 on host build-7: late commit refused" in shown
            assert "build-7:~/.cache/corral/attempts/r1/remote-1/wt" in shown, "where it runs"
            await pilot.press("enter")
            screen = app.screen
            assert isinstance(screen, AgentScreen)
            await until(pilot, lambda: screen.runtime is not None, what="the runtime")
            await until(
                pilot, lambda: "⚙ ssh on host build-7" in screen_text(pilot), what="the host"
            )

    asyncio.run(scenario())
