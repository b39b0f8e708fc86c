"""A terminal agent's pseudo-terminal, held by the engine: its keystrokes in, its screen out.

An agent whose plan says `tty = true` runs on a pseudo-terminal (core/runtime/proctree.py
`spawn(tty=...)`); the engine holds the master side. Everything the agent writes there is
copied, byte for byte with its escapes, into its output.log, so a front end can replay the
screen from the log and liveness-by-output keeps working (it reads the log's size). The copy
never blocks the loop and never starves it: each time the master is readable at most
READS_PER_WAKE reads of READ_CHUNK bytes are taken, then the loop runs everything else that
is ready. Keystrokes go the other way as `AgentInput`, written whole through the same bounded
buffer as `PipeInput`'s (`BoundedWriter`), and `resize` tells the agent its new size (SIGWINCH).

The terminal is the engine's alone: when the engine dies the master closes, the agent gets
SIGHUP, and the attempt is lost on resume like any other the engine stopped watching.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import termios
from pathlib import Path

from corral.core.runtime.agent_input import BoundedWriter, InputRefused

READ_CHUNK = 1 << 16
READS_PER_WAKE = 4
"""At most 256 KiB copied per wake-up: a fast writer (`yes`) shares the loop with the rest."""
DRAIN_READS = 64
"""At most 4 MiB copied after the agent ended (a child of it may write on until stopped)."""
LOG_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC


def typed_line(text: str) -> bytes:
    """A message to a terminal agent as a person would type it: one line, then Enter (a
    terminal's Enter is a carriage return, which the line discipline makes a line feed)."""
    return " ".join(text.splitlines()).encode() + b"\r"


class PtyInput:
    """The master side of an agent's terminal: its output copied to the log, input and size in."""

    def __init__(self, fd: int, log_path: Path) -> None:
        os.set_blocking(fd, False)
        self.fd: int | None = fd
        self.log_fd: int | None = os.open(log_path, LOG_FLAGS, 0o600)
        self.input_closed = False
        self.writer = BoundedWriter(fd, on_drained=lambda: None, on_broken=self._hung_up)
        self.reading = False
        self.copied = 0
        with contextlib.suppress(RuntimeError):  # no loop (a test's direct use): drain() reads
            asyncio.get_running_loop().add_reader(fd, self._on_readable)
            self.reading = True

    @property
    def closed(self) -> bool:
        return self.fd is None or self.input_closed

    # --- output ----------------------------------------------------------------------------

    def _on_readable(self) -> None:
        self._copy(READS_PER_WAKE)

    def _copy(self, reads: int) -> None:
        """Copy up to `reads` chunks of what the terminal holds now to the log."""
        fd = self.fd
        count = 0
        while fd is not None and count < reads:
            count += 1
            try:
                data = os.read(fd, READ_CHUNK)
            except BlockingIOError:
                return
            except OSError:  # EIO: every holder of the terminal's slave side is gone
                data = b""
            if not data:
                self._stop_reading()
                return
            self._write_log(data)

    def _write_log(self, data: bytes) -> None:
        if self.log_fd is None:
            return
        view = memoryview(data)
        while view:
            written = os.write(self.log_fd, view)
            view = view[written:]
        self.copied += len(data)

    def _stop_reading(self) -> None:
        if self.reading and self.fd is not None:
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().remove_reader(self.fd)
        self.reading = False

    # --- input -----------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Queue `data` (keystrokes, as is) whole for the agent, or refuse it (InputRefused)."""
        if self.closed:
            raise InputRefused("its terminal is closed (it ended)")
        self.writer.queue(data)

    def close(self) -> None:
        """No more input; its output is still copied until it ends."""
        self.input_closed = True

    def resize(self, columns: int, rows: int) -> None:
        """The terminal's new size: the kernel tells the agent's foreground group (SIGWINCH)."""
        if self.fd is None:
            raise InputRefused("its terminal is closed (it ended)")
        termios.tcsetwinsize(self.fd, (rows, columns))

    def _hung_up(self) -> None:
        """The terminal hung up: nothing more reaches the agent (its output is still read)."""
        self.input_closed = True

    # --- end -------------------------------------------------------------------------------

    def abandon(self) -> None:
        """The agent has ended: copy what it left in the terminal, then close both ends."""
        self.writer.stop()
        self.input_closed = True
        fd = self.fd
        if fd is not None:
            self._copy(DRAIN_READS)
            self._stop_reading()
            self.fd = None
            with contextlib.suppress(OSError):
                os.close(fd)
        log_fd, self.log_fd = self.log_fd, None
        if log_fd is not None:
            os.close(log_fd)
