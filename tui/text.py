"""Agent text made inert before it reaches the screen (docs/reliability.md U2).

Everything an agent controls (output, heartbeat messages, reasons, branch names, file paths,
findings) goes through `inert` and is drawn as a plain `rich.text.Text`, never parsed as markup,
so an agent cannot move the cursor, retitle the terminal, set the clipboard or style the
console.
"""

from __future__ import annotations

import re

from rich.text import Text

_ESCAPES = re.compile(
    r"""
      \x1b\[[0-?]*[ -/]*[@-~]?            # CSI: cursor moves, colours, erase
    | \x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?  # OSC: title, clipboard (52), hyperlinks (8)
    | \x1b[PX^_][^\x1b]*(?:\x1b\\)?       # DCS, SOS, PM, APC
    | \x1b[ -/]*[0-~]?                    # two-byte escapes, and a lone ESC
    | \x9b[0-?]*[ -/]*[@-~]?              # 8-bit CSI
    | [\x90\x98\x9d\x9e\x9f][^\x9c\x07]*[\x9c\x07]?  # 8-bit string controls
    """,
    re.VERBOSE,
)
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
"""C0/C1 controls and bidirectional overrides (which can reorder what a reviewer reads)."""


def strip_escapes(text: str) -> str:
    """Remove terminal escape sequences; keep newlines and tabs."""
    return _ESCAPES.sub("", text)


def inert(text: str | None, *, limit: int = 500) -> str:
    """One line of agent text, safe to draw: no escapes, no controls, at most `limit` chars."""
    if not text:
        return ""
    clean = _CONTROLS.sub("", strip_escapes(text).replace("\t", " ").replace("\n", " ⏎ "))
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def inert_lines(text: str) -> list[str]:
    """Agent output as lines, the way a terminal would leave them: a carriage return
    overwrites the line (progress bars), escapes and controls are dropped."""
    lines = []
    for raw in strip_escapes(text).replace("\r\n", "\n").split("\n"):
        if "\r" in raw:
            raw = raw.rsplit("\r", 1)[-1] or raw.rstrip("\r").rsplit("\r", 1)[-1]
        lines.append(_CONTROLS.sub("", raw.expandtabs(4)))
    return lines


def plain(text: str | None, style: str = "", *, limit: int = 500) -> Text:
    """An inert `Text` (never markup)."""
    return Text(inert(text, limit=limit), style=style)
