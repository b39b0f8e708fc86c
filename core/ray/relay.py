"""An attempt's control socket on its node, carried to the engine's socket over actor calls.

The agent-side commands (`corral heartbeat`, `corral lock`, `corral put`, `corral mcp agent`)
talk to `CORRAL_SOCKET`, a Unix socket. On a node that socket is the actor's (`NodeListener`):
each connection's bytes become frames `(connection id, bytes)` that the engine takes with a
long poll (`pull`), and what the engine's socket answers goes back with `push`. The engine side
(`EngineRelay`) opens one connection to its own control socket per agent connection. Only the
engine dials out, so this works when the nodes are other machines (no path, port or filesystem
is shared). Those connections come from the engine's own process, so SO_PEERCRED would name
the engine, a person's: every request line going up is stamped with the attempt's own token
(core/remote/relay.py `stamp`, the SSH relay's rule), so an operator request from a node is
refused as that attempt's (docs/reliability.md T1), and a lost attempt's late requests carry a
token the engine no longer honours (fencing).

Generic: the transport is two callables, so an SSH runtime can carry the same frames.
An empty `bytes` in a frame is end-of-file for that direction.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path

from corral.core.remote.relay import MAX_LINE, stamp

CHUNK = 65536
Frame = tuple[int, bytes]


class NodeListener:
    """The node's side: a Unix socket that turns connections into frames and frames back."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.outgoing: list[Frame] = []
        self.ready = asyncio.Event()
        self.writers: dict[int, asyncio.StreamWriter] = {}
        self.next_id = 0
        self.server: asyncio.Server | None = None

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)
        self.server = await asyncio.start_unix_server(self._serve, path=str(self.path))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.next_id += 1
        conn = self.next_id
        self.writers[conn] = writer
        try:
            while data := await reader.read(CHUNK):
                self._queue(conn, data)
        except OSError:
            pass
        self._queue(conn, b"")

    def _queue(self, conn: int, data: bytes) -> None:
        self.outgoing.append((conn, data))
        self.ready.set()

    async def pull(self, timeout: float) -> list[Frame]:  # noqa: ASYNC109
        """The frames since the last pull, waiting up to `timeout` seconds for the first."""
        if not self.outgoing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.ready.wait(), timeout)
        frames, self.outgoing = self.outgoing, []
        self.ready.clear()
        return frames

    async def push(self, conn: int, data: bytes) -> None:
        writer = self.writers.get(conn)
        if writer is None:
            return
        try:
            if data:
                writer.write(data)
                await writer.drain()
            else:
                self.writers.pop(conn, None)
                writer.close()
        except OSError:
            self.writers.pop(conn, None)

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        for writer in self.writers.values():
            writer.close()
        self.writers.clear()
        self.path.unlink(missing_ok=True)


Pull = Callable[[float], Awaitable[list[Frame]]]
Push = Callable[[int, bytes], Awaitable[None]]


class _LineTooLong(Exception):
    """A request line past MAX_LINE: the connection is dropped, as the SSH relay does."""


class EngineRelay:
    """The engine's side: frames from the node to the engine's control socket and back."""

    def __init__(
        self, socket: Path, pull: Pull, push: Push, *, token: str, poll: float = 5.0
    ) -> None:
        self.socket = socket
        self.pull = pull
        self.push = push
        self.token = token
        """The attempt's: stamped into every request (`stamp`)."""
        self.poll = poll
        self.writers: dict[int, asyncio.StreamWriter] = {}
        self.partial: dict[int, bytearray] = {}
        """Per connection, the start of a request line whose end has not come yet."""
        self.readers: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Until the pull fails (the actor is gone) or the task is cancelled."""
        try:
            while True:
                for conn, data in await self.pull(self.poll):
                    await self._forward(conn, data)
        finally:
            for writer in self.writers.values():
                writer.close()
            for task in self.readers:
                task.cancel()

    async def _forward(self, conn: int, data: bytes) -> None:
        writer = self.writers.get(conn)
        if writer is None:
            if not data:
                return
            try:
                reader, writer = await asyncio.open_unix_connection(str(self.socket))
            except OSError:
                await self.push(conn, b"")
                return
            self.writers[conn] = writer
            task = asyncio.create_task(self._back(conn, reader), name=f"relay-{conn}")
            self.readers.add(task)
            task.add_done_callback(self.readers.discard)
        try:
            if data:
                for line in self._lines(conn, data):
                    writer.write(stamp(line, self.token))
                await writer.drain()
            else:
                rest = self.partial.pop(conn, b"")
                if rest:
                    writer.write(stamp(bytes(rest), self.token))
                writer.write_eof()
        except _LineTooLong:
            self.partial.pop(conn, None)
            writer.close()
            await self.push(conn, b"")
        except OSError:
            pass

    def _lines(self, conn: int, data: bytes) -> list[bytes]:
        """The complete request lines `data` ends; the rest waits for its end (MAX_LINE)."""
        pending = self.partial.setdefault(conn, bytearray())
        pending += data
        *lines, rest = pending.split(b"\n")
        self.partial[conn] = bytearray(rest)
        if len(rest) > MAX_LINE or any(len(line) > MAX_LINE for line in lines):
            raise _LineTooLong
        return [bytes(line) + b"\n" for line in lines]

    async def _back(self, conn: int, reader: asyncio.StreamReader) -> None:
        try:
            while data := await reader.read(CHUNK):
                await self.push(conn, data)
        except OSError:
            pass
        with contextlib.suppress(Exception):
            await self.push(conn, b"")
        writer = self.writers.pop(conn, None)
        self.partial.pop(conn, None)
        if writer is not None:
            writer.close()
