"""The console driven by keys against fixed logs: routing, keys, help, palette, filter, dialogs,
read-only mode, following appended events, and the control requests it sends (to a real socket)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from textual.command import CommandPalette
from textual.message import Message

from corral.core.log import EventWriter
from corral.core.log import events as ev
from corral.core.runs.rundir import RunDir
from corral.tui.app import CorralApp
from corral.tui.bridge import RunEvents, RunLoaded
from corral.tui.screens.agent import AgentScreen
from corral.tui.screens.dashboard import DashboardScreen
from corral.tui.screens.dialogs import AskScreen, ConfirmScreen
from corral.tui.screens.help import CommandLogScreen, HelpScreen
from corral.tui.screens.runs import RunsScreen
from tests.tui.conftest import screen_text, until
from tests.tui.synthetic import NOW, at, frozen_clock, make_live_run


class FakeEngine:
    """A real Unix socket that answers like the engine and records every request."""

    def __init__(self, path: Path) -> None:
        import socket

        self.requests: list[dict[str, Any]] = []
        path.parent.mkdir(parents=True, exist_ok=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen()
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                request = json.loads(conn.makefile().readline())
                self.requests.append(request)
                data = {"agent": request.get("agent"), "was": "running", "attempt": 2}
                conn.sendall(json.dumps({"ok": True, "data": data}).encode() + b"\n")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def live(repo: Path) -> RunDir:
    return make_live_run(repo)


@pytest.fixture
def engine(live: RunDir) -> Iterator[FakeEngine]:
    fake = FakeEngine(live.socket)
    yield fake
    fake.close()


def focused_id(app: CorralApp) -> str | None:
    return app.focused.id if app.focused is not None else None


def dialog_text(app: CorralApp) -> str:
    screen = app.screen
    assert isinstance(screen, ConfirmScreen)
    return f"{screen.title_text}\n{screen.body}"


def dashboard_ready(app: CorralApp) -> bool:
    screen = app.screen
    return isinstance(screen, DashboardScreen) and screen.draws > 0


def test_runs_list_opens_a_run_and_esc_comes_back(repo: Path, live: RunDir) -> None:
    async def scenario() -> None:
        app = CorralApp(repo, clock=frozen_clock)
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, RunsScreen) and app.screen.runs)
            assert live.run_id in screen_text(pilot)
            await pilot.press("enter")
            await until(pilot, lambda: dashboard_ready(app), what="the dashboard")
            assert "api-auth" in screen_text(pilot)
            await pilot.press("escape")
            assert isinstance(app.screen, RunsScreen)
            assert app.session is None

    asyncio.run(scenario())


def test_keys_move_filter_help_and_command_log(repo: Path, live: RunDir) -> None:
    async def scenario() -> None:
        app = CorralApp(repo, live.run_id, clock=frozen_clock)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: dashboard_ready(app), what="the dashboard")
            screen = app.screen
            assert isinstance(screen, DashboardScreen)
            assert screen.agents.current_key == "api-auth"
            await pilot.press("j", "j")
            assert screen.agents.current_key == "docs"
            await pilot.press("G")
            assert screen.agents.current_key == "flaky"
            await pilot.press("g", "k")
            assert screen.agents.current_key == "api-auth"
            await pilot.press("2")
            assert focused_id(app) == "locks"
            await pilot.press("1")
            assert focused_id(app) == "agents"

            await pilot.press("slash")
            assert isinstance(app.screen, AskScreen)
            await pilot.press(*"audit", "enter")
            assert list(screen.agents.cells) == ["lint", "sec-scan", "perf"]
            await pilot.press("slash", "ctrl+u", "enter")  # an empty filter shows everything
            assert len(screen.agents.cells) == 9

            await pilot.press("question_mark")
            assert isinstance(app.screen, HelpScreen)
            ids = {row[2] for row in app.screen.rows}
            assert {"dashboard.kill", "dashboard.break_lock", "app.quit", "app.palette"} <= ids
            await pilot.press("escape")

            await pilot.press("at")
            assert isinstance(app.screen, CommandLogScreen)
            assert any(
                "run   api-auth#1: sh -c work-on api-auth" in line for line in app.screen.lines
            )
            assert any("kill  flaky by alice" in line for line in app.screen.lines)
            await pilot.press("escape")

            await pilot.press("g", "enter")
            assert isinstance(app.screen, AgentScreen)
            assert app.screen.agent_id == "api-auth"
            await pilot.press("4")
            await pilot.press("escape")
            assert isinstance(app.screen, DashboardScreen)

    asyncio.run(scenario())


def test_palette_reaches_every_command(repo: Path, live: RunDir) -> None:
    async def scenario() -> None:
        app = CorralApp(repo, live.run_id, clock=frozen_clock)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: dashboard_ready(app), what="the dashboard")
            titles = {command.title for command in app.get_system_commands(app.screen)}
            # an action on an agent names it: the one under the cursor, or the marked ones
            named = {"Kill agent api-auth", "Retry agent api-auth", "Mark agent api-auth"}
            assert named | {"Review", "Filter", "Help", "Quit", "@ log"} <= titles
            await pilot.press("j", "space", "j", "space")
            titles = {command.title for command in app.get_system_commands(app.screen)}
            assert "Kill agents api-billing, docs" in titles
            await pilot.press("space", "k", "space")
            await pilot.press("colon")
            await until(pilot, lambda: isinstance(app.screen, CommandPalette), what="the palette")
            await pilot.press(*"break")
            await pilot.pause(0.3)
            assert "Break lock" in screen_text(pilot)
            await pilot.press("escape")
            await until(
                pilot, lambda: isinstance(app.screen, DashboardScreen), what="the dashboard"
            )
            await pilot.press("ctrl+p")
            await until(pilot, lambda: isinstance(app.screen, CommandPalette), what="the palette")

    asyncio.run(scenario())


def test_kill_confirms_naming_targets_and_counts(
    repo: Path, live: RunDir, engine: FakeEngine
) -> None:
    async def scenario() -> None:
        app = CorralApp(repo, live.run_id, clock=frozen_clock)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: dashboard_ready(app), what="the dashboard")
            screen = app.screen
            assert isinstance(screen, DashboardScreen)
            await pilot.press("space", "j", "space")  # mark api-auth and api-billing
            assert screen.agents.marked == {"api-auth", "api-billing"}
            await pilot.press("x")
            await until(
                pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation"
            )
            text = dialog_text(app)
            assert "Kill 2 agents?" in text
            assert "api-auth (running, attempt 1)" in text
            assert "api-billing (running, attempt 1)" in text
            await pilot.press("n")
            await pilot.pause(0.1)
            assert engine.requests == []
            await pilot.press("x")
            await until(
                pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation"
            )
            await pilot.press("y")
            await until(pilot, lambda: len(engine.requests) == 2, what="two kill requests")
            assert [(r["op"], r["agent"]) for r in engine.requests] == [
                ("kill", "api-auth"),
                ("kill", "api-billing"),
            ]

    asyncio.run(scenario())


def test_break_lock_asks_why_and_names_holder_token_and_waiters(
    repo: Path, live: RunDir, engine: FakeEngine
) -> None:
    async def scenario() -> None:
        app = CorralApp(repo, live.run_id, clock=frozen_clock)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: dashboard_ready(app), what="the dashboard")
            screen = app.screen
            assert isinstance(screen, DashboardScreen)
            await pilot.press("2", "j")
            assert screen.locks.current_key == "db-schema"
            await pilot.press("b")
            await until(pilot, lambda: isinstance(app.screen, AskScreen), what="the reason prompt")
            await pilot.press("enter")  # empty: refused, the prompt stays
            assert isinstance(app.screen, AskScreen)
            assert "a reason is required" in screen_text(pilot)
            await pilot.press(*"stuck", "enter")
            await until(
                pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation"
            )
            text = dialog_text(app)
            assert "Break lock db-schema held by migrate?" in text
            assert "migrate#2 (running), token 7" in text
            assert "1 waiter(s)" in text
            await pilot.press("y")
            await until(pilot, lambda: engine.requests, what="the lock_break request")
            request = engine.requests[0]
            assert (request["op"], request["lock"], request["reason"]) == (
                "lock_break",
                "db-schema",
                "stuck",
            )
            assert request["expect_token"] == 7

    asyncio.run(scenario())


def test_read_only_dims_dangerous_actions(repo: Path, live: RunDir, engine: FakeEngine) -> None:
    async def scenario() -> None:
        app = CorralApp(repo, live.run_id, clock=frozen_clock, read_only=True)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: dashboard_ready(app), what="the dashboard")
            active = {b.binding.id: b.enabled for b in app.screen.active_bindings.values()}
            assert active["dashboard.kill"] is False
            assert active["dashboard.retry"] is False
            assert active["dashboard.open"] is True
            await pilot.press("x")
            await pilot.pause(0.1)
            assert isinstance(app.screen, DashboardScreen)
            assert "READ-ONLY" in screen_text(pilot)
            assert engine.requests == []

    asyncio.run(scenario())


def test_quit_asks_while_the_run_is_live(repo: Path, live: RunDir) -> None:
    async def scenario() -> None:
        app = CorralApp(repo, live.run_id, clock=frozen_clock)
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: dashboard_ready(app), what="the dashboard")
            await pilot.press("q")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
            assert "the engine and its agents go on" in screen_text(pilot)
            await pilot.press("n")
            assert isinstance(app.screen, DashboardScreen)
            await pilot.press("q")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
            await pilot.press("y")
            await until(pilot, lambda: not app.is_running, what="the app to exit")

    asyncio.run(scenario())


def test_appended_events_reach_the_screen(repo: Path, live: RunDir) -> None:
    seen: list[type[Message]] = []

    async def scenario() -> None:
        app = CorralApp(repo, live.run_id, clock=frozen_clock)
        async with app.run_test(
            size=(120, 40), message_hook=lambda m: seen.append(type(m))
        ) as pilot:
            await until(pilot, lambda: dashboard_ready(app), what="the dashboard")
            screen = app.screen
            assert isinstance(screen, DashboardScreen)
            writer, _ = await EventWriter.open(live.events)
            await writer.append(
                ev.AgentHeartbeat(
                    ts=at(299),
                    agent="api-billing",
                    attempt=1,
                    source="beat",
                    progress=0.9,
                    message="almost",
                )
            )
            await writer.append(
                ev.AgentFinished(
                    ts=NOW, agent="api-auth", attempt=1, outcome="succeeded", exit_code=0
                )
            )
            await writer.close()
            await until(
                pilot,
                lambda: (
                    "succeeded" in screen.agents.cells["api-auth"]["state"].plain
                    and "90% almost" in screen.agents.cells["api-billing"]["progress"].plain
                ),
                within=5,
                what="the new events on screen",
            )
            await until(
                pilot, lambda: "api-auth#1 succeeded" in screen_text(pilot), what="the tail"
            )

    asyncio.run(scenario())
    assert RunLoaded in seen
    assert RunEvents in seen


def test_progress_stays_on_screen_while_output_and_cpu_keep_the_agent_alive(
    repo: Path, live: RunDir
) -> None:
    """Liveness updates the heartbeat cell; the progress cell keeps what the agent last set."""

    async def scenario() -> None:
        app = CorralApp(repo, live.run_id, clock=frozen_clock)
        async with app.run_test(size=(160, 40)) as pilot:
            await until(pilot, lambda: dashboard_ready(app), what="the dashboard")
            screen = app.screen
            assert isinstance(screen, DashboardScreen)
            writer, _ = await EventWriter.open(live.events)
            await writer.append(
                ev.AgentHeartbeat(
                    ts=at(297),
                    agent="api-billing",
                    attempt=1,
                    source="beat",
                    progress=0.9,
                    message="almost",
                )
            )
            liveness: list[tuple[float, ev.HeartbeatSource]] = [(298, "output"), (299, "cpu")]
            for when, source in liveness:
                await writer.append(
                    ev.AgentHeartbeat(ts=at(when), agent="api-billing", attempt=1, source=source)
                )
            await writer.close()
            cells = screen.agents.cells
            await until(
                pilot,
                lambda: "cpu" in cells["api-billing"]["beat"].plain,
                within=5,
                what="the cpu sign of life on screen",
            )
            assert "90% almost" in cells["api-billing"]["progress"].plain

    asyncio.run(scenario())


def test_agent_detail_follows_output_inert(repo: Path, tmp_path: Path) -> None:
    root = tmp_path / "run"
    rundir = make_live_run(repo, root=str(root))
    log = root / "agents" / "api-auth" / "1" / "output.log"
    log.parent.mkdir(parents=True)
    log.write_bytes(b"hello \x1b[31mred\x1b[0m\n\x1b]0;evil title\x07progress 10%\rprogress 100%\n")

    async def scenario() -> None:
        app = CorralApp(repo, rundir.run_id, clock=frozen_clock)
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: dashboard_ready(app), what="the dashboard")
            await pilot.press("enter")
            screen = app.screen
            assert isinstance(screen, AgentScreen)
            await until(pilot, lambda: screen.output_lines >= 3, what="the output")
            with log.open("ab") as more:
                more.write(b"later line\n")
            await until(
                pilot, lambda: "later line" in screen_text(pilot), within=5, what="new output"
            )
            lines = list(screen.output.lines)
            assert "hello red" in lines
            assert "progress 100%" in lines
            assert not any("\x1b" in line for line in lines)

    asyncio.run(scenario())


def test_keys_are_remapped_by_binding_id(repo: Path, live: RunDir, tmp_path: Path) -> None:
    config = tmp_path / "config" / "corral"
    config.mkdir(parents=True)
    (config / "keymap.toml").write_text('[keys]\n"dashboard.kill" = "K"\n')

    async def scenario() -> None:
        app = CorralApp(repo, live.run_id, clock=frozen_clock)
        async with app.run_test(size=(120, 40)) as pilot:
            await until(pilot, lambda: dashboard_ready(app), what="the dashboard")
            keys = {key: b.binding.id for key, b in app.screen.active_bindings.items()}
            assert keys.get("K") == "dashboard.kill"
            assert "x" not in keys

    asyncio.run(scenario())
