"""The console's notices (issue 13): an agent's end that happens while the console watches
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
from corral.core.runs.rundir import RunDir
from corral.tui.app import CorralApp
from corral.tui.screens.dashboard import DashboardScreen
from tests.tui.conftest import screen_text, until
from tests.tui.synthetic import NOW, at, frozen_clock, make_live_run


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
