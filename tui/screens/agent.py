"""One agent: where it runs (its runtime and, sandboxed, its policy), its live output (escapes
made inert), its worktree diff against the snapshot, its findings and its events; kill, retry,
and the worktree path (shell or clipboard)."""

from __future__ import annotations

import asyncio
import codecs
import os
import subprocess
from pathlib import Path
from typing import ClassVar

from rich.syntax import Syntax
from rich.text import Text
from textual import getters, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Log, Static, TabbedContent, TabPane

from corral.core.findings.display import Loaded, agent_findings, severity_rank
from corral.core.operator.describe import node_line, runtime_line, stream_detail, usage_line
from corral.core.operator.reading import agent_runtimes, cluster_line
from corral.core.operator.results import AgentRuntime
from corral.tui import answer, decisions, keys, look, ops
from corral.tui.bridge import RunSession
from corral.tui.feed import RunFeed
from corral.tui.screens.base import RunScreen
from corral.tui.text import inert, inert_lines
from corral.tui.widgets.event_tail import EventTail
from corral.tui.widgets.footer import CorralFooter
from corral.tui.widgets.tables import KeyTable, Row
from corral.tui.widgets.terminal import TerminalView

OUTPUT_POLL = 0.2
TABS = {"1": "output", "2": "diff", "3": "findings", "4": "agent-events"}


class FindingsTable(KeyTable):
    COLUMNS: ClassVar[list[tuple[str, str, int]]] = [
        ("severity", "severity", 9),
        ("title", "finding", 50),
        ("location", "where", 30),
        ("rule", "rule", 16),
        ("agent", "agent", 16),
    ]


def finding_rows(loaded: Loaded) -> list[tuple[str, Row]]:
    ordered = sorted(
        loaded.findings, key=lambda f: (severity_rank(f.severity), f.agent, f.location)
    )
    return [
        (
            str(number),
            {
                "severity": Text(f.severity, style=look.SEVERITY_STYLE.get(f.severity, "")),
                "title": Text(f.title),
                "location": Text(f.location, style="dim"),
                "rule": Text(f.rule, style="dim"),
                "agent": Text(f.agent),
            },
        )
        for number, f in enumerate(ordered)
    ]


