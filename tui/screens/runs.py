"""The runs of the repository: `corral` with no arguments opens here. `enter` attaches to a run,
`n` starts a new one from a plan picked among the repository's `*.toml` (or a path typed), `R`
starts the highlighted run's plan again (the engine in its own process, as `corral run PLAN
--detach`)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import getters, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Static

from corral.core.operator import actions, plans
from corral.core.operator.errors import OperatorError
from corral.core.operator.identity import Operator
from corral.core.plan.durations import format_duration
from corral.core.runs.listing import RunSummary
from corral.core.runs.rundir import (
    NotInRepository,
    RunDir,
    UnsafeRunDir,
    git_common_dir,
    runs_root,
)
from corral.tui.runs_index import RunsIndex
from corral.tui.screens.base import RunScreen
from corral.tui.screens.dialogs import AskScreen, ConfirmScreen
from corral.tui.screens.pick import OTHER, PickScreen
from corral.tui.text import inert
from corral.tui.widgets.footer import CorralFooter
from corral.tui.widgets.tables import KeyTable, Row

REFRESH_SECONDS = 2.0
STATUS_STYLE = {
    "running": ("●", "green"),
    "finished": ("■", "bold"),
    "stopped": ("◼", "yellow"),
    "interrupted": ("○", "red"),
    "corrupted": ("!", "red bold reverse"),
}


class RunsTable(KeyTable):
    COLUMNS: ClassVar[list[tuple[str, str, int]]] = [
        ("status", "status", 13),
        ("run", "run", 22),
        ("name", "name", 16),
        ("verdict", "verdict", 7),
        ("agents", "agents", 40),
        ("age", "started", 9),
    ]


def run_row(run: RunSummary, now: float) -> Row:
    glyph, style = STATUS_STYLE.get(run.status, ("?", ""))
    counts = ", ".join(f"{count} {name}" for name, count in sorted(run.counts.items()))
    if run.rerun_of is not None:  # `corral rerun`: approve the run it came from first
        again = inert(", ".join(run.rerun_of.agents), limit=60)
        counts += f" · re-runs {again} of {run.rerun_of.run}"
    verdict_style = "green" if run.verdict == "passed" else "red" if run.verdict else ""
    age = format_duration(max(0.0, now - run.started_ts)) + " ago" if run.started_ts else ""
    return {
        "status": Text(f"{glyph} {run.status}", style=style),
        "run": Text(run.run_id, style="bold"),
        "name": Text(inert(run.name, limit=60)),
        "verdict": Text(run.verdict or "", style=verdict_style),
        "agents": Text(counts, style="dim"),
        "age": Text(age, style="dim"),
    }


class RunsScreen(Screen[None]):
    DEFAULT_CSS = """
    RunsScreen #title { height: 1; background: $panel; }
    RunsScreen RunsTable { height: 1fr; }
    RunsScreen #empty { height: auto; padding: 1 2; color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "open", "Open", priority=True, id="runs.open"),
        Binding("n", "new_run", "New run", id="runs.new"),
        Binding("R", "rerun", "Run again", id="runs.rerun"),
        Binding("ctrl+r", "refresh", "Refresh", id="runs.refresh"),
        Binding("slash", "filter", "Filter", id="runs.filter"),
        Binding("1", "focus_table", "Runs", show=False, id="runs.panel"),
    ]

    class Listed(Message):
        def __init__(self, runs: list[RunSummary], error: str) -> None:
            super().__init__()
            self.runs = runs
            self.error = error

    table = getters.query_one(RunsTable)
    empty = getters.query_one("#empty", Static)

    def __init__(self, repo: Path, *, operator: Operator, hidden: bool = False) -> None:
        super().__init__(name="runs")
        self.repo = repo
        self.operator = operator
        """Who acts: starting a run needs the operator role (core/operator/identity.py)."""
        self.read_only = not operator.may("operator")
        self.hidden = hidden
        """Opened under a run (`corral tui RUN`): list nothing until the person comes back here,
        so the run's own replay has the machine to itself."""
        self.runs: list[RunSummary] = []
        self.index: RunsIndex | None = None

    def compose(self) -> ComposeResult:
        yield Static(
            Text(
                f" corral  runs of {self.repo}"
                + ("  READ-ONLY" if self.read_only else "")
                + (f"  as {inert(self.operator.label, limit=60)}" if self.operator.label else ""),
                style="bold",
            ),
            id="title",
        )
        yield RunsTable()
        yield Static("", id="empty")
        yield CorralFooter()

    def on_mount(self) -> None:
        self.table.border_title = "1 runs"
        self.table.focus()
        self.set_interval(REFRESH_SECONDS, self.refresh_when_shown)

    def refresh_when_shown(self) -> None:
        """Nobody looks at the list while a run is open. Textual counts the screen under the top
        one as shown (`is_current`), so the list, refreshed under a dashboard, re-laid itself out
        and rebuilt its footer every 2 s, and made the dashboard repaint."""
        if not self.is_current or self.hidden:
            return
        if any(isinstance(screen, RunScreen) for screen in self.app.screen_stack):
            return
        self.action_refresh()

    def on_screen_resume(self) -> None:
        if self.hidden:
            self.hidden = False
            return
        self.action_refresh()

    @work(group="runs-list", exclusive=True, thread=True)
    def action_refresh(self) -> None:
        try:
            if self.index is None:
                self.index = RunsIndex(git_common_dir(self.repo))
            runs = self.index.refresh()
            error = ""
        except (NotInRepository, UnsafeRunDir) as exc:
            runs, error = [], str(exc)
        self.post_message(self.Listed(runs, error))

    def rows(self) -> list[tuple[str, Row]]:
        now = time.time()
        return [(run.run_id, run_row(run, now)) for run in reversed(self.runs)]

    def on_runs_screen_listed(self, message: Listed) -> None:
        self.runs = message.runs
        self.table.sync(self.rows(), complete=True)
        if message.error:
            self.empty.update(Text(message.error, style="red"))
        elif not message.runs:
            self.empty.update(Text("no runs yet: press n and give a plan file to start one"))
        else:
            self.empty.update("")
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "new_run":
            return None if self.read_only else True
        if action == "rerun":
            return None if self.read_only or not self.table.current_key else True
        if action == "open":
            return True if self.table.current_key else None
        return True

    def action_focus_table(self) -> None:
        self.table.focus()

    def action_open(self) -> None:
        key = self.table.current_key
        if key is not None:
            self.app.attach(key)  # type: ignore[attr-defined]

    def action_filter(self) -> None:
        def apply(text: str | None) -> None:
            if text is not None:
                self.table.set_filter(text, self.rows)

        self.app.push_screen(
            AskScreen(
                "/ filter runs", "show runs containing (empty: all)", value=self.table.filter_text
            ),
            apply,
        )

    @work(group="start", exclusive=True)
    async def action_new_run(self) -> None:
        found = await asyncio.to_thread(plans.find_plans, self.repo)
        if found:
            picked = await self.app.push_screen_wait(
                PickScreen(
                    "Start a run",
                    "Plan file (the repository's *.toml holding [[agent]]):",
                    [plan.name for plan in found],
                    other="another path…",
                )
            )
            if picked is None:
                return
            if picked != OTHER:
                await self._start(next(p.path for p in found if p.name == picked))
                return
        answer = await self.app.push_screen_wait(
            AskScreen(
                "Start a run",
                "Plan file (TOML), relative to the repository:",
                required="name a plan file",
                placeholder="plan.toml",
            )
        )
        if not answer:
            return
        plan = self.repo / answer  # an absolute answer replaces the repository part
        if not await asyncio.to_thread(plan.is_file):
            self.notify(f"no plan file at {plan}", severity="error")
            return
        await self._start(plan)

    @work(group="start", exclusive=True)
    async def action_rerun(self) -> None:
        """The highlighted run's plan again, from the file it was started from (found by its
        bytes, so a plan edited since is never taken for it), after a confirmation."""
        key = self.table.current_key
        if key is None:
            return
        rundir = RunDir(runs_root(git_common_dir(self.repo)) / key)
        plan = await asyncio.to_thread(plans.plan_of_run, rundir, self.repo)
        if plan is None:
            self.notify(
                f"the plan run {key} ran is in no *.toml of the repository any more (edited or "
                "moved since); press n to pick a plan",
                title="run again",
                severity="error",
                timeout=10,
            )
            return
        body = Text(
            f"A new run of {inert(plan.name, limit=200)}, as run {key} ran it (the same bytes), "
            f"from the commit its base names now. Run {key} stays as it is."
        )
        title = f"Run {inert(plan.name, limit=60)} again?"
        if await self.app.push_screen_wait(ConfirmScreen(title, body, yes="start", danger=False)):
            await self._start(plan.path)

    async def _start(self, plan: Path) -> None:
        self.notify(f"starting {plan.name}…", title="corral run")
        try:
            started = await asyncio.to_thread(actions.start_run, self.repo, plan, by=self.operator)
        except OperatorError as exc:
            self.notify(
                inert(str(exc), limit=600),
                title="the run did not start",
                severity="error",
                timeout=15,
            )
            return
        self.notify(f"run {started.run_id} started in the background", title="corral run")
        self.app.attach(started.run_id)  # type: ignore[attr-defined]
