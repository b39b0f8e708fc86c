"""The engine's side of the control socket: validate, dispatch, answer, one line each.

Operator requests (protocol.OperatorRequest) pass the engine's guard first, with the pid of
the process that sent them (SO_PEERCRED): clients are not trusted to say who they are
(docs/reliability.md T1, core/trust/authority.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import stat
import struct
from collections.abc import Awaitable, Callable
from pathlib import Path

from pydantic import ValidationError

from corral.core.control.protocol import (
    MAX_MESSAGE_BYTES,
    OperatorRequest,
    Request,
    RequestAdapter,
    Response,
)

Handler = Callable[[Request], Awaitable[Response]]
Guard = Callable[[OperatorRequest, int | None], Awaitable[Response | None]]
"""Refuses an operator request (a Response) or lets it through (None), given the sender's pid."""


def _clear_stale_socket(path: Path) -> None:
    """Remove a socket left by a dead engine; refuse anything else in its place (L8)."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(info.st_mode):
        raise PermissionError(f"{path} exists and is not a socket; remove it and start again")
    path.unlink()


def _peer_pid(writer: asyncio.StreamWriter) -> int | None:
    """The pid of the process that connected (the kernel's word, not the client's)."""
    sock = writer.get_extra_info("socket")
    try:
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except (AttributeError, OSError):
        return None
    pid: int = struct.unpack("3i", creds)[0]
    return pid


async def serve(path: Path, handler: Handler, guard: Guard | None = None) -> asyncio.Server:
    """Listen on `path` (its directory is 0700, the socket 0600)."""
    _clear_stale_socket(path)

    async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = _peer_pid(writer)
        try:
            while line := await reader.readline():
                response = await _answer(line, handler, guard, peer)
                writer.write(response.model_dump_json(exclude_none=True).encode() + b"\n")
                await writer.drain()
        except (ValueError, ConnectionError):
            pass  # an over-long line or a client that went away: drop the connection
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    old_umask = os.umask(0o177)
    try:
        server = await asyncio.start_unix_server(on_client, path=str(path), limit=MAX_MESSAGE_BYTES)
    finally:
        os.umask(old_umask)
    return server


async def _answer(line: bytes, handler: Handler, guard: Guard | None, peer: int | None) -> Response:
    try:
        request = RequestAdapter.validate_json(line)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return Response(ok=False, error=f"bad request: {where}: {first['msg']}")
    if guard is not None and isinstance(request, OperatorRequest):
        refused = await guard(request, peer)
        if refused is not None:
            return refused
    return await handler(request)
