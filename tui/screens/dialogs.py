"""Human decisions as awaitables: a dialog is pushed with `push_screen_wait` and resolves with
`dismiss(answer)`. Dangerous actions name their target and counts in the dialog itself."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import getters
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static


class ConfirmScreen(ModalScreen[bool]):
    """Yes or no, with the question naming exactly what will happen."""

    DEFAULT_CSS = """
    ConfirmScreen { align: center middle; }
    ConfirmScreen > Vertical {
        width: 72; max-width: 95%; height: auto; max-height: 90%;
        border: thick $error; background: $surface; padding: 0 1;
    }
    ConfirmScreen .title { text-style: bold; }
    ConfirmScreen .keys { color: $text-muted; margin-top: 1; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes", id="confirm.yes"),
        Binding("enter", "enter", "Yes", show=False, id="confirm.enter"),
        Binding("n", "answer(False)", "No", id="confirm.no"),
        Binding("escape", "answer(False)", "Cancel", id="confirm.cancel"),
    ]

    def __init__(
        self, title: str, body: Text | str, *, yes: str = "yes", danger: bool = True
    ) -> None:
        super().__init__(classes="danger" if danger else "")
        self.danger = danger
        self.title_text = title
        self.body = body
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(self.title_text), classes="title")
            yield Static(self.body if isinstance(self.body, Text) else Text(self.body))
            enter = "" if self.danger else " (or enter)"
            yield Label(Text(f"y {self.yes}{enter}   n / esc cancel"), classes="keys")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    def action_enter(self) -> None:
        """Enter agrees only to harmless questions: a kill or a break needs its `y`."""
        if self.danger:
            self.app.bell()
        else:
            self.dismiss(True)


class AskScreen(ModalScreen[str | None]):
    """One line of text: a rejection reason, a plan path, a filter. `required` refuses empty."""

    DEFAULT_CSS = """
    AskScreen { align: center middle; }
    AskScreen > Vertical {
        width: 72; max-width: 95%; height: auto; border: thick $accent;
        background: $surface; padding: 0 1;
    }
    AskScreen .title { text-style: bold; }
    AskScreen .error { color: $error; }
    AskScreen .keys { color: $text-muted; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "cancel", "Cancel", id="ask.cancel"),
    ]
    field = getters.query_one("#answer", Input)
    error = getters.query_one("#error", Label)

    def __init__(
        self, title: str, prompt: str, *, value: str = "", required: str = "", placeholder: str = ""
    ) -> None:
        super().__init__()
        self.title_text = title
        self.prompt = prompt
        self.value = value
        self.required = required
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(Text(self.title_text), classes="title")
            yield Label(Text(self.prompt))
            yield Input(
                value=self.value, placeholder=self.placeholder, id="answer", select_on_focus=False
            )
            yield Label("", id="error", classes="error")
            yield Label(Text("enter confirm   esc cancel"), classes="keys")

    def on_mount(self) -> None:
        self.field.cursor_blink = False
        self.field.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        if self.required and not text:
            self.error.update(Text(self.required))
            return
        self.dismiss(text)

    def action_cancel(self) -> None:
        self.dismiss(None)
