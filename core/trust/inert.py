"""Text an agent or a plan wrote, made inert before it reaches a terminal or a report (T5).

The one home of the rule: the command line, the console (`tui/text.py`), the report files and
the findings loader all use these functions, and nothing else strips or tests for escapes.

Removed: escape sequences (CSI, OSC, DCS, SOS, PM, APC, two-byte ESC sequences and a lone ESC,
and their 8-bit forms introduced by U+0090..U+009F), every other C0 and C1 control and DEL, and
the bidirectional controls, which can reorder what a reader sees. A string sequence (OSC, DCS,
...) ends at its terminator or at the end of its line, so an unterminated one cannot hide the
lines after it. Kept: all printable text and, where the output has lines, newline and tab; there
a carriage return becomes a newline, so no line can overwrite another.

Invariants: the result of `inert` holds no character `UNSAFE` matches (newline and tab aside
where lines are kept); `inert_json` changes how a JSON text is spelled, never what it means;
`InertStream` gives, piece by piece, what `inert` gives for the whole.

Standard library only and no `typing`: agents' commands import this module, and their start-up
must stay light. Every function is linear in the length of its text.
"""

from __future__ import annotations

import codecs
import re

BIDI = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069"
"""Arabic letter mark, LRM/RLM, embeddings and overrides, isolates (a regex class body)."""
UNSAFE = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f{BIDI}]")
"""A character no terminal should get from an agent: every C0 control but tab and newline,
DEL, every C1 control (CSI is U+009B), and the bidirectional controls."""

_SEQUENCE = re.compile(
    r"""
      \x1b\[ [0-?]* [ -/]* [@-~]?                 # CSI: cursor moves, colours, erase
    | \x1b\] [^\x07\x1b\n]* (?:\x07|\x1b\\)?      # OSC: title, clipboard (52), hyperlink (8)
    | \x1b[PX^_] [^\x1b\n]* (?:\x1b\\)?           # DCS, SOS, PM, APC
    | \x1b [ -/]* [0-~]?                          # two-byte escapes, and a lone ESC
    | \x9b [0-?]* [ -/]* [@-~]?                   # 8-bit CSI
    | [\x90\x98\x9d\x9e\x9f] [^\x9c\x07\n]* [\x9c\x07]?  # 8-bit string sequences
    """,
    re.VERBOSE,
)
_UNFINISHED = re.compile(
    r"""
    (?: \x1b (?: \[ [0-?]* [ -/]* | [\]PX^_] [^\x07\x1b\n]* \x1b? | [ -/]* )
      | \x9b [0-?]* [ -/]*
      | [\x90\x98\x9d\x9e\x9f] [^\x9c\x07\n]*
      | \r
    ) \Z
    """,
    re.VERBOSE,
)
"""The end of a piece of output that the next piece may finish: a sequence cut short, or a
carriage return whose newline may come next."""
_HELD_MAX = 4096
"""Longest unfinished tail held back for the next piece; a longer one is made inert as it is."""
_LINE_BREAKS = re.compile(r"\r\n?")
_BLANKS = re.compile(r"[\t\n\r]")
_JSON_UNSAFE = re.compile(f"[\x7f-\x9f{BIDI}]")
_SPELLED = re.compile(f"[\t\n\x00-\x1f\x7f-\x9f{BIDI}]")


def strip_escapes(text: str) -> str:
    """`text` without its escape sequences; every other character kept."""
    return _SEQUENCE.sub("", text)


def strip_controls(text: str) -> str:
    """`text` without the characters `UNSAFE` matches (newline and tab are kept)."""
    return UNSAFE.sub("", text)


def inert(text: str | None, *, lines: bool = False) -> str:
    """`text`, safe to print: escape sequences and controls removed.

    With `lines`, newlines and tabs are kept and a carriage return becomes a newline; without,
    the result is one line (each of them becomes a space).
    """
    if not text:
        return ""
    if UNSAFE.search(text) is None and (lines or not ("\n" in text or "\t" in text)):
        return text  # the common case costs one scan
    text = strip_escapes(text)
    text = _LINE_BREAKS.sub("\n", text) if lines else _BLANKS.sub(" ", text)
    return strip_controls(text)


def one_line(text: str | None, limit: int = 500) -> str:
    """`text` as one safe line for a screen: line breaks shown as ` ⏎ `, tabs as spaces, at
    most `limit` characters (an ellipsis marks the cut)."""
    if not text:
        return ""
    clean = inert(text, lines=True).replace("\t", " ").replace("\n", " ⏎ ")
    return clean if len(clean) <= limit else clean[: limit - 1] + "…"


def visible(text: str) -> str:
    """`text` with each control, newline and tab spelled out as its escape (`\\x1b`, `\\u202e`):
    for names (a file an agent wrote), which must stay readable and distinct, not just safe."""
    return _SPELLED.sub(lambda m: ascii(m.group())[1:-1], text)


def inert_json(text: str) -> str:
    """A JSON document with DEL, the C1 controls and the bidirectional controls written as
    `\\uXXXX` escapes (encoders escape the C0 controls already); it parses to the same value."""
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


class InertStream:
    """An agent's output bytes in, inert text (lines kept) out, one piece at a time.

    Undecodable bytes become U+FFFD (a raw 8-bit control is one of them); a sequence, a UTF-8
    character or a CRLF cut between two pieces is held back until the next, so the pieces
    together print what `inert(..., lines=True)` prints for the whole.
    """

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._held = ""

    def feed(self, data: bytes, *, final: bool = False) -> str:
        text = self._held + self._decoder.decode(data, final)
        self._held = ""
        if not final:
            tail = _UNFINISHED.search(text, max(0, len(text) - _HELD_MAX))
            if tail is not None:
                self._held, text = tail.group(), text[: tail.start()]
        return inert(text, lines=True)

    def end(self) -> str:
        """What is still held back, made inert: call once the output is complete."""
        return self.feed(b"", final=True)
