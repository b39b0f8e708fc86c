"""An attempt's control socket on its node, carried to the engine's socket over actor calls.

The agent-side commands (`corral heartbeat`, `corral lock`, `corral put`, `corral mcp agent`)
talk to `CORRAL_SOCKET`, a Unix socket. On a node that socket is the actor's (`NodeListener`):
each connection's bytes become frames `(connection id, bytes)` that the engine takes with a
long poll (`pull`), and what the engine's socket answers goes back with `push`. The engine side
(`EngineRelay`) opens one connection to its own control socket per agent connection. Only the
engine dials out, so this works when the nodes are other machines (no path, port or filesystem
is shared); the engine's socket checks the attempt's token on every request, so a lost
attempt's late requests are refused there (fencing), not here.

Generic: the transport is two callables, so an SSH runtime can carry the same frames.
An empty `bytes` in a frame is end-of-file for that direction.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from pathlib import Path

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


class EngineRelay:
    """The engine's side: frames from the node to the engine's control socket and back."""

    def __init__(self, socket: Path, pull: Pull, push: Push, poll: float = 5.0) -> None:
        self.socket = socket
        self.pull = pull
        self.push = push
        self.poll = poll
        self.writers: dict[int, asyncio.StreamWriter] = {}
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
                writer.write(data)
                await writer.drain()
            else:
                writer.write_eof()
        except OSError:
            pass

    async def _back(self, conn: int, reader: asyncio.StreamReader) -> None:
        try:
            while data := await reader.read(CHUNK):
                await self.push(conn, data)
        except OSError:
            pass
        with contextlib.suppress(Exception):
            await self.push(conn, b"")
        writer = self.writers.pop(conn, None)
        if writer is not None:
            writer.close()
