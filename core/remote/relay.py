"""The control socket on a remote host: every request stamped with the attempt's own token.

The host's end of the socket is forwarded over the SSH connection, so on the engine's side every
request arrives from the engine's own process: SO_PEERCRED (core/control/server.py) would name
the engine, which is a person's, not an agent's. So the forwarded socket does not reach the
engine's socket directly: each connection goes through `relay`, which puts the attempt's token
into every request that carries one (and replaces any other token the agent wrote there). What
comes through is that attempt's, for heartbeats, locks and fenced writes, and an operator request
from it is refused as that attempt's (docs/reliability.md T1). A request of an attempt that is
over (a host back after a partition) carries a token the engine no longer honours: refused and
recorded (T7). Nothing here is tied to SSH: any pair of streams will do.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from pathlib import Path
from typing import Protocol

MAX_LINE = 1 << 20
NO_TOKEN_OPS = frozenset({"ping", "status", "lock_list"})
"""The protocol's requests without a `token` field (core/control/protocol.py; a test keeps the
two in step). Every other request gets the attempt's token; an op added later without one is
made invalid by it, so it fails closed."""


class LineReader(Protocol):
    async def readline(self) -> bytes: ...


class Writer(Protocol):
    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def close(self) -> None: ...


def stamp(line: bytes, token: str) -> bytes:
    """The request with the attempt's token (a line that is no JSON object goes as is: the
    engine answers it with its own error)."""
    try:
        request = json.loads(line)
    except ValueError:
        return line
    if not isinstance(request, dict) or request.get("op") in NO_TOKEN_OPS:
        return line
    request["token"] = token
    return json.dumps(request).encode() + b"\n"


async def relay(reader: LineReader, writer: Writer, engine_socket: Path, token: str) -> None:
    """Carry one forwarded connection to the engine's socket and its answers back."""
    try:
        up_reader, up_writer = await asyncio.open_unix_connection(
            str(engine_socket), limit=MAX_LINE
        )
    except OSError:
        writer.close()
        return

    async def answers() -> None:
        while line := await up_reader.readline():
            writer.write(line)
            await writer.drain()

    back = asyncio.create_task(answers())
    try:
        while line := await reader.readline():
            if len(line) > MAX_LINE:
                break
            up_writer.write(stamp(line, token))
            await up_writer.drain()
        up_writer.write_eof()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(back), 30)
    except (ConnectionError, OSError):
        pass
    finally:
        back.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
            await back
        up_writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            writer.close()
