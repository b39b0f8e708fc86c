"""Console tests: a fixed time zone (the event tail shows wall-clock times), no user keymap, and
a helper that waits for a condition while the app keeps running."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from corral.core.runs.rundir import RunDir
from corral.core.runtime.procfs import is_same_process
from corral.tui.app import CorralApp
from corral.tui.screens.dashboard import DashboardScreen
from tests.core.engine_helpers import corral, only_run, state_of, write_plan


@pytest.fixture(autouse=True)
def _console_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("NO_COLOR", raising=False)
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


async def until(
    pilot: Pilot[Any],
    condition: Callable[[], object],
    *,
    within: float = 20.0,
    what: str = "it",
) -> None:
    """Let the app run until `condition()` holds; fail naming `what` at the deadline."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await pilot.pause(0.05)


def screen_text(pilot: Pilot[Any]) -> str:
    """What the terminal shows now, as plain text lines."""
    strips = pilot.app.screen._compositor.render_strips()
    return "\n".join("".join(segment.text for segment in strip) for strip in strips)


@pytest.fixture
def engines() -> Iterator[list[RunDir]]:
    """Runs started by a test; their engines are stopped (SIGTERM, agents too) at the end."""
    started: list[RunDir] = []
    yield started
    for rundir in started:
        engine = state_of(rundir).engine
        if engine is None or not is_same_process(engine.pid, engine.start_time):
            continue
        os.kill(engine.pid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while is_same_process(engine.pid, engine.start_time) and time.monotonic() < deadline:
            time.sleep(0.05)


def start_detached(
    repo: Path, tmp_path: Path, body: str, engines: list[RunDir], header: str = ""
) -> RunDir:
    """`corral run PLAN --detach` of the agents in `body` (up to 10 at once, no success needed);
    the run is added to `engines`, so the fixture stops its engine at the end."""
    plan = write_plan(tmp_path, body, header="min_success = 0\nmax_parallel = 10\n" + header)
    detached = corral(repo, "run", str(plan), "--detach")
    assert detached.returncode == 0, detached.stderr
    rundir = only_run(repo)
    engines.append(rundir)
    return rundir


def on_screen(app: CorralApp, agent: str, column: str) -> str:
    """The text of `agent`'s `column` cell on the run's dashboard, once it is the screen shown
    (runs list, then dashboard), else ""."""
    screen = app.screen_stack[2] if len(app.screen_stack) > 2 else None
    if not isinstance(screen, DashboardScreen):
        return ""
    row = screen.agents.cells.get(agent)
    return row[column].plain if row is not None else ""
