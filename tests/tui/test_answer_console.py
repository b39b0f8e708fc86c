"""Answering an agent's question from the console: the agent (an MCP client asking through
`ask_human`) is `waiting_for_human`, `a` on its screen opens the answer box, and the answer
typed there is what the agent hears."""

from __future__ import annotations

import asyncio
import getpass
import json
import sys
from pathlib import Path

import pytest

from corral.core.log import events as ev
from corral.core.runs.rundir import RunDir
from corral.tui.app import CorralApp
from corral.tui.screens.agent import AgentScreen
from corral.tui.screens.dialogs import AskScreen
from tests.conftest import wait_until
from tests.core.engine_helpers import agent_block, corral, events_of, only_run, write_plan
from tests.core.mcp_helpers import mcp_script
from tests.tui.conftest import until

pytestmark = pytest.mark.slow


def test_a_waiting_agent_is_answered_with_one_key(
    repo: Path, tmp_path: Path, engines: list[RunDir]
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    asker = mcp_script(
        tmp_path,
        "ask.py",
        """
        mark("answer", await call(session, "ask_human", question="Which region?", timeout=60))
        """,
    )
    plan = write_plan(tmp_path, agent_block("asker", [sys.executable, str(asker), str(marks)]))
    detached = corral(repo, "run", str(plan), "--detach")
    assert detached.returncode == 0, detached.stderr
    rundir = only_run(repo)
    engines.append(rundir)

    async def scenario() -> None:
        app = CorralApp(repo, rundir.run_id)
        async with app.run_test(size=(120, 36)) as pilot:

            def waiting() -> bool:
                feed = app.session.feed if app.session is not None else None
                agent = feed.state.agents.get("asker") if feed is not None else None
                return agent is not None and agent.state == "waiting_for_human"

            await until(pilot, waiting, what="the agent waiting for a person")
            await pilot.press("enter")
            assert isinstance(app.screen, AgentScreen)
            await pilot.press("a")
            await until(pilot, lambda: isinstance(app.screen, AskScreen), what="the answer box")
            box = app.screen
            assert isinstance(box, AskScreen)
            assert "Which region?" in box.prompt
            await pilot.press(*"eu-west", "enter")
            await until(pilot, lambda: not waiting(), what="the question answered")

    asyncio.run(scenario())
    wait_until((marks / "answer").exists, timeout=30, what="the agent to hear the answer")
    assert json.loads((marks / "answer").read_text())[1]["answer"] == "eu-west"
    (answered,) = [e for e in events_of(rundir) if isinstance(e, ev.HumanAnswered)]
    assert (answered.answer, answered.by) == ("eu-west", getpass.getuser())
