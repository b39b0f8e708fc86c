"""The console against a real engine (`corral run PLAN --detach` in a temporary repository):
the keys a person presses, and the event log recording each decision."""

from __future__ import annotations

import asyncio
import getpass
import importlib.util
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from corral.core.log import events as ev
from corral.core.runs.rundir import RunDir
from corral.core.runtime.procfs import is_same_process
from corral.tui.app import CorralApp
from corral.tui.screens.agent import AgentScreen
from corral.tui.screens.dashboard import DashboardScreen
from corral.tui.screens.dialogs import AskScreen, ConfirmScreen
from tests.core.engine_helpers import agent_block, corral, events_of, only_run, state_of, write_plan
from tests.tui.conftest import on_screen, screen_text, start_detached, until

pytestmark = pytest.mark.slow
PY = shlex.quote(sys.executable)
LOCK = f"{PY} -m corral.core.cli lock"


def agent_state(app: CorralApp, agent: str) -> str:
    session = app.session
    if session is None or session.feed is None:
        return ""
    found = session.feed.state.agents.get(agent)
    return found.state if found is not None else ""


def test_move_open_kill_and_retry(repo: Path, tmp_path: Path, engines: list[RunDir]) -> None:
    alpha = ["sh", "-c", "echo working; echo more >> README.md; echo new > notes.txt; sleep 600"]
    body = agent_block("alpha", alpha) + agent_block("beta", ["sleep", "600"])
    rundir = start_detached(repo, tmp_path, body, engines)
    me = getpass.getuser()

    async def scenario() -> None:
        app = CorralApp(repo, rundir.run_id)
        async with app.run_test(size=(120, 36)) as pilot:
            await until(
                pilot,
                lambda: (
                    agent_state(app, "alpha") == "running" and agent_state(app, "beta") == "running"
                ),
                what="both agents running",
            )
            await until(
                pilot, lambda: "running" in on_screen(app, "beta", "state"), what="the table"
            )
            dashboard = app.screen
            assert isinstance(dashboard, DashboardScreen)
            await pilot.press("j")
            assert dashboard.agents.current_key == "beta"
            await pilot.press("k")
            assert dashboard.agents.current_key == "alpha"

            await pilot.press("enter")
            detail = app.screen
            assert isinstance(detail, AgentScreen)
            await until(pilot, lambda: "working" in detail.output.lines, what="alpha's output")
            await pilot.press("2")
            await until(
                pilot,
                lambda: "+more" in detail.diff_text,
                what="the worktree diff",
            )
            assert "notes.txt" in detail.diff_text
            assert "+more" in screen_text(pilot)
            await pilot.press("escape")
            assert app.screen is dashboard

            await pilot.press("x")
            await until(
                pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the kill prompt"
            )
            confirm = app.screen
            assert isinstance(confirm, ConfirmScreen)
            assert confirm.title_text == "Kill agent alpha?"
            await pilot.press("y")
            await until(
                pilot, lambda: agent_state(app, "alpha") == "cancelled", what="alpha cancelled"
            )
            await until(
                pilot, lambda: "cancelled" in on_screen(app, "alpha", "state"), what="the cell"
            )

            await pilot.press("r")
            await until(
                pilot,
                lambda: (
                    agent_state(app, "alpha") == "running"
                    and on_screen(app, "alpha", "attempt") == "2"
                ),
                what="alpha's second attempt on screen",
            )

    asyncio.run(scenario())
    events = events_of(rundir)
    cancelled = [e for e in events if isinstance(e, ev.AgentCancelled)]
    assert [(e.agent, e.by) for e in cancelled] == [("alpha", me)]
    redriven = [e for e in events if isinstance(e, ev.AgentRedriven)]
    assert [(e.agent, e.by) for e in redriven] == [("alpha", me)]
    assert state_of(rundir).agents["beta"].state == "running", "the console never stops the rest"


