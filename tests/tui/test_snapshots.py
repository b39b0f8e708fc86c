"""Pixels of the dashboard, the review and `?` help at 80x24, 120x40 and 200x50, in colour and
with `NO_COLOR`, from fixed logs and a frozen clock.

Update after an intended change with `pytest tests/tui/test_snapshots.py --snapshot-update`
and look at the report before committing the SVGs."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from corral.core.runs.rundir import RunDir, runs_root
from corral.tui.app import CorralApp
from corral.tui.screens.dashboard import DashboardScreen
from corral.tui.screens.help import HelpScreen
from corral.tui.screens.review import ReviewScreen
from tests.tui.conftest import until
from tests.tui.synthetic import (
    dead_engine,
    frozen_clock,
    make_live_run,
    review_run_events,
    write_events,
    write_report,
)

SnapCompare = Callable[..., bool]
SIZES = [(80, 24), (120, 40), (200, 50)]
COLOURS = ["colour", "no_color"]


@pytest.fixture(params=COLOURS)
def colour(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Textual reads NO_COLOR as the app is made: failures must still stand out without it."""
    if request.param == "no_color":
        monkeypatch.setenv("NO_COLOR", "1")
    return str(request.param)


def settled(
    app: CorralApp, kind: type[DashboardScreen] | type[ReviewScreen]
) -> Callable[[Pilot[Any]], Awaitable[None]]:
    async def wait(pilot: Pilot[Any]) -> None:
        def drawn() -> bool:
            screen = app.screen
            if not isinstance(screen, kind) or screen.draws == 0:
                return False
            return not isinstance(screen, ReviewScreen) or screen.loaded is not None

        await until(pilot, drawn, what=kind.__name__)
        await pilot.pause(0.3)

    return wait


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_dashboard(
    snap_compare: SnapCompare, repo: Path, size: tuple[int, int], colour: str
) -> None:
    run = make_live_run(repo)
    app = CorralApp(repo, run.run_id, clock=frozen_clock)
    assert snap_compare(app, terminal_size=size, run_before=settled(app, DashboardScreen))


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_dashboard_failures_first(
    snap_compare: SnapCompare, repo: Path, size: tuple[int, int], colour: str
) -> None:
    run = make_live_run(repo)
    app = CorralApp(repo, run.run_id, clock=frozen_clock)

    async def failures_first(pilot: Pilot[Any]) -> None:
        await settled(app, DashboardScreen)(pilot)
        await pilot.press("f")
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=size, run_before=failures_first)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_help(snap_compare: SnapCompare, repo: Path, size: tuple[int, int], colour: str) -> None:
    run = make_live_run(repo)
    app = CorralApp(repo, run.run_id, clock=frozen_clock)

    async def help_open(pilot: Pilot[Any]) -> None:
        await settled(app, DashboardScreen)(pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen), what="help")
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=size, run_before=help_open)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_review(snap_compare: SnapCompare, repo: Path, size: tuple[int, int], colour: str) -> None:
    rundir = RunDir(runs_root(repo / ".git") / "20231114-221320-abcdef")
    rundir.create()
    report = write_report(rundir.path / "report.json")
    events = review_run_events(repo, report, dead_engine(), "a1b2c3d4e5" * 4, "f00dfeed42" * 4)
    write_events(rundir, events)
    app = CorralApp(repo, rundir.run_id, clock=frozen_clock)
    assert snap_compare(app, terminal_size=size, run_before=settled(app, ReviewScreen))
