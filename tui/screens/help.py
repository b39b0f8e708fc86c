"""`?` every key of the screen underneath (with its binding id, for remapping), and `@` the log
of what the engine ran: both read-only lists that close with esc."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Label, Static


class HelpScreen(ModalScreen[None]):
    DEFAULT_CSS = """
    HelpScreen { align: center middle; }
    HelpScreen > VerticalScroll {
        width: 90; max-width: 100%; height: auto; max-height: 100%;
        border: thick $accent; background: $surface; padding: 0 1;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,question_mark", "close", "Close", id="help.close"),
        Binding("j,down", "scroll(1)", "Down", show=False, id="help.down"),
        Binding("k,up", "scroll(-1)", "Up", show=False, id="help.up"),
    ]

    def __init__(
        self, title: str, rows: list[tuple[str, str, str, bool]], legend: Text | None = None
    ) -> None:
        super().__init__()
        self.title_text = title
        self.rows = rows
        self.legend = legend

    def compose(self) -> ComposeResult:
        table = Table(box=None, expand=True, pad_edge=False, header_style="bold")
        table.add_column("key", no_wrap=True)
        table.add_column("does")
        table.add_column("binding id (remap in keymap.toml)", style="dim", no_wrap=True)
        for key, description, binding_id, enabled in self.rows:
            style = "" if enabled else "dim"
            table.add_row(
                Text(key, style="bold " + style),
                Text(description + ("" if enabled else " (unavailable now)"), style=style),
                binding_id,
            )
        with VerticalScroll():
            yield Label(Text(self.title_text, style="bold"))
            yield Static(table)
            if self.legend is not None:
                yield Static(self.legend, id="legend")
            yield Label(Text(": or ctrl+p runs any of these by name · esc closes", style="dim"))

    def action_close(self) -> None:
        self.dismiss(None)

    def action_scroll(self, lines: int) -> None:
        self.query_one(VerticalScroll).scroll_relative(y=lines, animate=False)


class CommandLogScreen(ModalScreen[None]):
    """What the engine ran and did on people's behalf: commands, kills, retries, decisions."""

    DEFAULT_CSS = """
    CommandLogScreen { align: center middle; }
    CommandLogScreen > VerticalScroll {
        width: 100%; height: 100%; border: thick $accent; background: $surface; padding: 0 1;
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,at", "close", "Close", id="commands.close"),
        Binding("j,down", "scroll(1)", "Down", show=False, id="commands.down"),
        Binding("k,up", "scroll(-1)", "Up", show=False, id="commands.up"),
        Binding("G,end", "end", "End", show=False, id="commands.end"),
        Binding("g,home", "home", "Top", show=False, id="commands.home"),
    ]

    def __init__(self, lines: list[str]) -> None:
        super().__init__()
        self.lines = lines

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Label(Text(f"@ commands the engine ran ({len(self.lines)})", style="bold"))
            yield Static(Text("\n".join(self.lines) or "nothing yet"))

    def on_mount(self) -> None:
        self.action_end()

    def action_close(self) -> None:
        self.dismiss(None)

    def action_scroll(self, lines: int) -> None:
        self.query_one(VerticalScroll).scroll_relative(y=lines, animate=False)

    def action_end(self) -> None:
        self.query_one(VerticalScroll).scroll_end(animate=False)

    def action_home(self) -> None:
        self.query_one(VerticalScroll).scroll_home(animate=False)
