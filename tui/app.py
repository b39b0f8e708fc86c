"""The console: composes the screens, routes between them, holds the keymap, and applies the
bridge's event batches to the attached run's feed. `corral` opens the runs list; `corral tui RUN`
attaches to a run (replay, then follow). Quitting never touches the engine."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import ClassVar

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.worker import get_current_worker

from corral.core.log import events as ev
from corral.core.log.notices import Notice
from corral.core.operator.identity import Operator
from corral.core.runs.rundir import NotInRepository, RunNotFound, find_run, git_common_dir
from corral.tui import look
from corral.tui.bridge import EngineLiveness, FollowFailed, RunEvents, RunLoaded, RunSession, follow
from corral.tui.keymap import load_keymap
from corral.tui.screens.base import RunScreen
from corral.tui.screens.dashboard import DashboardScreen
from corral.tui.screens.dialogs import ConfirmScreen
from corral.tui.screens.help import CommandLogScreen, HelpScreen
from corral.tui.screens.runs import RunsScreen
from corral.tui.text import inert

NEWS = (
    ev.RunFinished,
    ev.AgentDeadLettered,
    ev.LockBroken,
    ev.ConflictPredicted,
    ev.ReportWritten,
    ev.ReportApproved,
    ev.ReportRejected,
    ev.RepoTampered,
)
"""Events worth a toast; everything else is only drawn."""


class CorralApp(App[int]):
    """The corral console."""

    TITLE = "corral"
    ENABLE_COMMAND_PALETTE = True
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (120, "-wide")]
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit_console", "Quit", id="app.quit"),
        Binding("ctrl+q", "quit_console", "Quit", show=False, priority=True, id="app.quit_ctrl_q"),
        Binding("question_mark", "help", "Help", id="app.help"),
        Binding("colon", "command_palette", "Commands", id="app.palette"),
        Binding("ctrl+p", "command_palette", "Commands", show=False, id="app.palette_ctrl_p"),
        Binding("at", "command_log", "@ log", id="app.command_log"),
    ]

    def __init__(
        self,
        repo: Path,
        run: str | None = None,
        *,
        read_only: bool = False,
        clock: Callable[[], float] = time.time,
        poll: float = 0.05,
        operator: Operator | None = None,
        attach_to: str | None = None,
    ) -> None:
        super().__init__()
        self.attach_to = attach_to
        """`corral attach RUN AGENT`: open straight into that agent's terminal."""
        operator = operator or Operator.current()
        if read_only:
            operator = operator.viewer("the console was opened with --read-only")
        self.operator = operator
        """Who acts from this console and with which roles, read once here: no screen reads
        the environment."""
        self.repo = repo
        self.initial_run = run
        self.clock = clock
        self.poll = poll
        self.session: RunSession | None = None
        self.batch_hook: Callable[[list[ev.Event]], None] | None = None
        """The benchmark's hook: called with each batch right after it is applied."""
        self.desktop = shutil.which("notify-send")
        """Desktop notifications go through this program when the machine has it."""
        self.bells = 0

    # -- routing -------------------------------------------------------------------------------

    def on_mount(self) -> None:
        keymap, problem = load_keymap()
        if keymap:
            self.set_keymap(keymap)
        if problem:
            self.notify(problem, severity="warning")
        hidden = self.initial_run is not None
        self.push_screen(RunsScreen(self.repo, operator=self.operator, hidden=hidden))
        if self.initial_run is not None:
            self.attach(self.initial_run)

    def attach(self, run: str) -> None:
        """Replay and follow a run, on the dashboard (a finished run opens in review)."""
        try:
            rundir = find_run(git_common_dir(self.repo), run)
        except (RunNotFound, NotInRepository) as exc:
            self.notify(str(exc), severity="error")
            return
        self.detach()
        self.session = RunSession(rundir, operator=self.operator, clock=self.clock)
        self.push_screen(DashboardScreen(self.session))
        if self.attach_to is not None:
            from corral.tui.screens.attach import AttachScreen

            self.push_screen(AttachScreen(self.session, self.attach_to, leave_app=True))
        self.call_after_refresh(self._follow, self.session)

    def detach(self) -> None:
        self.workers.cancel_group(self, "follow")
        self.session = None
        while len(self.screen_stack) > 2:
            self.pop_screen()

    @work(thread=True, group="follow", exclusive=True, exit_on_error=False)
    def _follow(self, session: RunSession) -> None:
        worker = get_current_worker()
        follow(session, self.post_message, lambda: worker.is_cancelled, poll=self.poll)

    def open_review(self) -> None:
        # imported here: the review screens are a sixth of the console's import time (100 ms
        # and their memory), and a live run's first screen is the dashboard
        from corral.tui.screens.review import ReviewScreen

        if self.session is not None and not isinstance(self.screen, ReviewScreen):
            self.push_screen(ReviewScreen(self.session))

    def leave_run(self) -> None:
        """From a run's dashboard back to the runs list (the engine goes on)."""
        if isinstance(self.screen, DashboardScreen):
            self.detach()

    # -- the bridge's messages -----------------------------------------------------------------

    def on_run_loaded(self, message: RunLoaded) -> None:
        session = message.session
        if session is not self.session:
            return
        session.feed = message.feed
        session.engine_live = message.live
        session.loaded_at = time.monotonic()
        if message.feed.state.status == "finished" and isinstance(self.screen, DashboardScreen):
            self.open_review()

    def on_run_events(self, message: RunEvents) -> None:
        session = message.session
        if session is not self.session or session.feed is None:
            return
        session.feed.apply(message.events)
        if self.batch_hook is not None:
            self.batch_hook(message.events)
        news = [event for event in message.events if isinstance(event, NEWS)]
        for event in news[-3:]:
            self._toast(event)
        for notice in session.feed.take_notices():
            self._announce(session, notice)

    def _announce(self, session: RunSession, notice: Notice) -> None:
        """A notice (core/log/notices.py): the bell, the lasting status line, the desktop."""
        when = time.strftime("%H:%M:%S", time.localtime(notice.ts))
        session.notice = inert(f"{when}  {notice.text}", limit=300)
        session.notice_version += 1
        self.bells += 1
        self.bell()
        if self.desktop is not None:
            self._desktop(self.desktop, f"corral: {session.run_id}", inert(notice.text, limit=300))

    @work(thread=True, group="desktop", exit_on_error=False)
    def _desktop(self, program: str, title: str, text: str) -> None:
        """`notify-send`, when the machine has it: a desktop notification, never a wait."""
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                [program, "--app-name=corral", title, text],
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=10,
                check=False,
            )

    def _toast(self, event: ev.Event) -> None:
        from corral.core.operator.describe import tail_line

        warn = isinstance(
            event, ev.AgentDeadLettered | ev.LockBroken | ev.ReportRejected | ev.RepoTampered
        )
        text = inert(tail_line(event), limit=200)
        if isinstance(event, ev.RunFinished):
            text += " · v opens the review"
        self.notify(text, severity="warning" if warn else "information", timeout=6)

    def on_engine_liveness(self, message: EngineLiveness) -> None:
        if message.session is self.session:
            message.session.engine_live = message.live
            self.screen.refresh_bindings()

    def on_follow_failed(self, message: FollowFailed) -> None:
        if message.session is self.session:
            message.session.error = message.error
            self.notify(
                inert(message.error, limit=600),
                title="cannot follow the run",
                severity="error",
                timeout=30,
            )

    # -- global keys ---------------------------------------------------------------------------

    @work(group="quit", exclusive=True)
    async def action_quit_console(self) -> None:
        session = self.session
        if session is not None and session.live:
            state = session.feed.state if session.feed else None
            pid = state.engine.pid if state and state.engine else "?"
            body = (
                f"Run {session.run_id} is live (engine pid {pid}). Quitting closes only this console: "
                f"the engine and its agents go on. Attach again with `corral tui {session.run_id}`."
            )
            if not await self.push_screen_wait(
                ConfirmScreen("Quit the console?", body, yes="quit", danger=False)
            ):
                return
        self.exit(0)

    def help_rows(self, screen: Screen[object]) -> list[tuple[str, str, str, bool]]:
        """corral's own keys (those with a binding id; Textual's built-ins have none): this
        screen's first, then the panes' (tables, logs), then the global ones, each as bound."""
        rows = []
        for key, active in screen.active_bindings.items():
            binding = active.binding
            if not binding.description or not binding.id:
                continue
            shown = self.get_key_display(binding)
            rank = 0 if active.node is screen else 2 if active.node is self else 1
            rows.append((rank, (shown or key, binding.description, binding.id, active.enabled)))
        rows.sort(key=lambda row: row[0])  # stable: the order they are bound in
        return [row for _, row in rows]

    def action_help(self) -> None:
        if isinstance(self.screen, HelpScreen):
            return
        name = self.screen.name or type(self.screen).__name__
        legend = look.legend_text(color=not self.no_color)
        self.push_screen(
            HelpScreen(f"? keys of the {name} screen", self.help_rows(self.screen), legend)
        )

    def action_command_log(self) -> None:
        session = self.session
        lines = list(session.feed.commands) if session is not None and session.feed else []
        if not isinstance(self.screen, CommandLogScreen):
            self.push_screen(CommandLogScreen(lines))

    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        """The palette reaches every command: each binding of the screen, named with what it
        acts on ("Kill agent lint-fix"), and every run."""
        seen: set[str] = set()
        for key, active in screen.active_bindings.items():
            binding = active.binding
            if not binding.description or not binding.id or binding.action in seen:
                continue
            seen.add(binding.action)
            shown = self.get_key_display(binding) or key
            unavailable = "" if active.enabled else " · unavailable now"
            target = screen.palette_target(binding.action) if isinstance(screen, RunScreen) else ""
            yield SystemCommand(
                f"{binding.description} {target}".strip(),
                f"key {shown} · {binding.id}{unavailable}",
                partial(self.run_action, binding.action, active.node),
            )
        runs = self.screen_stack[1] if len(self.screen_stack) > 1 else None
        if isinstance(runs, RunsScreen):
            for run in reversed(runs.runs[-20:]):
                yield SystemCommand(
                    f"Attach run {run.run_id}",
                    f"{inert(run.name, limit=40)} · {run.status}",
                    partial(self.attach, run.run_id),
                    discover=False,
                )
        yield SystemCommand("Theme", "Change the colours", self.action_change_theme)


def run_console(
    repo: Path,
    run: str | None,
    *,
    read_only: bool = False,
    attach_to: str | None = None,
    operator: Operator | None = None,
) -> int:
    """`corral` and `corral tui [RUN]`; quitting leaves every engine running. `operator`: who
    the server that started this console says acts (`corral serve --ssh`), else this user."""
    if run is not None:
        try:
            find_run(git_common_dir(repo), run)
        except (RunNotFound, NotInRepository) as exc:
            print(f"corral: {exc}", file=sys.stderr)
            return 2
    look.use_emoji(os.environ.get("CORRAL_EMOJI") == "1")
    app = CorralApp(
        repo, run, read_only=read_only, operator=operator or Operator.current(), attach_to=attach_to
    )
    result = app.run()
    return int(result or 0)