class AgentScreen(RunScreen):
    DEFAULT_CSS = """
    AgentScreen #agent-header {
        height: auto; max-height: 4; background: $panel; text-wrap: nowrap; text-overflow: ellipsis;
    }
    AgentScreen TabbedContent { height: 1fr; }
    AgentScreen TabPane { padding: 0; }
    AgentScreen TerminalView { height: 1fr; }
    AgentScreen Log, AgentScreen #diff-scroll, AgentScreen FindingsTable, AgentScreen EventTail { height: 1fr; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("x", "kill", "Kill", id="agent.kill"),
        Binding("r", "retry", "Retry", id="agent.retry"),
        Binding("i", "send_input", "Message", id="agent.send_input"),
        Binding("a", "answer", "Answer", id="agent.answer"),
        Binding("p", "pause", "Pause", id="agent.pause"),
        Binding("p", "unpause", "Unpause", id="agent.unpause"),
        Binding("o", "shell", "Shell in worktree", id="agent.shell"),
        Binding("c", "copy_path", "Copy path", id="agent.copy_path"),
        Binding("d", "diff", "Diff", id="agent.diff"),
        Binding("t", "attach", "Attach", id="agent.attach"),
        Binding("1", "tab('output')", "Output", show=False, id="agent.tab_output"),
        Binding("2", "tab('diff')", "Diff", show=False, id="agent.tab_diff"),
        Binding("3", "tab('findings')", "Findings", show=False, id="agent.tab_findings"),
        Binding("4", "tab('agent-events')", "Events", show=False, id="agent.tab_events"),
        Binding("j", "scroll(1)", "Down", show=False, id="agent.down"),
        Binding("k", "scroll(-1)", "Up", show=False, id="agent.up"),
        Binding("g", "home", "Top", show=False, id="agent.top"),
        Binding("G", "end", "Bottom", show=False, id="agent.bottom"),
        Binding("escape", "back", "Back", id="agent.back"),
    ]

    class OutputLines(Message):
        def __init__(self, lines: list[str], reset: bool) -> None:
            super().__init__()
            self.lines = lines
            self.reset = reset

    class DiffLoaded(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class FindingsLoaded(Message):
        def __init__(self, loaded: Loaded) -> None:
            super().__init__()
            self.loaded = loaded

    class RuntimeLoaded(Message):
        def __init__(self, runtime: AgentRuntime | None) -> None:
            super().__init__()
            self.runtime = runtime
            self.cluster: str | None = None

    header = getters.query_one("#agent-header", Static)
    output = getters.query_one("#output-log", Log)
    diff = getters.query_one("#diff-view", Static)
    findings = getters.query_one(FindingsTable)
    agent_events = getters.query_one("#agent-events-log", EventTail)
    tabs = getters.query_one(TabbedContent)

    def __init__(self, session: RunSession, agent_id: str) -> None:
        super().__init__(session, name="agent")
        self.agent_id = agent_id
        self.output_lines = 0
        self.diff_text = ""
        self.runtime: AgentRuntime | None = None
        self.cluster: str | None = None
        """The Ray cluster's line (nodes, free slots) for a run on Ray."""
        """Where the agent runs, from the run's plan (None until loaded, or if unreadable)."""
        self.tty = keys.is_tty(self.agent)
        """It runs on a PTY: its output tab is a terminal view, and `t` attaches."""

    def compose(self) -> ComposeResult:
        yield Static(Text(f" {self.agent_id}"), id="agent-header")
        with TabbedContent(initial="output"):
            with TabPane("1 output", id="output"):
                yield Log(id="output-log", max_lines=10_000, auto_scroll=True)
                if self.tty:
                    yield TerminalView(self.log_path, color=not self.app.no_color, id="terminal")
            with TabPane("2 diff", id="diff"), VerticalScroll(id="diff-scroll"):
                yield Static(
                    Text("press d to load the diff against the snapshot", style="dim"),
                    id="diff-view",
                )
            with TabPane("3 findings", id="findings"):
                yield FindingsTable()
            with TabPane("4 events", id="agent-events"):
                yield EventTail(id="agent-events-log")
        yield CorralFooter()

    def on_mount(self) -> None:
        super().on_mount()
        if self.tty:
            self.output.display = False
            self.query_one(TerminalView).focus()
        else:
            self.output.focus()
            self.follow_output()
        self.load_findings()
        self.load_runtime()

    def palette_target(self, action: str) -> str:
        named = {"kill", "retry", "send_input", "shell", "copy_path", "diff", "pause", "unpause"}
        named.add("attach")
        return f"agent {inert(self.agent_id, limit=40)}" if action in named else ""

    @property
    def agent(self):  # type: ignore[no-untyped-def]
        feed = self.session.feed
        return feed.state.agents.get(self.agent_id) if feed else None

    def redraw(self, feed: RunFeed, now: float, *, since: int, ages: bool) -> None:
        agent = feed.state.agents.get(self.agent_id)
        if agent is None:
            return
        if ages or feed.agent_version.get(self.agent_id, 0) > since:
            attempt = agent.current
            text = Text(" ")
            text.append(inert(agent.id, limit=64), style="bold")
            text.append(f" ({agent.kind})  ")
            text.append_text(look.state_text(agent.state, color=not self.app.no_color))
            text.append(
                f"  try {agent.attempt}/{agent.retries + 1}  {look.GLYPHS['elapsed']} {look.elapsed_text(agent, now)}  "
            )
            text.append_text(
                look.heartbeat_text(agent, now, feed.heartbeat_timeout.get(agent.id, 0.0))
            )
            text.append("\n ")
            if attempt is not None:
                text.append(f"⎇ {inert(attempt.branch, limit=60)}  ", style="dim")
                text.append(
                    f"{look.GLYPHS['folder']} {inert(attempt.workspace, limit=120)}", style="dim"
                )
            progress = look.progress_text(agent)
            if progress.plain:
                text.append("  ")
                text.append_text(progress)
            text.append("\n ")
            text.append_text(self.runtime_text())
            said = " · ".join(
                part for part in (usage_line(agent.usage), stream_detail(agent)) if part
            )
            if said:  # an agent whose CLI's stream is read: its model, tokens, cost, last tool
                text.append("\n ✦ ", style="dim")
                text.append(inert(said, limit=300))
            self.header.update(look.monochrome(text) if self.app.no_color else text)
        self.agent_events.add(feed.agent_events.get(self.agent_id, ()))

    def log_path(self) -> Path | None:
        agent = self.agent
        attempt = agent.current if agent is not None else None
        return Path(attempt.log_path) if attempt is not None and attempt.log_path else None

    # -- workers: they read files and run git, and post what they found ------------------------

    @work(group="output", exclusive=True)
    async def follow_output(self) -> None:
        """Follow output.log of the current attempt, switching when a new attempt starts."""
        path: Path | None = None
        offset = inode = 0
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        pending = ""
        idle = 0
        while True:
            agent = self.agent
            attempt = agent.current if agent is not None else None
            current = Path(attempt.log_path) if attempt is not None and attempt.log_path else None
            if current != path:
                path, offset, inode, pending = current, 0, 0, ""
                decoder.reset()
                self.post_message(
                    self.OutputLines(
                        [f"── attempt {attempt.number if attempt else '?'} ──"], reset=False
                    )
                )
            data = b""
            if path is not None:
                seen = inode
                data, offset, inode = await asyncio.to_thread(ops.read_more, path, offset, inode)
                if seen and inode != seen:  # redacted as the attempt ended: show that copy
                    pending = ""
                    decoder.reset()
                    header = (
                        f"── attempt {attempt.number if attempt else '?'} (secrets redacted) ──"
                    )
                    self.post_message(self.OutputLines([header], reset=True))
            if data:
                idle = 0
                lines = inert_lines(pending + decoder.decode(data))
                pending = lines.pop()
                if lines:
                    self.post_message(self.OutputLines(lines, reset=False))
                continue
            idle += 1
            if pending and idle >= 3:  # a prompt without a newline: show it anyway
                self.post_message(self.OutputLines([pending], reset=False))
                pending = ""
            await asyncio.sleep(OUTPUT_POLL)

    def on_agent_screen_output_lines(self, message: OutputLines) -> None:
        if message.reset:
            self.output.clear()
            self.output_lines = 0
        self.output.write_lines(message.lines)
        self.output_lines += len(message.lines)

    @work(group="diff", exclusive=True, thread=True)
    def load_diff(self) -> None:
        agent = self.agent
        feed = self.session.feed
        attempt = agent.current if agent is not None else None
        if attempt is None or feed is None:
            self.post_message(self.DiffLoaded("the agent has not started: no worktree yet"))
            return
        self.post_message(
            self.DiffLoaded(ops.worktree_diff(attempt.workspace, feed.state.snapshot))
        )

    def on_agent_screen_diff_loaded(self, message: DiffLoaded) -> None:
        self.diff_text = message.text
        self.diff.update(
            Syntax(
                message.text, "diff", theme="ansi_dark", word_wrap=False, background_color="default"
            )
        )

    @work(group="findings", exclusive=True, thread=True)
    def load_findings(self) -> None:
        agent = self.agent
        attempt = agent.current if agent is not None else None
        loaded = agent_findings(attempt.output_dir if attempt else "", self.agent_id)
        self.post_message(self.FindingsLoaded(loaded))

    def runtime_text(self) -> Text:
        """The header's last line: the runtime, and a sandboxed agent's policy in short."""
        runtime = self.runtime
        if runtime is None:
            return Text("runtime: …", style="dim")
        text = Text("⚙ ", style="dim")
        text.append(
            inert(runtime_line(runtime), limit=300), style="cyan" if runtime.sandboxed else ""
        )
        attempt = self.agent.current if self.agent is not None else None
        if attempt is not None and attempt.node:  # on a cluster: where, and the cluster's room
            text.append(" · " + inert(node_line(attempt.node, attempt.host), limit=120))
        elif attempt is not None and attempt.host:
            text.append(" on host ", style="dim")
            text.append(inert(attempt.host, limit=80), style="bold")
        if self.cluster:
            text.append(" · " + inert(self.cluster, limit=120), style="dim")
        return text

    @work(group="runtime", exclusive=True, thread=True)
    def load_runtime(self) -> None:
        rundir = self.session.rundir
        loaded = self.RuntimeLoaded(agent_runtimes(rundir).get(self.agent_id))
        loaded.cluster = cluster_line(rundir)
        self.post_message(loaded)

    def on_agent_screen_runtime_loaded(self, message: RuntimeLoaded) -> None:
        self.runtime = message.runtime
        self.cluster = message.cluster
        feed = self.session.feed
        if feed is not None:
            self.redraw(feed, self.session.clock(), since=-1, ages=True)

    def on_agent_screen_findings_loaded(self, message: FindingsLoaded) -> None:
        self.findings.sync(finding_rows(message.loaded), complete=True)
        problems = "; ".join(message.loaded.problems)
        self.findings.border_title = f"{len(message.loaded.findings)} findings" + (
            f" · {problems}" if problems else ""
        )
        if self.tabs.get_tab("findings") is not None:
            self.tabs.get_tab("findings").label = f"3 findings ({len(message.loaded.findings)})"

    # -- keys ----------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "kill":
            return True if decisions.can_kill(self.session, [self.agent_id]) else None
        if action == "send_input":  # shown only for an agent that reads messages
            return decisions.can_send(self.session, self.agent_id)
        if action == "retry":
            return True if decisions.can_retry(self.session, [self.agent_id]) else None
        if action == "answer":
            return True if answer.can_answer(self.session, self.agent_id) else None
        if action == "pause":  # shown only where it applies, like `i`
            return decisions.can_pause(self.session, self.agent_id)
        if action == "unpause":
            return decisions.can_unpause(self.session, self.agent_id)
        if action == "attach":
            return True if self.tty and self.log_path() is not None else None
        if action in ("shell", "copy_path"):
            agent = self.agent
            attempt = agent.current if agent is not None else None
            return True if attempt is not None and attempt.workspace else None
        return True

    def action_back(self) -> None:
        self.dismiss(None)

    def action_tab(self, tab: str) -> None:
        self.tabs.active = tab
        if tab == "diff":
            self.load_diff()
        if tab == "findings":
            self.load_findings()
        self._active_widget().focus()

    def _active_widget(self) -> Widget:
        return {
            "output": self.query_one(TerminalView) if self.tty else self.output,
            "diff": self.query_one("#diff-scroll", VerticalScroll),
            "findings": self.findings,
            "agent-events": self.agent_events,
        }[self.tabs.active or "output"]

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        if event.pane.id == "diff":
            self.load_diff()

    def action_scroll(self, lines: int) -> None:
        widget = self._active_widget()
        if isinstance(widget, KeyTable):
            widget.action_cursor_down() if lines > 0 else widget.action_cursor_up()
        else:
            widget.scroll_relative(y=lines, animate=False)

    def action_home(self) -> None:
        self._active_widget().scroll_home(animate=False)

    def action_end(self) -> None:
        self._active_widget().scroll_end(animate=False)

    def action_attach(self) -> None:
        from corral.tui.screens.attach import AttachScreen

        self.app.push_screen(AttachScreen(self.session, self.agent_id))

    def action_diff(self) -> None:
        self.action_tab("diff")

    def action_copy_path(self) -> None:
        agent = self.agent
        attempt = agent.current if agent is not None else None
        if attempt is not None:
            self.app.copy_to_clipboard(attempt.workspace)
            self.notify(inert(attempt.workspace), title="worktree path copied")

    def action_shell(self) -> None:
        """A shell in the worktree; the console comes back when it exits."""
        agent = self.agent
        attempt = agent.current if agent is not None else None
        if attempt is None or not Path(attempt.workspace).is_dir():
            self.notify("the worktree is gone", severity="warning")
            return
        shell = os.environ.get("SHELL") or "/bin/sh"
        with self.app.suspend():
            print(f"corral: a shell in {attempt.workspace} (exit to return to the console)")
            subprocess.run([shell], cwd=attempt.workspace, check=False)

    @work(group="decisions")
    async def action_kill(self) -> None:
        await decisions.kill(self, self.session, [self.agent_id])

    @work(group="decisions")
    async def action_retry(self) -> None:
        await decisions.retry(self, self.session, [self.agent_id])

    @work(group="decisions")
    async def action_pause(self) -> None:
        await decisions.pause(self, self.session, self.agent_id)

    @work(group="decisions")
    async def action_unpause(self) -> None:
        await decisions.unpause(self, self.session, self.agent_id)

    @work(group="decisions")
    async def action_send_input(self) -> None:
        await decisions.send_input(self, self.session, self.agent_id)

    @work(group="decisions")
    async def action_answer(self) -> None:
        await answer.answer(self, self.session, self.agent_id)