def test_stop_the_run_with_a_confirmation_naming_what_runs(
    repo: Path, tmp_path: Path, engines: list[RunDir]
) -> None:
    """`S` on the dashboard asks first, naming the run and its running agents; yes stops every
    agent and the engine, recorded with who stopped it."""
    body = agent_block("alpha", ["sleep", "600"]) + agent_block("beta", ["sleep", "600"])
    rundir = start_detached(repo, tmp_path, body, engines)
    me = getpass.getuser()

    async def scenario() -> None:
        app = CorralApp(repo, rundir.run_id)
        async with app.run_test(size=(120, 36)) as pilot:
            await until(
                pilot,
                lambda: (
                    agent_state(app, "alpha") == "running" and agent_state(app, "beta") == "running"
                ),
                what="both agents running",
            )
            dashboard = app.screen
            assert isinstance(dashboard, DashboardScreen)
            await until(
                pilot, lambda: dashboard.check_action("stop_run", ()) is True, what="stop offered"
            )
            await pilot.press("S")
            await until(
                pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the stop prompt"
            )
            confirm = app.screen
            assert isinstance(confirm, ConfirmScreen)
            assert confirm.title_text == f"Stop run {rundir.run_id}?"
            assert "alpha, beta" in screen_text(pilot)
            await pilot.press("y")
            await until(
                pilot,
                lambda: app.session is not None and not app.session.engine_live,
                what="the engine to exit",
                within=30,
            )
            assert dashboard.check_action("stop_run", ()) is None, "nothing left to stop"

    asyncio.run(scenario())
    stopped = [e for e in events_of(rundir) if isinstance(e, ev.EngineStopped)]
    assert [(e.by, e.reason) for e in stopped] == [
        (me, f"stopped by {me}: stopped from the console")
    ]
    state = state_of(rundir)
    assert state.status == "stopped"
    assert {state.agents[a].state for a in ("alpha", "beta")} == {"killed"}


def test_p_pauses_and_unpauses_an_agent_shown_as_paused(
    repo: Path, tmp_path: Path, engines: list[RunDir]
) -> None:
    """`p` on the dashboard freezes the agent under the cursor (its state cell says paused);
    on its detail screen the footer offers Unpause, and `p` lets it go on."""
    rundir = start_detached(repo, tmp_path, agent_block("alpha", ["sleep", "600"]), engines)
    me = getpass.getuser()

    async def scenario() -> None:
        app = CorralApp(repo, rundir.run_id)
        async with app.run_test(size=(120, 36)) as pilot:
            await until(pilot, lambda: agent_state(app, "alpha") == "running", what="running")
            dashboard = app.screen
            assert isinstance(dashboard, DashboardScreen)
            await until(
                pilot, lambda: dashboard.check_action("pause", ()) is True, what="pause offered"
            )
            assert dashboard.check_action("unpause", ()) is False
            await pilot.press("p")
            await until(
                pilot, lambda: "paused" in on_screen(app, "alpha", "state"), what="paused cell"
            )
            await pilot.press("enter")
            detail = app.screen
            assert isinstance(detail, AgentScreen)
            await until(
                pilot, lambda: detail.check_action("unpause", ()) is True, what="unpause offered"
            )
            assert detail.check_action("pause", ()) is False
            await until(pilot, lambda: "Unpause" in screen_text(pilot), what="the footer key")
            await pilot.press("p")
            await until(
                pilot, lambda: detail.check_action("pause", ()) is True, what="running again"
            )

    asyncio.run(scenario())
    events = events_of(rundir)
    assert [e.by for e in events if isinstance(e, ev.AgentPaused)] == [me]
    assert [e.by for e in events if isinstance(e, ev.AgentResumed)] == [me]
    assert state_of(rundir).agents["alpha"].paused_by is None


def test_break_a_lock_with_confirmation(repo: Path, tmp_path: Path, engines: list[RunDir]) -> None:
    holder = ["sh", "-c", f"{LOCK} acquire db --ttl 60 --reason 'migrating' && sleep 600"]
    waiter = [
        "sh",
        "-c",
        "sleep 1; " + f"{LOCK} acquire db --ttl 60 --wait 120 && echo got-it && sleep 600",
    ]
    rundir = start_detached(
        repo, tmp_path, agent_block("holder", holder) + agent_block("waiter", waiter), engines
    )

    async def scenario() -> None:
        app = CorralApp(repo, rundir.run_id)
        async with app.run_test(size=(120, 36)) as pilot:

            def lock_shown() -> bool:
                session = app.session
                lock = session.feed.state.locks.get("db") if session and session.feed else None
                return lock is not None and lock.holder == "holder" and len(lock.waiters) == 1

            await until(pilot, lock_shown, within=40, what="holder holding db with waiter in line")
            dashboard = app.screen
            assert isinstance(dashboard, DashboardScreen)
            await pilot.pause(0.3)
            await pilot.press("2")
            assert dashboard.locks.current_key == "db"
            await pilot.press("b")
            await until(pilot, lambda: isinstance(app.screen, AskScreen), what="the reason prompt")
            await pilot.press(*"holder is stuck", "enter")
            await until(
                pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation"
            )
            confirm = app.screen
            assert isinstance(confirm, ConfirmScreen)
            assert confirm.title_text == "Break lock db held by holder?"
            assert "1 waiter(s)" in str(confirm.body)
            await pilot.press("y")

            def handed_over() -> bool:
                session = app.session
                lock = session.feed.state.locks.get("db") if session and session.feed else None
                return lock is not None and lock.holder == "waiter"

            await until(pilot, handed_over, what="the lock handed to the waiter")
            await until(
                pilot,
                lambda: "waiter#1" in dashboard.locks.cells["db"]["holder"].plain,
                what="the cell",
            )

    asyncio.run(scenario())
    broken = [e for e in events_of(rundir) if isinstance(e, ev.LockBroken)]
    assert [(e.lock, e.agent, e.by, e.reason) for e in broken] == [
        ("db", "holder", getpass.getuser(), "holder is stuck")
    ]


