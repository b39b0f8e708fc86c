"""Agent text made inert before it reaches the screen (docs/reliability.md U2).

Everything an agent controls (output, heartbeat messages, reasons, branch names, file paths,
findings) goes through `inert` and is drawn as a plain `rich.text.Text`, never parsed as markup,
so an agent cannot move the cursor, retitle the terminal, set the clipboard or style the
console. What is removed is core's rule (`corral.core.trust.inert`); this module only shapes the
result for the console: one line with visible line breaks, or lines as a terminal leaves them.
"""

from __future__ import annotations

from rich.text import Text

from corral.core.trust import inert as core
from corral.core.trust.inert import strip_escapes

__all__ = ["inert", "inert_lines", "plain", "strip_escapes"]


def inert(text: str | None, *, limit: int = 500) -> str:
    """One line of agent text, safe to draw: no escapes, no controls, at most `limit` chars."""
    return core.one_line(text, limit)


def inert_lines(text: str) -> list[str]:
    """Agent output as lines, the way a terminal would leave them: a carriage return
    overwrites the line (progress bars), escapes and controls are dropped."""
    lines = []
    for raw in strip_escapes(text).replace("\r\n", "\n").split("\n"):
        if "\r" in raw:
            raw = raw.rsplit("\r", 1)[-1] or raw.rstrip("\r").rsplit("\r", 1)[-1]
        lines.append(core.strip_controls(raw.expandtabs(4)))
    return lines


def plain(text: str | None, style: str = "", *, limit: int = 500) -> Text:
    """An inert `Text` (never markup)."""
    return Text(inert(text, limit=limit), style=style)
