"""A live terminal view of a tty agent: its output.log's bytes fed to a `pyte` emulator and drawn
from the emulator's cells, never from the bytes. An agent's escapes (colours, cursor motion, and
anything hostile: OSC 52, title changes, DCS) end in pyte's state; what reaches the host terminal
is pyte's characters as Rich segments, control characters among them replaced (docs/reliability.md
U2). Only lines pyte marks dirty are re-rendered."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable
from pathlib import Path

import pyte
from rich.segment import Segment
from rich.style import Style
from textual import work
from textual.events import Resize
from textual.geometry import Region, Size
from textual.message import Message
from textual.strip import Strip
from textual.widget import Widget

from corral.core.trust.inert import UNSAFE
from corral.tui import ops

POLL = 0.05
"""Seconds between looks at a quiet log: a typed key's echo shows within a frame or two."""
FEED_SLICE = 8 << 10
"""Bytes fed to the emulator at a time, so a flood never holds the screen's lock for long
(pyte takes about 25 ms for 8 KiB of short lines on this machine: bench/bench_terminal.py)."""
BEHIND = 2 << 20
"""Bytes unread past which the view skips ahead: pyte digests 0.3 to 1 MB/s, and a screen shows
only the last few KiB of a flood (`yes | head -c 50M`) anyway."""
TAIL = 128 << 10
"""Bytes of the log replayed after skipping ahead, from the first line start in them."""
DEFAULT_SIZE = (80, 24)

DECCKM = 1 << 5
"""pyte keeps a private mode (`ESC [ ? n h`) as n << 5 in `screen.mode`."""
BRACKETED_PASTE = 2004 << 5
_COLOURS = {"brown": "yellow", "default": ""}
_BRIGHT = "bright"


def rich_colour(name: str) -> str | None:
    """pyte's colour name ('red', 'brightred', 'brown', 'ff8700', 'default') as Rich's."""
    if name in _COLOURS:
        return _COLOURS[name] or None
    if len(name) == 6 and all(c in "0123456789abcdefABCDEF" for c in name):
        return "#" + name.lower()
    if name.startswith(_BRIGHT):
        base = name[len(_BRIGHT) :]
        base = _COLOURS.get(base, base)
        return f"bright_{base}" if base else None
    return name if name.isalpha() else None


def printable(char: str) -> str:
    """A cell's character made inert: C0, DEL, C1 and bidirectional controls become a space
    (core/trust/inert.py's rule: a cell holds what pyte drew, which may be any code point)."""
    if UNSAFE.search(char) or "\t" in char or "\n" in char:
        return " "
    return char


def cell_style(char: pyte.screens.Char, *, color: bool, cursor: bool = False) -> Style:
    fg = rich_colour(char.fg) if color else None
    bg = rich_colour(char.bg) if color else None
    return Style(
        color=fg,
        bgcolor=bg,
        bold=char.bold or None,
        italic=char.italics or None,
        underline=char.underscore or None,
        strike=char.strikethrough or None,
        reverse=(char.reverse != cursor) or None,
    )


def line_segments(
    line: dict[int, pyte.screens.Char], columns: int, *, color: bool, cursor_x: int | None
) -> list[Segment]:
    """One row of pyte's buffer as segments, runs of one style joined."""
    segments: list[Segment] = []
    text: list[str] = []
    style: Style | None = None
    default = pyte.screens.Char(" ")
    for x in range(columns):
        char = line.get(x, default) if isinstance(line, dict) else default
        data = printable(char.data)
        if data == "":  # the right half of a wide character: pyte keeps an empty cell
            continue
        here = cell_style(char, color=color, cursor=x == cursor_x)
        if here != style and text:
            segments.append(Segment("".join(text), style))
            text = []
        style = here
        text.append(data)
    if text:
        segments.append(Segment("".join(text), style))
    return segments


def skip_ahead(path: Path, offset: int) -> int | None:
    """Where to read on when more than BEHIND bytes are unread: a line start in the last TAIL."""
    try:  # as ops.read_more opens it: no link followed, never blocking on a FIFO
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        size = os.fstat(fd).st_size
        if size - offset <= BEHIND:
            return None
        start = size - TAIL
        newline = os.pread(fd, TAIL, start).find(b"\n")
    except OSError:
        return None
    finally:
        os.close(fd)
    return start + newline + 1 if newline >= 0 else start