def test_ten_agents_states_lock_and_conflict_within_a_deadline(
    repo: Path, tmp_path: Path, engines: list[RunDir]
) -> None:
    body = "".join(agent_block(f"ok-{n}", ["true"]) for n in range(3))
    body += agent_block("fails", ["sh", "-c", "exit 3"])
    body += "".join(agent_block(f"busy-{n}", ["sleep", "600"]) for n in range(3))
    body += agent_block("locker", ["sh", "-c", f"{LOCK} acquire db --ttl 120 && sleep 600"])
    for side in ("left", "right"):
        edit = f"echo {side} > README.md; git add -A; sleep 600"
        body += agent_block(f"edit-{side}", ["sh", "-c", edit])
    watch = importlib.util.find_spec("corral.core.engine.conflict_watch") is not None
    rundir = start_detached(
        repo, tmp_path, body, engines, 'conflict_interval = "500ms"\n' if watch else ""
    )
    expected_running = {"busy-0", "busy-1", "busy-2", "locker", "edit-left", "edit-right"}

    async def scenario() -> None:
        app = CorralApp(repo, rundir.run_id)
        started = time.monotonic()
        async with app.run_test(size=(160, 48)) as pilot:

            def settled() -> bool:
                log = state_of(rundir)
                if len(log.agents) != 10 or any(
                    log.agents[a].state != "running" for a in expected_running
                ):
                    return False
                if log.agents["fails"].state not in ("failed", "dead_lettered"):
                    return False
                if any(log.agents[f"ok-{n}"].state != "succeeded" for n in range(3)):
                    return False
                if watch and "edit-left+edit-right" not in log.conflicts:
                    return False  # the live conflict watch predicts the two README edits
                lock = log.locks.get("db")
                return lock is not None and lock.holder == "locker"

            await until(pilot, settled, within=60, what="the run to settle in its log")

            def screen_matches_log() -> bool:
                log = state_of(rundir)
                for agent in log.agents.values():
                    if agent.state not in on_screen(app, agent.id, "state"):
                        return False
                dashboard = app.screen_stack[2]
                assert isinstance(dashboard, DashboardScreen)
                lock_row = dashboard.locks.cells.get("db")
                if lock_row is None or "locker#1" not in lock_row["holder"].plain:
                    return False
                return all(key in dashboard.conflicts.cells for key in log.conflicts)

            await until(pilot, screen_matches_log, within=5, what="the dashboard to match the log")
            text = screen_text(pilot)
            assert "locker#1" in text
            assert "dead_lettered" in text or "failed" in text
            if watch:
                assert "edit-left ⇄ edit-right" in text
                assert "◇ predicted" in text
            assert time.monotonic() - started < 60

    asyncio.run(scenario())


def test_start_a_run_from_the_runs_list(repo: Path, tmp_path: Path, engines: list[RunDir]) -> None:
    plan = write_plan(tmp_path, agent_block("worker", ["sleep", "600"]))

    async def scenario() -> None:
        app = CorralApp(repo)
        async with app.run_test(size=(120, 36)) as pilot:
            await until(pilot, lambda: "no runs yet" in screen_text(pilot), what="the empty list")
            await pilot.press("n")
            await until(pilot, lambda: isinstance(app.screen, AskScreen), what="the plan prompt")
            await pilot.press(*str(plan), "enter")
            await until(
                pilot, lambda: app.session is not None, within=40, what="the new run attached"
            )
            engines.append(only_run(repo))
            await until(
                pilot, lambda: agent_state(app, "worker") == "running", within=40, what="the worker"
            )
            await until(
                pilot, lambda: "running" in on_screen(app, "worker", "state"), what="the cell"
            )

    asyncio.run(scenario())
    engine = state_of(only_run(repo)).engine
    assert engine is not None
    assert is_same_process(engine.pid, engine.start_time), "the engine runs in its own process"


