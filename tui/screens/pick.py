"""Pick one of a list (a plan file for `n`), or choose to type something else."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import getters
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, OptionList
from textual.widgets.option_list import Option

from corral.tui.text import inert

OTHER = "\0other"
"""What the screen returns when the person asks to type a path instead."""


class PickScreen(ModalScreen[str | None]):
    """The choices, then "another path…"; enter picks, esc cancels (None)."""

    DEFAULT_CSS = """
    PickScreen { align: center middle; }
    PickScreen > Vertical {
        width: 72; max-width: 95%; height: auto; max-height: 90%; border: thick $accent;
        background: $surface; padding: 0 1;
    }
    PickScreen .title { text-style: bold; }
    PickScreen OptionList { height: auto; max-height: 16; }
    PickScreen .keys { color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="pick.cancel"),
    ]
    options = getters.query_one(OptionList)

    def __init__(self, title: str, prompt: str, choices: list[str], *, other: str) -> None:
        super().__init__()
        self.title_text = title
        self.prompt = prompt
        self.choices = choices
        self.other = other

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(self.title_text), classes="title")
            yield Label(Text(self.prompt))
            yield OptionList(
                *[Option(Text(inert(c, limit=200)), id=str(i)) for i, c in enumerate(self.choices)],
                Option(Text(self.other, style="italic"), id="other"),
            )
            yield Label(Text("enter pick   esc cancel"), classes="keys")

    def on_mount(self) -> None:
        self.options.focus()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        picked = event.option.id
        if picked is None or picked == "other":
            self.dismiss(OTHER)
        else:
            self.dismiss(self.choices[int(picked)])

    def action_cancel(self) -> None:
        self.dismiss(None)
