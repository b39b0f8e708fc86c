"""The adapter contract: bytes of an agent's output in, activities out; never an exception.

An adapter is incremental (feed it whatever arrived, a line may be split across two feeds) and
pure (no clock, no I/O), so the engine can run it in its loop and a test can run it on a sample.
A line it cannot read is counted in `malformed` and skipped: the raw stream stays in output.log.
"""

from __future__ import annotations

import json
from typing import Any, ClassVar

from corral.core.streams.activity import SUMMARY_CHARS, Activity, clip

MAX_LINE = 8 << 20
"""A line longer than this (a tool result the size of a file) is skipped unread, and counted."""
_SUMMARY_KEYS = (
    "file_path",
    "filePath",
    "path",
    "command",
    "cmd",
    "pattern",
    "url",
    "query",
    "description",
    "prompt",
    "text",
)


def summarize_arguments(arguments: Any) -> str:
    """A tool call's arguments in a few words: the path, command or query it acts on."""
    if isinstance(arguments, str):
        return clip(arguments, SUMMARY_CHARS)
    if not isinstance(arguments, dict):
        return ""
    for key in _SUMMARY_KEYS:
        value = arguments.get(key)
        if isinstance(value, str) and value:
            return clip(value, SUMMARY_CHARS)
        if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            return clip(" ".join(value), SUMMARY_CHARS)
    for key, value in arguments.items():
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return clip(f"{key}={value}", SUMMARY_CHARS)
    return ""


def as_int(value: Any) -> int:
    """A token count from a stream: a non-negative int, else 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


class StreamAdapter:
    """Splits output into lines and hands each to `line`; subclasses read one CLI's lines."""

    name: ClassVar[str] = ""

    def __init__(self) -> None:
        self.malformed = 0
        """Lines that claimed to be the CLI's stream and could not be read."""
        self.lines = 0
        self._partial = b""
        self._skipping = False

    def feed(self, data: bytes) -> list[Activity]:
        """The activities of every complete line in what arrived (with what was left over)."""
        out: list[Activity] = []
        if not data:
            return out
        pieces = data.split(b"\n")
        if self._partial:
            pieces[0] = self._partial + pieces[0]
        self._partial = pieces.pop()
        for raw in pieces:
            if self._skipping:
                self._skipping = False
                continue
            self._read(raw, out)
        if len(self._partial) > MAX_LINE:
            self.malformed += 1
            self._partial = b""
            self._skipping = True  # the rest of this line, up to its newline, is dropped too
        return out

    def finish(self) -> list[Activity]:
        """The last line, if the output ended without a newline."""
        out: list[Activity] = []
        if self._partial and not self._skipping:
            self._read(self._partial, out)
        self._partial = b""
        return out

    def _read(self, raw: bytes, out: list[Activity]) -> None:
        self.lines += 1
        try:
            text = raw.decode("utf-8", errors="replace").strip()
            if text:
                out.extend(self.line(text))
        except Exception:  # an adapter never stops the engine: a line it cannot read is counted
            self.malformed += 1

    def line(self, text: str) -> list[Activity]:
        """The activities of one non-empty line (raise on one that cannot be read)."""
        raise NotImplementedError


class JsonLinesAdapter(StreamAdapter):
    """A CLI that writes one JSON object a line; other lines (its stderr) are not counted."""

    def line(self, text: str) -> list[Activity]:
        if not text.startswith("{"):
            return []
        obj = json.loads(text)
        if not isinstance(obj, dict):
            raise ValueError("not an object")
        return self.event(obj)

    def event(self, obj: dict[str, Any]) -> list[Activity]:
        raise NotImplementedError
