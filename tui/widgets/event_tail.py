"""The last events of the run, one inert line each, newest at the bottom."""

from __future__ import annotations

import time
from collections.abc import Iterable

from rich.text import Text
from textual.widgets import RichLog

from corral.tui.feed import TailLine
from corral.tui.look import monochrome

MAX_PER_DRAW = 200
"""A burst bigger than this is summarised: nobody reads 5,000 lines a tenth of a second."""
KIND_STYLE = {
    "agent_finished": "bold",
    "agent_dead_lettered": "red",
    "agent_cancelled": "magenta",
    "lock_broken": "red bold",
    "conflict_predicted": "yellow",
    "branch_left_out": "red",
    "report_approved": "green bold",
    "report_rejected": "red bold",
    "run_finished": "bold",
    "network_refused": "yellow",
    "operator_action_refused": "red bold",
}


def tail_text(line: TailLine) -> Text:
    text = Text(time.strftime("%H:%M:%S", time.localtime(line.ts)) + " ", style="dim")
    text.append(f"#{line.seq} ", style="dim")
    text.append(line.text, style=KIND_STYLE.get(line.kind, ""))
    return text


class EventTail(RichLog):
    DEFAULT_CSS = """
    EventTail { scrollbar-size-vertical: 1; }
    """

    def __init__(
        self, *, name: str | None = None, id: str | None = None, classes: str | None = None
    ) -> None:
        super().__init__(
            name=name,
            id=id,
            classes=classes,
            max_lines=1000,
            wrap=False,
            markup=False,
            highlight=False,
            auto_scroll=True,
        )
        self.drawn_seq = 0

    def add(self, lines: Iterable[TailLine]) -> None:
        fresh = [line for line in lines if line.seq > self.drawn_seq]
        if not fresh:
            return
        if len(fresh) > MAX_PER_DRAW:
            self.write(
                Text(
                    f"… {len(fresh) - MAX_PER_DRAW} events skipped (all are in the log)",
                    style="dim",
                )
            )
            fresh = fresh[-MAX_PER_DRAW:]
        text = Text("\n").join(tail_text(line) for line in fresh)  # one render per batch
        self.write(monochrome(text) if self.app.no_color else text)
        self.drawn_seq = fresh[-1].seq