def test_n_picks_a_plan_of_the_repository_and_r_runs_it_again(
    repo: Path, tmp_path: Path, engines: list[RunDir]
) -> None:
    """`n` lists the repository's *.toml that hold agents (not pyproject.toml); picking one
    starts it. `R` on that run starts the same plan again after a confirmation naming it; once
    the file is edited, `R` says the plan is gone rather than start another."""
    from corral.core.runs.rundir import list_runs
    from corral.tui.screens.pick import PickScreen
    from corral.tui.screens.runs import RunsScreen

    plan = write_plan(tmp_path, agent_block("worker", ["true"]), header="min_success = 0\n")
    (repo / "plans").mkdir()
    (repo / "plans" / "quick.toml").write_text(plan.read_text())
    (repo / "pyproject.toml").write_text("[project]\nname = 'x'\n")

    def runs() -> list[RunDir]:
        found = list_runs(repo / ".git")
        engines[:] = found
        return found

    def finished(count: int) -> bool:
        found = runs()
        return len(found) == count and all(
            state_of(r).status == "finished" for r in found if r.events.exists()
        )

    async def back_to_runs(pilot: Any) -> None:
        """A finished run opens on its review: esc to the dashboard, esc to the list."""
        app = pilot.app
        await until(pilot, lambda: not isinstance(app.screen, RunsScreen), what="the run shown")
        for _ in range(3):
            if isinstance(app.screen, RunsScreen):
                return
            await pilot.press("escape")
            await pilot.pause(0.2)
        await until(pilot, lambda: isinstance(app.screen, RunsScreen), what="the runs list")

    async def scenario() -> None:
        app = CorralApp(repo)
        async with app.run_test(size=(120, 36)) as pilot:
            await until(pilot, lambda: "no runs yet" in screen_text(pilot), what="the empty list")
            await pilot.press("n")
            await until(pilot, lambda: isinstance(app.screen, PickScreen), what="the plan list")
            picker = app.screen
            assert isinstance(picker, PickScreen)
            assert picker.choices == ["plans/quick.toml"]
            await pilot.press("enter")
            await until(pilot, lambda: finished(1), within=60, what="the first run")
            await until(pilot, lambda: app.session is not None, what="the run attached")
            await back_to_runs(pilot)
            listing = app.screen
            assert isinstance(listing, RunsScreen)
            await until(pilot, lambda: listing.table.current_key is not None, what="a row")
            await pilot.press("R")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
            confirm = app.screen
            assert isinstance(confirm, ConfirmScreen)
            assert confirm.title_text == "Run plans/quick.toml again?"
            await pilot.press("y")
            await until(pilot, lambda: finished(2), within=60, what="the second run")
            await until(pilot, lambda: app.session is not None, what="the run attached")
            await back_to_runs(pilot)
            (repo / "plans" / "quick.toml").write_text(plan.read_text() + "\n# edited\n")
            await pilot.press("R")

            def told_gone() -> bool:
                return any("any more" in note.message for note in app._notifications)

            await until(pilot, told_gone, what="the plan is gone notice")
            assert len(runs()) == 2, "nothing was started"

    asyncio.run(scenario())
    assert len(runs()) == 2


def test_retry_on_a_finished_run_resumes_its_engine_as_corral_retry_does(
    repo: Path, tmp_path: Path, engines: list[RunDir], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run is over and no engine listens: `r` resumes the engine with the retry, and the
    agent gets the environment the run started with, not the console's."""
    probe = [
        "sh",
        "-c",
        'echo "attempt $CORRAL_ATTEMPT tools=${DEMO_TOOLS:-unset}"; [ "$CORRAL_ATTEMPT" -gt 1 ]',
    ]
    plan = write_plan(tmp_path, agent_block("probe", probe), header="min_success = 0\n")
    monkeypatch.setenv("DEMO_TOOLS", "/opt/demo-tools")
    assert corral(repo, "run", str(plan), "--quiet").returncode == 0
    rundir = only_run(repo)
    engines.append(rundir)
    monkeypatch.delenv("DEMO_TOOLS")

    async def scenario() -> None:
        app = CorralApp(repo, rundir.run_id)
        async with app.run_test(size=(120, 36)) as pilot:
            await until(pilot, lambda: agent_state(app, "probe") == "dead_lettered", what="load")
            await until(pilot, lambda: len(app.screen_stack) > 3, what="the review screen")
            await pilot.press("escape")
            await until(pilot, lambda: "dead" in on_screen(app, "probe", "state"), what="the row")
            await pilot.press("r")
            await until(
                pilot,
                lambda: agent_state(app, "probe") == "succeeded",
                within=30,
                what="attempt 2 to succeed",
            )
            # the engine the console started ends with the run, and is not left a zombie
            session = app.session
            assert session is not None
            await until(pilot, lambda: not session.engine_live, what="the engine to end")

    asyncio.run(scenario())
    log = rundir.output_log("probe", 2).read_text()
    assert "attempt 2 tools=/opt/demo-tools" in log
    retried = [e for e in events_of(rundir) if isinstance(e, ev.AgentRedriven)]
    assert [e.by for e in retried] == [getpass.getuser()]
