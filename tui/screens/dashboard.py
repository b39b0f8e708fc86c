"""The run dashboard: header, agents, locks, conflicts and the event tail, drawn from the feed at
a bounded rate, cell by cell. Kill, retry and break-lock go through the control socket after a
confirmation that names the target."""

from __future__ import annotations

import asyncio
from typing import ClassVar

from rich.text import Text
from textual import getters, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.widget import Widget

from corral.core.operator import actions
from corral.core.operator.errors import OperatorError
from corral.tui import decisions, look
from corral.tui.bridge import RunSession
from corral.tui.feed import RunFeed
from corral.tui.screens.base import RunScreen
from corral.tui.screens.dialogs import AskScreen, ConfirmScreen
from corral.tui.text import inert
from corral.tui.widgets.event_tail import EventTail
from corral.tui.widgets.footer import CorralFooter
from corral.tui.widgets.run_header import RunHeader, header_text
from corral.tui.widgets.tables import AgentsTable, ConflictsTable, KeyTable, LocksTable

PANELS = {"1": "agents", "2": "locks", "3": "conflicts", "4": "events"}


def agents_named(ids: list[str]) -> str:
    """`agent lint-fix`, `agents a, b, c +2`: what a palette entry acts on."""
    if not ids:
        return ""
    names = ", ".join(inert(i, limit=40) for i in ids[:3]) + (
        f" +{len(ids) - 3}" if len(ids) > 3 else ""
    )
    return f"agent {names}" if len(ids) == 1 else f"agents {names}"


def titled(widget: Widget, title: str) -> None:
    """Set a border title only when it changed: setting one repaints the whole widget."""
    if widget.border_title != title:
        widget.border_title = title


