"""Attached to a tty agent, full screen: its terminal fills the screen and every key goes to it
through the engine (which records who typed what) until the detach key, named on the status line.
A read-only console watches only; resizing the view resizes the agent's terminal."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

from rich.text import Text
from textual import events, getters, work
from textual.app import ComposeResult
from textual.widgets import Static

from corral.core.operator.errors import OperatorError
from corral.tui import keys
from corral.tui.bridge import RunSession
from corral.tui.feed import RunFeed
from corral.tui.screens.base import RunScreen
from corral.tui.text import inert
from corral.tui.widgets.terminal import TerminalView


class AttachScreen(RunScreen):
    DEFAULT_CSS = """
    AttachScreen #attach-status { dock: bottom; height: 1; background: $panel; }
    AttachScreen TerminalView { height: 1fr; }
    """

    status = getters.query_one("#attach-status", Static)
    view = getters.query_one(TerminalView)

    def __init__(self, session: RunSession, agent_id: str, *, leave_app: bool = False) -> None:
        super().__init__(session, name="attach")
        self.agent_id = agent_id
        self.leave_app = leave_app
        """Opened by `corral attach`: detaching leaves the console for the shell."""
        self.typed: asyncio.Queue[str] = asyncio.Queue()
        self.sent: list[str] = []
        self.problem = ""
        """The engine's refusal of the last keys, shown until keys go through again."""
        self.situation = ""
        """Why the view may stay empty: no such agent, not started, not on a terminal."""
        self.client_id = secrets.token_hex(8)
        """This viewer, for the engine's one typist at a time."""

    @property
    def can_type(self) -> bool:
        return not self.session.read_only

    def compose(self) -> ComposeResult:
        yield TerminalView(self.log_path, color=not self.app.no_color)
        yield Static(self.status_text(), id="attach-status")

    def on_mount(self) -> None:
        super().on_mount()
        self.view.focus()
        if self.can_type:
            self.deliver()

    def log_path(self) -> Path | None:
        feed = self.session.feed
        agent = feed.state.agents.get(self.agent_id) if feed else None
        attempt = agent.current if agent is not None else None
        return Path(attempt.log_path) if attempt is not None and attempt.log_path else None

    def status_text(self) -> Text:
        text = Text(" ")
        text.append(f"attached to {inert(self.agent_id, limit=40)}", style="bold")
        text.append(f"  ·  {keys.DETACH_LABEL} detaches")
        if not self.can_type:
            text.append("  ·  read-only: watching, typing is off", style="bold reverse")
        for said in (self.situation, self.problem):
            if said:
                text.append("  ·  ")
                text.append(inert(said, limit=120), style="bold")
        return text

    def redraw(self, feed: RunFeed, now: float, *, since: int, ages: bool) -> None:
        """The terminal follows the log by itself; the status line says what stands in the way."""
        agent = feed.state.agents.get(self.agent_id)
        if agent is None:
            said = f"no agent {self.agent_id} in this run"
        elif agent.current is None:
            said = "not started yet: its terminal shows when it starts"
        elif not keys.is_tty(agent):
            said = "not on a terminal (tty = false): its output, and keys it may not read"
        else:
            said = ""
        if said != self.situation:
            self.situation = said
            self.status.update(self.status_text())

    def on_key(self, event: events.Key) -> None:
        event.stop()
        event.prevent_default()
        if event.key == keys.DETACH_KEY:
            self.detach()
            return
        if not self.can_type:
            self.app.bell()
            return
        application_cursor, _ = self.view.terminal.modes()
        data = keys.key_bytes(event.key, event.character, application_cursor=application_cursor)
        if data:
            self.typed.put_nowait(data)

    def on_paste(self, event: events.Paste) -> None:
        event.stop()
        if self.can_type and event.text:
            _, bracketed = self.view.terminal.modes()
            self.typed.put_nowait(keys.pasted(event.text, bracketed=bracketed))

    def detach(self) -> None:
        if self.leave_app:
            self.app.exit(0)
        else:
            self.dismiss(None)

    def on_terminal_view_resized(self, message: TerminalView.Resized) -> None:
        if self.can_type:
            self.send_resize(message.columns, message.rows)

    @work(group="attach-keys", exclusive=True)
    async def deliver(self) -> None:
        """One sender, so keys reach the agent in the order typed; a burst goes as one request."""
        while True:
            data = await self.typed.get()
            while not self.typed.empty():
                data += self.typed.get_nowait()
            await self._send(lambda r, a, d, by: keys.send_keys(r, a, d, by, self.client_id), data)
            self.sent.append(data)

    @work(group="attach-resize", exclusive=True)
    async def send_resize(self, columns: int, rows: int) -> None:
        await asyncio.sleep(0.1)  # a dragged window sends many sizes: tell the last
        await self._send(lambda r, a, _, by: keys.resize(r, a, columns, rows, by), "")

    async def _send(self, call: object, data: str) -> None:
        session = self.session
        try:
            await asyncio.to_thread(
                call,  # type: ignore[arg-type]
                session.rundir,
                self.agent_id,
                data,
                session.operator,
            )
            problem = ""
        except OperatorError as exc:
            problem = str(exc)
        if problem != self.problem:
            self.problem = problem
            self.status.update(self.status_text())
