"""The console's notices and messages to agents (issue 13): an agent's end that happens while the console watches
rings the bell once, stays on a status line on every run screen, and goes to the desktop
through `notify-send` when the machine has it; what the replay showed, and heartbeats, do not."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

import pytest

from corral.core.log import EventWriter
from corral.core.log import events as ev
from corral.core.runs.rundir import RunDir, runs_root
from corral.tui.app import CorralApp
from corral.tui.screens.dashboard import DashboardScreen
from corral.tui.screens.dialogs import AskScreen
from tests.tui.conftest import screen_text, until
from tests.tui.recording_engine import RecordingEngine
from tests.tui.synthetic import (
    NOW,
    at,
    frozen_clock,
    launch,
    make_live_run,
    started,
    this_engine,
    write_events,
)


@pytest.fixture
def desktop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A `notify-send` on PATH that records its arguments (the real one needs a desktop)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    said = tmp_path / "desktop.txt"
    program = bin_dir / "notify-send"
    program.write_text(f'#!/bin/sh\nprintf "%s|" "$@" >> {said}\necho >> {said}\n')
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return said


def test_an_agent_ending_while_watched_is_one_bell_a_status_line_and_a_desktop_notice(
    repo: Path, desktop: Path
) -> None:
    live: RunDir = make_live_run(repo)

    async def scenario() -> None:
        app = CorralApp(repo, live.run_id, clock=frozen_clock)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(
                pilot,
                lambda: isinstance(app.screen, DashboardScreen) and app.screen.draws > 0,
                what="the dashboard",
            )
            assert app.bells == 0  # the replay's ends were news before the console opened
            writer, _ = await EventWriter.open(live.events)
            for second in (297, 298, 299):
                await writer.append(
                    ev.AgentHeartbeat(ts=at(second), agent="api-billing", attempt=1, source="beat")
                )
            await writer.append(
                ev.AgentFinished(
                    ts=NOW, agent="api-auth", attempt=1, outcome="succeeded", exit_code=0
                )
            )
            await writer.close()
            await until(
                pilot,
                lambda: "api-auth: succeeded" in screen_text(pilot),
                within=5,
                what="the status line",
            )
            assert app.bells == 1
            await until(
                pilot,
                lambda: desktop.exists() and desktop.read_text(),
                within=5,
                what="the desktop notice",
            )

    asyncio.run(scenario())
    assert desktop.read_text().splitlines() == [
        f"--app-name=corral|corral: {live.run_id}|api-auth: succeeded|"
    ]


def test_i_sends_a_message_to_an_agent_that_reads_them_and_only_to_it(repo: Path) -> None:
    rundir = RunDir(runs_root(repo / ".git") / "20231114-221320-abcdef")
    agents = [
        ev.AgentSummary(id="claude", kind="coding", command=["claude"], input_format="stream-json"),
        ev.AgentSummary(id="plain", kind="coding", command=["sh"]),
    ]
    events: list[ev.EventBase] = [
        started(rundir.run_id, repo, agents, this_engine(), "a" * 40),
        *launch("claude", 1, 1, 101),
        *launch("plain", 1, 2, 102),
    ]
    write_events(rundir, events)
    engine = RecordingEngine(rundir.socket)

    async def scenario() -> None:
        app = CorralApp(repo, rundir.run_id, clock=frozen_clock)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(
                pilot,
                lambda: isinstance(app.screen, DashboardScreen) and app.screen.draws > 0,
                what="the dashboard",
            )
            screen = app.screen
            assert isinstance(screen, DashboardScreen)
            assert screen.agents.current_key == "claude"
            await until(pilot, lambda: "Message" in screen_text(pilot), what="the i key shown")
            await pilot.press("j")  # plain: takes no input, so no key
            await until(pilot, lambda: "Message" not in screen_text(pilot), what="i hidden")
            await pilot.press("i")
            await pilot.pause(0.1)
            assert not isinstance(app.screen, AskScreen)
            await pilot.press("k", "i")
            await until(pilot, lambda: isinstance(app.screen, AskScreen), what="the message box")
            await pilot.press(*"add a test", "enter")
            await until(pilot, lambda: engine.requests, what="the input request")
            await until(
                pilot,
                lambda: any(n.message == "claude#1: message sent" for n in app._notifications),
                what="the toast",
            )

    asyncio.run(scenario())
    assert [(r["op"], r["agent"], r["text"]) for r in engine.requests] == [
        ("input", "claude", "add a test")
    ]
    assert engine.requests[0]["by"]