class DashboardScreen(RunScreen):
    DEFAULT_CSS = """
    DashboardScreen { layout: vertical; }
    DashboardScreen KeyTable, DashboardScreen EventTail {
        border-top: solid $secondary; border-title-color: $text-muted; background: $surface;
        scrollbar-size-horizontal: 0;
    }
    DashboardScreen KeyTable:focus, DashboardScreen EventTail:focus {
        border-top: heavy $accent; border-title-color: $text; border-title-style: bold;
    }
    #agents { height: 3fr; min-height: 5; }
    #middle { height: 2fr; min-height: 4; }
    #locks, #conflicts { width: 1fr; height: 100%; }
    DashboardScreen.-narrow #middle { layout: vertical; height: 3fr; min-height: 8; }
    DashboardScreen.-narrow #locks, DashboardScreen.-narrow #conflicts { width: 100%; height: 1fr; }
    #events { height: 2fr; min-height: 3; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open_agent", "Detail", priority=True, id="dashboard.open"),
        Binding("x", "kill", "Kill", id="dashboard.kill"),
        Binding("r", "retry", "Retry", id="dashboard.retry"),
        Binding("i", "send_input", "Message", id="dashboard.send_input"),
        Binding("b", "break_lock", "Break lock", id="dashboard.break_lock"),
        Binding("p", "pause", "Pause", show=False, id="dashboard.pause"),
        Binding("p", "unpause", "Unpause", show=False, id="dashboard.unpause"),
        Binding("S", "stop_run", "Stop run", show=False, id="dashboard.stop_run"),
        Binding("space", "mark", "Mark", id="dashboard.mark"),
        Binding("v", "review", "Review", id="dashboard.review"),
        Binding("slash", "filter", "Filter", id="dashboard.filter"),
        Binding("f", "failures_first", "Failures first", id="dashboard.failures_first"),
        Binding("1", "panel('agents')", "Agents", show=False, id="dashboard.panel_agents"),
        Binding("2", "panel('locks')", "Locks", show=False, id="dashboard.panel_locks"),
        Binding("3", "panel('conflicts')", "Conflicts", show=False, id="dashboard.panel_conflicts"),
        Binding("4", "panel('events')", "Events", show=False, id="dashboard.panel_events"),
        Binding("escape", "back", "Runs", id="dashboard.back"),
    ]

    header = getters.query_one(RunHeader)
    agents = getters.query_one("#agents", AgentsTable)
    locks = getters.query_one("#locks", LocksTable)
    conflicts = getters.query_one("#conflicts", ConflictsTable)
    events = getters.query_one("#events", EventTail)

    def __init__(self, session: RunSession) -> None:
        super().__init__(session, name="dashboard")
        self.header_drawn: Text | None = None

    def compose(self) -> ComposeResult:
        yield RunHeader(Text(f" corral  loading run {self.session.run_id}…"))
        yield AgentsTable(id="agents")
        with Horizontal(id="middle"):
            yield LocksTable(id="locks")
            yield ConflictsTable(id="conflicts")
        yield EventTail(id="events")
        yield CorralFooter()

    def on_mount(self) -> None:
        super().on_mount()
        self.agents.border_title = "1 agents"
        self.locks.border_title = "2 locks"
        self.conflicts.border_title = "3 conflicts"
        self.events.border_title = "4 events"
        self.agents.focus()

    # -- drawing -------------------------------------------------------------------------------

    def redraw(self, feed: RunFeed, now: float, *, since: int, ages: bool) -> None:
        state = feed.state
        if ages or feed.run_version > since:
            color = not self.app.no_color
            header = header_text(
                state,
                now,
                engine_live=self.session.engine_live,
                read_only=self.session.read_only,
                acting=self.session.operator.label,
                color=color,
            )
            header = header if color else look.monochrome(header)
            if header != self.header_drawn:  # two fixed lines: no layout pass for new text
                self.header_drawn = header
                self.header.update(header, layout=False)
        if ages:
            self.agents.sync(self.agents.table_rows(feed, now))
        else:
            changed = [a for a, v in feed.agent_version.items() if v > since]
            self.agents.sync(self.agents.table_rows(feed, now, changed))
        if ages or feed.locks_version > since:
            self.locks.sync(self.locks.table_rows(feed, now), complete=True)
        if feed.conflicts_version > since:
            self.conflicts.sync(self.conflicts.table_rows(feed), complete=True)
        self.events.add(feed.tail)
        held = sum(1 for lock in state.locks.values() if lock.holder)
        titled(
            self.agents,
            f"1 agents {len(state.agents)}"
            + (f" · filter {self.agents.filter_text!r}" if self.agents.filter_text else "")
            + (" · failures first" if self.agents.failures_first else ""),
        )
        titled(self.locks, f"2 locks {held}/{len(state.locks)}")
        titled(self.conflicts, f"3 conflicts {len(state.conflicts)}")

    # -- what the keys act on ------------------------------------------------------------------

    def targets(self) -> list[str]:
        """Marked agents, or the one under the cursor."""
        if self.agents.marked:
            return [a for a in self.agents.cells if a in self.agents.marked]
        key = self.agents.current_key
        return [key] if key else []

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        feed = self.session.feed
        if action in ("kill", "retry", "break_lock", "stop_run") and (
            self.session.read_only or feed is None
        ):
            return None
        if action == "stop_run":
            return True if decisions.can_stop(self.session) else None
        if action in (
            "pause",
            "unpause",
        ):  # one key: whichever applies to the agent under the cursor
            key = self.agents.current_key
            can = decisions.can_pause if action == "pause" else decisions.can_unpause
            return key is not None and can(self.session, key)
        if action == "kill":
            return True if decisions.can_kill(self.session, self.targets()) else None
        if action == "send_input":  # shown only for an agent that reads messages
            key = self.agents.current_key
            return key is not None and decisions.can_send(self.session, key)
        if action == "retry":
            return True if decisions.can_retry(self.session, self.targets()) else None
        if action == "break_lock":
            # not tied to the holder of the row under the cursor: leases come and go many times a
            # second, and a footer that flickers is unreadable (the action says when it is free)
            return True if self.session.engine_live and self.locks.row_count else None
        if action == "review":
            return (
                True
                if feed is not None
                and (feed.state.report is not None or feed.state.status == "finished")
                else None
            )
        return True

    def on_descendant_focus(self) -> None:
        self.update_bindings()

    def on_data_table_row_highlighted(self) -> None:
        self.update_bindings()

    # -- actions -------------------------------------------------------------------------------

    def action_panel(self, panel: str) -> None:
        self.query_one(f"#{panel}").focus()

    def action_back(self) -> None:
        self.app.leave_run()  # type: ignore[attr-defined]

    def action_open_agent(self) -> None:
        feed = self.session.feed
        focused = self.focused
        agent_id: str | None = None
        if focused is self.locks and feed is not None:
            lock = feed.state.locks.get(self.locks.current_key or "")
            agent_id = lock.holder if lock else None
        elif focused is self.conflicts and feed is not None:
            conflict = feed.state.conflicts.get(self.conflicts.current_key or "")
            agent_id = conflict.agents[0] if conflict else None
        else:
            agent_id = self.agents.current_key
        if agent_id and feed is not None and agent_id in feed.state.agents:
            from corral.tui.screens.agent import AgentScreen

            self.app.push_screen(AgentScreen(self.session, agent_id))

    def action_review(self) -> None:
        self.app.open_review()  # type: ignore[attr-defined]

    def action_failures_first(self) -> None:
        """Failed and stalled agents at the top (the title says so), or the plan's order."""
        self.agents.toggle_failures_first()
        self.drawn_version = -1  # the title

    def palette_target(self, action: str) -> str:
        if action in ("kill", "retry"):
            return agents_named(self.targets())
        if action in ("send_input", "open_agent", "mark", "pause", "unpause"):
            return agents_named([self.agents.current_key] if self.agents.current_key else [])
        if action == "stop_run":
            return f"run {self.session.run_id}"
        if action == "break_lock" and self.locks.current_key:
            return f"lock {inert(self.locks.current_key, limit=60)}"
        return ""

    def action_mark(self) -> None:
        self.agents.toggle_mark()
        self.update_bindings()

    def action_filter(self) -> None:
        table = self.focused if isinstance(self.focused, KeyTable) else self.agents

        def apply(text: str | None) -> None:
            feed = self.session.feed
            if text is None or feed is None:
                return
            now = self.session.clock()
            if table is self.agents:
                table.set_filter(text, lambda: self.agents.table_rows(feed, now))
            elif table is self.locks:
                table.set_filter(text, lambda: self.locks.table_rows(feed, now))
            else:
                table.set_filter(text, lambda: self.conflicts.table_rows(feed))
            self.drawn_version = -1

        self.app.push_screen(
            AskScreen(
                "/ filter",
                f"show rows of {table.id} containing (empty: all)",
                value=table.filter_text,
            ),
            apply,
        )

    @work(group="decisions")
    async def action_kill(self) -> None:
        if await decisions.kill(self, self.session, self.targets()):
            self.agents.marked.clear()
            self.drawn_version = -1

    @work(group="decisions")
    async def action_pause(self) -> None:
        key = self.agents.current_key
        if key:
            await decisions.pause(self, self.session, key)

    @work(group="decisions")
    async def action_unpause(self) -> None:
        key = self.agents.current_key
        if key:
            await decisions.unpause(self, self.session, key)

    @work(group="decisions")
    async def action_stop_run(self) -> None:
        await decisions.stop_run(self, self.session)

    @work(group="decisions")
    async def action_retry(self) -> None:
        await decisions.retry(self, self.session, self.targets())

    @work(group="decisions")
    async def action_send_input(self) -> None:
        key = self.agents.current_key
        if key:
            await decisions.send_input(self, self.session, key)
        self.agents.marked.clear()
        self.drawn_version = -1

    @work(group="decisions")
    async def action_break_lock(self) -> None:
        feed = self.session.feed
        name = self.locks.current_key
        lock = feed.state.locks.get(name or "") if feed else None
        if feed is None or lock is None or name is None:
            return
        if lock.holder is None:
            self.notify(f"lock {inert(name)} is free: nothing to break", severity="warning")
            return
        now = self.session.clock()
        lease = (
            "held for the holder's whole attempt"
            if lock.expires_at is None
            else (
                f"lease ends in {lock.expires_at - now:.0f}s"
                if lock.expires_at > now
                else f"lease STALE by {now - lock.expires_at:.0f}s"
            )
        )
        holder, token = lock.holder, lock.token  # what the person is shown is what gets broken
        holder_state = decisions.agent_state(self.session, holder)
        body = Text(
            f"Lock {inert(name)} is held by {inert(lock.holder)}#{lock.holder_attempt} ({holder_state}), "
            f"token {lock.token}, {lease}; {len(lock.waiters)} waiter(s).\n"
            "Breaking it hands the lock to the next waiter; the holder's token becomes stale and its "
            "fenced writes are refused."
        )
        reason = await self.app.push_screen_wait(
            AskScreen(
                f"Break lock {name}?",
                "Why (recorded in the event log):",
                required="a reason is required",
            )
        )
        if not reason:
            return
        if not await self.app.push_screen_wait(
            ConfirmScreen(f"Break lock {name} held by {holder}?", body, yes="break")
        ):
            return
        try:
            await asyncio.to_thread(
                actions.break_lock, self.session.rundir, name, self.session.operator, reason, token
            )
        except OperatorError as exc:
            self.notify(inert(str(exc)), title=f"break {name}", severity="error")
        else:
            self.notify(f"lock {name} broken", title="break lock")
