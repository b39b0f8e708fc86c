"""The console shows where each agent runs: the agent detail names its runtime and, sandboxed,
its policy in short (from the plan the run keeps); refused connections and refused operator
actions appear in the event tail, naming the agent and what it tried (docs/reliability.md T1,
T6)."""

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

RUN_ID = "20231114-221320-sandbx"
PLAN = """
[run]
runtime = "sandbox"

[[agent]]
id = "fetcher"
command = ["fetch"]
sandbox = { network = "allow", allow = ["pypi.org:443"], write = ["~/.cache/pip"], hide = ["~/work/secrets"] }

[[agent]]
id = "plain"
runtime = "local"
command = ["true"]
"""


def sandboxed_run(repo: Path) -> RunDir:
    rundir = RunDir(runs_root(repo / ".git") / RUN_ID)
    agents = [summary("fetcher"), summary("plain")]
    events: list[ev.EventBase] = [
        started(RUN_ID, repo, agents, this_engine(), "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"),
        *launch("fetcher", 1, 1, 101),
        *launch("plain", 1, 2, 102),
        ev.NetworkRefused(ts=at(5), agent="fetcher", attempt=1, destination="evil.example:443"),
        ev.OperatorActionRefused(
            ts=at(6),
            action="approve",
            target="the report of run r0",
            caller_run=RUN_ID,
            caller_agent="fetcher",
            caller_attempt=1,
            evidence="it carries that attempt's token",
        ),
    ]
    write_events(rundir, events)
    rundir.plan.write_text(PLAN)
    return rundir


def test_the_agent_detail_shows_the_runtime_and_policy_and_the_tail_the_refusals(
    repo: Path,
) -> None:
    rundir = sandboxed_run(repo)

    async def scenario() -> None:
        app = CorralApp(repo, rundir.run_id, clock=frozen_clock)
        async with app.run_test(size=(200, 40)) as pilot:
            await until(
                pilot,
                lambda: isinstance(app.screen, DashboardScreen) and app.screen.draws > 0,
                what="the dashboard",
            )
            text = screen_text(pilot)
            assert "fetcher#1 refused network access to evil.example:443" in text
            assert "refused approve of the report of run r0 asked from inside agent fetcher#1" in (
                text
            )
            await pilot.press("enter")  # the first agent: fetcher
            screen = app.screen
            assert isinstance(screen, AgentScreen)
            assert screen.agent_id == "fetcher"
            await until(pilot, lambda: screen.runtime is not None, what="the runtime")
            expected = (
                "sandbox · network: only pypi.org:443 (through corral's proxy) · "
                "write: ~/.cache/pip · 26 credential stores hidden, and ~/work/secrets"
            )
            await until(pilot, lambda: expected in screen_text(pilot), what="the policy")
            await pilot.press("4")  # its events: the refusals are the agent's too
            await until(
                pilot,
                lambda: (
                    "refused network access to evil.example:443" in screen_text(pilot)
                    and "refused approve" in screen_text(pilot)
                ),
                what="the agent's refusals",
            )
            await pilot.press("escape")
            await pilot.press("j", "enter")
            plain = app.screen
            assert isinstance(plain, AgentScreen)
            assert plain.agent_id == "plain"
            await until(pilot, lambda: plain.runtime is not None, what="the runtime")
            assert plain.runtime is not None
            assert not plain.runtime.sandboxed
            assert "⚙ local" in screen_text(pilot)

    asyncio.run(scenario())
