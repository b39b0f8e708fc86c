"""The console's entry point. The full dashboard arrives with the console issue; this app
already lists the repository's runs so `corral` with no arguments opens something useful."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import DataTable, Footer, Header

from corral.core.listing import RunSummary, summarize_runs
from corral.core.rundir import NotInRepository, git_common_dir


class CorralApp(App[None]):
    """Runs of one repository."""

    TITLE = "corral"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "Quit", id="quit"),
        Binding("r", "refresh", "Refresh", id="refresh"),
    ]

    def __init__(self, repo: Path) -> None:
        super().__init__()
        self.repo = repo

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(id="runs", cursor_type="row")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#runs", DataTable)
        table.add_columns("run", "name", "status", "verdict", "agents")
        self.action_refresh()

    def runs(self) -> list[RunSummary]:
        try:
            return summarize_runs(git_common_dir(self.repo))
        except NotInRepository:
            return []

    def action_refresh(self) -> None:
        table = self.query_one("#runs", DataTable)
        table.clear()
        for run in reversed(self.runs()):
            agents = ", ".join(f"{count} {name}" for name, count in sorted(run.counts.items()))
            table.add_row(run.run_id, run.name, run.status, run.verdict or "", agents, key=run.run_id)


def run_console(repo: Path, run: str | None) -> int:
    CorralApp(repo).run()
    return 0
