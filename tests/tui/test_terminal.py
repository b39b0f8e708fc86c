"""A tty agent in the console (issue 15, item 1): its output.log's bytes drawn through a terminal
emulator (colours and cursor motion rendered, escapes never shown), `t` attaching full screen
with keys sent raw to the engine until ctrl+], and a read-only console that cannot type."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyte
import pytest
from textual.pilot import Pilot

from corral.core.runs.rundir import RunDir
from corral.tui import keys
from corral.tui.app import CorralApp
from corral.tui.screens.agent import AgentScreen
from corral.tui.screens.attach import AttachScreen
from corral.tui.screens.dashboard import DashboardScreen
from corral.tui.widgets.terminal import (
    BEHIND,
    TAIL,
    Terminal,
    TerminalView,
    line_segments,
    rich_colour,
    skip_ahead,
)
from tests.tui.conftest import screen_text, until
from tests.tui.recording_engine import RecordingEngine
from tests.tui.synthetic import frozen_clock
from tests.tui.tty_run import make_tty_run


@pytest.fixture
def tty_run(repo: Path, tmp_path: Path) -> RunDir:
    """A live run of one tty agent whose output.log holds colour and cursor motion."""
    return make_tty_run(repo, tmp_path)


def test_pyte_colours_become_rich_colours() -> None:
    assert rich_colour("red") == "red"
    assert rich_colour("brown") == "yellow"
    assert rich_colour("brightred") == "bright_red"
    assert rich_colour("ff8700") == "#ff8700"
    assert rich_colour("default") is None


def test_a_cell_holding_a_control_is_drawn_as_a_space() -> None:
    line = {0: pyte.screens.Char("a"), 1: pyte.screens.Char("\x9b"), 2: pyte.screens.Char("\u202e")}
    assert "".join(s.text for s in line_segments(line, 4, color=True, cursor_x=None)) == "a   "


def test_keys_are_the_bytes_a_terminal_sends() -> None:
    assert keys.key_bytes("h", "h") == "h"
    assert keys.key_bytes("enter", "\r") == "\r"
    assert keys.key_bytes("backspace", "\x08") == "\x7f"
    assert keys.key_bytes("up", None) == "\x1b[A"
    assert keys.key_bytes("ctrl+c", "\x03") == "\x03"
    assert keys.key_bytes("ctrl+d", None) == "\x04"
    assert keys.key_bytes("alt+b", "b") == "\x1bb"
    assert keys.key_bytes("tab", "\t") == "\t"
    assert keys.key_bytes("f24", None) is None
    assert keys.key_bytes("up", None, application_cursor=True) == "\x1bOA"
    assert keys.key_bytes("enter", "\r", application_cursor=True) == "\r"
    assert keys.pasted("ls", bracketed=True) == "\x1b[200~ls\x1b[201~"


def test_the_programs_modes_are_read_from_the_emulator() -> None:
    terminal = Terminal(10, 2)
    assert terminal.modes() == (False, False)
    terminal.feed(b"\x1b[?1h\x1b[?2004h")
    assert terminal.modes() == (True, True)


def test_the_output_tab_of_a_tty_agent_is_its_terminal_rendered(
    repo: Path, tty_run: RunDir
) -> None:
    async def scenario() -> None:
        app = CorralApp(repo, tty_run.run_id, clock=frozen_clock)
        async with app.run_test(size=(100, 30)) as pilot:
            await until(
                pilot,
                lambda: isinstance(app.screen, DashboardScreen) and app.screen.draws > 0,
                what="the dashboard",
            )
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, AgentScreen), what="agent detail")
            await until(pilot, lambda: "moved here" in screen_text(pilot), what="the terminal")
            shown = screen_text(pilot)
            assert "overwritten" in shown
            assert "red words and bold on blue" in shown
            assert "\x1b" not in shown
            assert "hostile" not in shown
            assert "aGk=" not in shown
            view = app.screen.query_one(TerminalView)
            rows = view.lines()
            assert rows[4] == " " * 9 + "moved here"  # cursor motion rendered, not printed
            assert rows[2] == "overwritten"
            assert "erased" not in shown
            styles = {seg.text: seg.style for seg in view.render_line(1) if seg.text.strip()}
            red = next(style for text, style in styles.items() if "red words" in text)
            assert red is not None
            assert red.color is not None
            assert red.color.name == "red"
            blue = next(style for text, style in styles.items() if "bold on blue" in text)
            assert blue is not None
            assert blue.bold
            assert blue.bgcolor is not None
            assert app.screen.check_action("attach", ()) is True  # `t` is offered

    asyncio.run(scenario())


def test_t_attaches_and_keys_go_raw_to_the_engine_until_ctrl_bracket(
    repo: Path, tty_run: RunDir
) -> None:
    engine = RecordingEngine(tty_run.socket)

    async def scenario() -> None:
        app = CorralApp(repo, tty_run.run_id, clock=frozen_clock)
        async with app.run_test(size=(100, 30)) as pilot:
            await until(
                pilot,
                lambda: isinstance(app.screen, DashboardScreen) and app.screen.draws > 0,
                what="the dashboard",
            )
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, AgentScreen), what="agent detail")
            await until(pilot, lambda: app.screen.check_action("attach", ()), what="the t key")
            await pilot.press("t")
            await until(pilot, lambda: isinstance(app.screen, AttachScreen), what="attached")
            await until(pilot, lambda: "moved here" in screen_text(pilot), what="the terminal")
            assert "ctrl+] detaches" in screen_text(pilot)
            await pilot.press("h", "i", "enter", "q", "up", "ctrl+c", "backspace")
            await until(pilot, lambda: engine.typed() == "hi\rq\x1b[A\x03\x7f", what="the keys")
            assert isinstance(app.screen, AttachScreen)  # q, ctrl+c went to the agent
            await until(
                pilot,
                lambda: any(r["op"] == "resize" for r in engine.requests),
                what="the size",
            )
            await pilot.press("ctrl+right_square_bracket")
            await until(pilot, lambda: isinstance(app.screen, AgentScreen), what="detached")

    asyncio.run(scenario())
    inputs = [r for r in engine.requests if r["op"] == "input"]
    assert all(r["agent"] == "shell" and r["raw"] is True and r["by"] for r in inputs)
    size = next(r for r in engine.requests if r["op"] == "resize")
    assert size["agent"] == "shell"
    assert size["cols"] == 100
    assert size["rows"] == 29


def test_a_read_only_console_watches_but_cannot_type(repo: Path, tty_run: RunDir) -> None:
    engine = RecordingEngine(tty_run.socket)

    async def scenario() -> None:
        app = CorralApp(
            repo,
            tty_run.run_id,
            clock=frozen_clock,
            read_only=True,
            attach_to="shell",
        )
        async with app.run_test(size=(80, 24)) as pilot:
            await until(pilot, lambda: isinstance(app.screen, AttachScreen), what="attached")
            await until(pilot, lambda: "moved here" in screen_text(pilot), what="the terminal")
            assert "read-only" in screen_text(pilot)
            await pilot.press("h", "i", "enter")
            await pilot.pause(0.3)
            await pilot.press("ctrl+right_square_bracket")
            await until(pilot, lambda: not app.is_running, what="the console to leave")

    asyncio.run(scenario())
    assert engine.requests == []


@pytest.mark.parametrize("colour", ["colour", "no_color"])
def test_attach_screen_snapshot_80x24(
    snap_compare: Callable[..., bool],
    repo: Path,
    tty_run: RunDir,
    colour: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if colour == "no_color":  # the agent's colours dropped; bold and reverse kept
        monkeypatch.setenv("NO_COLOR", "1")
    app = CorralApp(repo, tty_run.run_id, clock=frozen_clock, attach_to="shell")

    async def settled(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: "moved here" in screen_text(pilot), what="the terminal")
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=(80, 24), run_before=settled)


def test_a_view_far_behind_skips_to_a_line_start_in_the_logs_tail(tmp_path: Path) -> None:
    log = tmp_path / "output.log"
    log.write_bytes(b"x" * 10 + b"\n" + b"y\n" * (BEHIND // 2 + 1000))
    assert skip_ahead(log, log.stat().st_size - 100) is None  # close enough: read on
    skipped = skip_ahead(log, 0)
    assert skipped is not None
    assert skipped >= log.stat().st_size - TAIL
    assert log.read_bytes()[skipped - 1 : skipped] == b"\n"


def test_attaching_to_an_agent_the_run_lacks_says_so(repo: Path, tty_run: RunDir) -> None:
    async def scenario() -> None:
        app = CorralApp(repo, tty_run.run_id, clock=frozen_clock, attach_to="nobody")
        async with app.run_test(size=(100, 24)) as pilot:
            await until(
                pilot, lambda: "no agent nobody in this run" in screen_text(pilot), what="why"
            )

    asyncio.run(scenario())
