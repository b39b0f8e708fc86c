"""A running agent's standard input, held by the engine: how a person's message reaches it.

An agent whose plan says it takes input while it runs (`input_format`, e.g. Claude Code's
`--input-format stream-json`) is started with a pipe as its stdin; every other command gets
/dev/null. The engine writes each message whole, never blocking its loop: what the pipe cannot
take at once waits in a bounded buffer flushed when the pipe drains (`loop.add_writer`), and a
message that would overflow the buffer is refused, said so to the person. Closing the input
(the agent's turn is over, or the attempt ends) gives the agent end-of-file once the buffer is
written. The pipe is the engine's alone: after an engine restart the agent reads end-of-file,
and a message to it is refused ("its input was lost").
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import Callable
from typing import Literal

from corral.core.errors import CorralError

MAX_PENDING = 1 << 20
"""Bytes of messages waiting for the agent to read them before a new one is refused."""


def encode_input(input_format: Literal["lines", "stream-json"], text: str) -> bytes:
    """A message as the agent reads it: one line of text, or Claude Code's stream-json user
    message (`--input-format stream-json`); a line break in `lines` text becomes a space."""
    if input_format == "stream-json":
        message = {"role": "user", "content": [{"type": "text", "text": text}]}
        return json.dumps({"type": "user", "message": message}).encode() + b"\n"
    return " ".join(text.splitlines()).encode() + b"\n"


class InputRefused(CorralError):
    """The agent cannot take this message now; the reason says why and what to do."""


class BoundedWriter:
    """Whole messages to a non-blocking fd: what it cannot take at once waits in a buffer of at
    most MAX_PENDING bytes, written as the fd drains (`loop.add_writer`); a message that would
    overflow it is refused whole. `on_drained` runs once the buffer is empty, `on_broken` when
    the reader is gone (EPIPE, EIO): the owner decides what either means."""

    def __init__(
        self, fd: int, *, on_drained: Callable[[], None], on_broken: Callable[[], None]
    ) -> None:
        self.fd: int | None = fd
        self.pending = bytearray()
        self.watching = False
        self.on_drained = on_drained
        self.on_broken = on_broken

    def queue(self, data: bytes) -> None:
        if len(self.pending) + len(data) > MAX_PENDING:
            raise InputRefused(
                f"it has not read the {len(self.pending)} bytes already sent; wait for it"
            )
        self.pending += data
        self.flush()

    def flush(self) -> None:
        fd = self.fd
        if fd is None:
            return
        try:
            while self.pending:
                written = os.write(fd, self.pending)
                del self.pending[:written]
        except BlockingIOError:
            self._watch(fd, True)
            return
        except OSError:  # the reader is gone: nothing more reaches the agent
            self.stop()
            self.on_broken()
            return
        self._watch(fd, False)
        self.on_drained()

    def stop(self) -> None:
        """Drop what is pending and write no more (the owner closes the fd)."""
        self.pending.clear()
        if self.fd is not None:
            self._watch(self.fd, False)
        self.fd = None

    def _watch(self, fd: int, on: bool) -> None:
        if on == self.watching:
            return
        with contextlib.suppress(RuntimeError):  # no loop: the buffer waits for the next send
            loop = asyncio.get_running_loop()
            if on:
                loop.add_writer(fd, self.flush)
            else:
                loop.remove_writer(fd)
            self.watching = on


class PipeInput:
    """The write end of an agent's stdin pipe (non-blocking), with a bounded buffer."""

    def __init__(self, fd: int) -> None:
        os.set_blocking(fd, False)
        self.fd: int | None = fd
        self.closing = False
        self.writer = BoundedWriter(fd, on_drained=self._drained, on_broken=self._close_now)

    @property
    def closed(self) -> bool:
        return self.fd is None or self.closing

    def send(self, data: bytes) -> None:
        """Queue `data` whole for the agent, or refuse it (InputRefused) without writing any."""
        if self.closed:
            raise InputRefused("its input is closed (its turn is over, or it ended)")
        self.writer.queue(data)

    def close(self) -> None:
        """End-of-file for the agent, once what is pending is written (or it stops reading)."""
        self.closing = True
        if not self.writer.pending:
            self._close_now()

    def abandon(self) -> None:
        """The agent has ended: drop what it never read and close at once."""
        self._close_now()

    def _drained(self) -> None:
        if self.closing:
            self._close_now()

    def _close_now(self) -> None:
        fd, self.fd = self.fd, None
        self.closing = True
        self.writer.stop()
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)
