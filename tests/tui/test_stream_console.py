"""The console shows what an agent CLI's stream said (issue 13): the agent detail's header
names its model, tokens, cost, turns and last tool call, and the dashboard's header the run's
totals, from the `agent_activity` events the engine recorded."""

from __future__ import annotations

import asyncio
from pathlib import Path

from corral.core.log import events as ev
from corral.core.runs.rundir import RunDir, runs_root
from corral.tui.app import CorralApp
from corral.tui.screens.agent import AgentScreen
from corral.tui.screens.dashboard import DashboardScreen
from tests.tui.conftest import screen_text, until
from tests.tui.synthetic import (
    at,
    frozen_clock,
    launch,
    started,
    summary,
    this_engine,
    write_events,
)


def test_the_agent_detail_names_model_tokens_cost_and_last_tool(repo: Path) -> None:
    rundir = RunDir(runs_root(repo / ".git") / "20231114-221320-stream")
    activity = ev.AgentActivity(
        ts=at(4),
        agent="claude",
        attempt=1,
        model="claude-sonnet-4-5",
        tokens_in=59_000,
        tokens_out=237,
        cost_usd=0.18,
        cost_source="cli",
        turns=2,
        tool_calls=1,
        tools=[ev.ToolUse(name="Bash", summary="cat > findings.json")],
    )
    events: list[ev.EventBase] = [
        started(rundir.run_id, repo, [summary("claude")], this_engine(), "a" * 40),
        *launch("claude", 1, 1, 101),
        activity,
    ]
    write_events(rundir, events)

    async def scenario() -> None:
        app = CorralApp(repo, rundir.run_id, clock=frozen_clock)
        async with app.run_test(size=(160, 40)) as pilot:
            await until(
                pilot,
                lambda: isinstance(app.screen, DashboardScreen) and app.screen.draws > 0,
                what="the dashboard",
            )
            assert "Σ 59.2k tok $0.18 2t" in screen_text(pilot)  # the run's totals
            await pilot.press("enter")
            assert isinstance(app.screen, AgentScreen)
            await until(
                pilot,
                lambda: "59.2k tokens (59.0k in, 237 out)" in screen_text(pilot),
                what="the agent's usage",
            )
            text = screen_text(pilot)
            assert "2 turns" in text
            assert "[claude-sonnet-4-5] » Bash cat > findings.json" in text

    asyncio.run(scenario())
