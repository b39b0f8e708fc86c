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
from tests.core.engine_helpers import state_of


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
