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


class PipeInput:
    """The write end of an agent's stdin pipe (non-blocking), with a bounded buffer."""

    def __init__(self, fd: int) -> None:
        os.set_blocking(fd, False)
        self.fd: int | None = fd
        self.pending = bytearray()
        self.closing = False
        self.watching = False

    @property
    def closed(self) -> bool:
        return self.fd is None or self.closing

    def send(self, data: bytes) -> None:
        """Queue `data` whole for the agent, or refuse it (InputRefused) without writing any."""
        if self.closed:
            raise InputRefused("its input is closed (its turn is over, or it ended)")
        if len(self.pending) + len(data) > MAX_PENDING:
            raise InputRefused(
                f"it has not read the {len(self.pending)} bytes already sent; wait for it"
            )
        self.pending += data
        self._flush()

    def close(self) -> None:
        """End-of-file for the agent, once what is pending is written (or it stops reading)."""
        self.closing = True
        if not self.pending:
            self._close_now()

    def abandon(self) -> None:
        """The agent has ended: drop what it never read and close at once."""
        self.pending.clear()
        self._close_now()

    def _flush(self) -> None:
        fd = self.fd
        if fd is None:
            return
        try:
            while self.pending:
                written = os.write(fd, self.pending)
                del self.pending[:written]
        except BlockingIOError:
            self._watch(fd)
            return
        except OSError:  # the agent closed its end (EPIPE) or ended: nothing more reaches it
            self.pending.clear()
            self._close_now()
            return
        self._unwatch(fd)
        if self.closing:
            self._close_now()

    def _watch(self, fd: int) -> None:
        if not self.watching:
            with contextlib.suppress(RuntimeError):  # no loop: the buffer waits for the next send
                asyncio.get_running_loop().add_writer(fd, self._flush)
                self.watching = True

    def _unwatch(self, fd: int) -> None:
        if self.watching:
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().remove_writer(fd)
            self.watching = False

    def _close_now(self) -> None:
        fd, self.fd = self.fd, None
        self.closing = True
        if fd is not None:
            self._unwatch(fd)
            with contextlib.suppress(OSError):
                os.close(fd)