class Terminal:
    """pyte's screen and stream behind a lock: fed from a worker thread, read by the renderer."""

    def __init__(self, columns: int, rows: int) -> None:
        self.lock = threading.Lock()
        self.screen = pyte.Screen(columns, rows)
        self.stream = pyte.ByteStream(self.screen)
        self.fed = 0

    def feed(self, data: bytes) -> set[int]:
        """Feed bytes; the rows they changed."""
        changed: set[int] = set()
        for start in range(0, len(data), FEED_SLICE):
            with self.lock:
                self.stream.feed(data[start : start + FEED_SLICE])
                self.fed += len(data[start : start + FEED_SLICE])
                changed |= self.screen.dirty
                self.screen.dirty.clear()
        return changed

    def reset(self) -> None:
        with self.lock:
            self.screen.reset()
            self.fed = 0

    def resize(self, columns: int, rows: int) -> bool:
        with self.lock:
            if (self.screen.columns, self.screen.lines) == (columns, rows):
                return False
            screen = self.screen
            if rows < screen.lines:  # keep the top; drop only what the cursor needs to stay on
                drop = max(0, screen.cursor.y + 1 - rows)
                if drop:
                    screen.save_cursor()
                    screen.cursor_position(0, 0)
                    screen.delete_lines(drop)
                    screen.restore_cursor()
                    screen.cursor.y -= drop
                for y in range(rows, screen.lines):
                    screen.buffer.pop(y, None)
                screen.lines = rows
            screen.resize(lines=rows, columns=columns)
            screen.set_margins()
            screen.dirty.clear()
            return True

    def modes(self) -> tuple[bool, bool]:
        """Whether the program asked for application cursor keys (DECCKM) and bracketed paste."""
        with self.lock:
            mode = self.screen.mode
            return DECCKM in mode, BRACKETED_PASTE in mode

    def text(self) -> list[str]:
        """What the screen shows, row by row (tests and the bench read it)."""
        with self.lock:
            return [row.rstrip() for row in self.screen.display]


class TerminalView(Widget, can_focus=True):
    """An agent's terminal, emulated from its output.log and sized to this widget."""

    DEFAULT_CSS = """
    TerminalView { height: 1fr; width: 1fr; background: black; color: white; }
    """

    class Resized(Message):
        """The view's size changed: an attached viewer tells the agent's PTY."""

        def __init__(self, columns: int, rows: int) -> None:
            super().__init__()
            self.columns = columns
            self.rows = rows

    class Fed(Message):
        def __init__(self, rows: set[int], reset: bool) -> None:
            super().__init__()
            self.rows = rows
            self.reset = reset

    def __init__(
        self,
        source: Callable[[], Path | None],
        *,
        color: bool = True,
        id: str | None = None,
    ) -> None:
        super().__init__(id=id)
        self.source = source
        """The current attempt's output.log (None before it starts); asked again on each poll."""
        self.color = color
        self.terminal = Terminal(*DEFAULT_SIZE)
        self.strips: dict[int, Strip] = {}
        self.path: Path | None = None
        self.following = False
        self.cursor_row = 0
        """The row the cursor was drawn on: redrawn when it moves off."""

    # -- following the log ---------------------------------------------------------------------

    @work(group="terminal", exclusive=True)
    async def follow(self) -> None:
        """Read the log as it grows and feed the emulator off the event loop; start over on a
        new attempt or a replaced (redacted) log, skip ahead when far behind."""
        offset = inode = 0
        while True:
            current = self.source()
            reset = False
            if current != self.path:
                self.path, offset, inode, reset = current, 0, 0, True
                self.terminal.reset()
            data = b""
            if self.path is not None:
                skipped = await asyncio.to_thread(skip_ahead, self.path, offset)
                if skipped is not None:
                    offset = skipped
                    self.terminal.reset()
                    reset = True
                seen = inode
                data, offset, inode = await asyncio.to_thread(
                    ops.read_more, self.path, offset, inode
                )
                if seen and inode != seen:  # the log was replaced (redacted): replay the copy
                    self.terminal.reset()
                    reset = True
            rows = await asyncio.to_thread(self.terminal.feed, data) if data else set()
            if rows or reset:
                self.post_message(self.Fed(rows, reset))
            if not data:
                await asyncio.sleep(POLL)

    def on_terminal_view_fed(self, message: Fed) -> None:
        message.stop()
        if message.reset:
            self.strips.clear()
            self.refresh()
            return
        width = self.size.width
        for row in message.rows | self._cursor_rows():
            self.strips.pop(row, None)
            self.refresh(Region(0, row, width, 1))

    def _cursor_rows(self) -> set[int]:
        """The cursor's old and new row: it is drawn as a reversed cell."""
        with self.terminal.lock:
            y = self.terminal.screen.cursor.y
        old, self.cursor_row = self.cursor_row, y
        return {old, y}

    # -- size ----------------------------------------------------------------------------------

    def on_resize(self, event: Resize) -> None:
        columns, rows = max(event.size.width, 1), max(event.size.height, 1)
        if self.terminal.resize(columns, rows):
            self.strips.clear()
            self.refresh()
        if not self.following:  # sized first: pyte drops the top rows when it shrinks
            self.following = True
            self.follow()
        self.post_message(self.Resized(columns, rows))

    def get_content_width(self, container: Size, viewport: Size) -> int:
        return container.width

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return container.height

    # -- drawing -------------------------------------------------------------------------------

    def render_line(self, y: int) -> Strip:
        cached = self.strips.get(y)
        if cached is not None:
            return cached
        width = self.size.width
        with self.terminal.lock:
            screen = self.terminal.screen
            if y >= screen.lines:
                return Strip.blank(width)
            cursor = screen.cursor
            cursor_x = cursor.x if cursor.y == y and not cursor.hidden else None
            segments = line_segments(
                screen.buffer[y], screen.columns, color=self.color, cursor_x=cursor_x
            )
        strip = Strip(segments).adjust_cell_length(width).simplify()
        self.strips[y] = strip
        return strip

    def lines(self) -> list[str]:
        return self.terminal.text()
