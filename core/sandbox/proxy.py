"""The allowlist proxy corral runs for sandboxes with `network = "allow"` (T6).

HTTP CONNECT (for https and any TCP) and plain HTTP with an absolute URI. Only an exact
`host:port` of the allowlist is connected to (host compared case-insensitively, as written: a
name is never matched against an address it resolves to), and nothing else is resolved. A
refused request gets `403` and `on_refused("host:port")`, which the engine turns into an event
naming the agent and the destination. One request a connection: plain HTTP is sent on with
`Connection: close`.

The sandbox reaches the proxy through a Unix socket (`start_unix`), bind-mounted into a
network namespace that has nothing else; `start_tcp` listens on loopback for tests and hosts.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from corral.core.sandbox.policy import parse_destination

HEAD_LIMIT = 64 * 1024
HEAD_TIMEOUT = 30.0
CONNECT_TIMEOUT = 15.0
CHUNK = 65536
_HOP_HEADERS = (b"proxy-connection", b"proxy-authorization", b"connection", b"keep-alive")


class _Refused(Exception):
    def __init__(self, status: str, destination: str | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.destination = destination


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Copy to end of file, then half-close `writer` so the other direction can finish."""
    try:
        while data := await reader.read(CHUNK):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (ConnectionError, OSError):
        writer.close()


class AllowlistProxy:
    """Serves until `close()`; `on_refused` is called (in the loop) once per refused request."""

    def __init__(
        self, allow: frozenset[tuple[str, int]], on_refused: Callable[[str], None]
    ) -> None:
        self.allow = frozenset((host.lower(), port) for host, port in allow)
        self.on_refused = on_refused
        self._servers: list[asyncio.Server] = []
        self._tasks: set[asyncio.Task[None]] = set()

    async def start_unix(self, path: Path) -> None:
        server = await asyncio.start_unix_server(self._accept, path=str(path))
        os.chmod(path, 0o600)  # a metadata call on a fresh socket: nothing to wait for
        self._servers.append(server)

    async def start_tcp(self, host: str = "127.0.0.1", port: int = 0) -> int:
        server = await asyncio.start_server(self._accept, host=host, port=port)
        self._servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.get_running_loop().create_task(self._serve(reader, writer))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _check(self, host: str, port: int) -> str:
        destination = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        if (host.lower(), port) not in self.allow:
            raise _Refused("403 Forbidden", destination)
        return destination

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: asyncio.StreamWriter | None = None
        try:
            try:
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), HEAD_TIMEOUT)
            except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
                raise _Refused("400 Bad Request") from None
            if len(head) > HEAD_LIMIT:
                raise _Refused("431 Request Header Fields Too Large")
            method, host, port, forward = self._route(head)
            try:
                up_reader, up_writer = await asyncio.wait_for(
                    asyncio.open_connection(host, port), CONNECT_TIMEOUT
                )
            except (OSError, TimeoutError):
                raise _Refused("502 Bad Gateway") from None
            upstream = up_writer
            if method == b"CONNECT":
                writer.write(b"HTTP/1.1 200 Connection Established\r\n\r\n")
            else:
                up_writer.write(forward)
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        except _Refused as refused:
            if refused.destination is not None:
                self.on_refused(refused.destination)
            body = f"corral sandbox: {refused.status}\n".encode()
            writer.write(
                f"HTTP/1.1 {refused.status}\r\nContent-Type: text/plain\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
                + body
            )
        except (ConnectionError, OSError):
            pass
        finally:
            for stream in (writer, upstream):
                if stream is not None:
                    stream.close()
                    with contextlib.suppress(ConnectionError, OSError):
                        await stream.wait_closed()

    def _route(self, head: bytes) -> tuple[bytes, str, int, bytes]:
        """(method, host, port, what to send upstream) for an allowed request; _Refused if not."""
        request_line, _, rest = head.partition(b"\r\n")
        parts = request_line.split(b" ")
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
            raise _Refused("400 Bad Request")
        method, target, version = parts
        text = target.decode("ascii", "replace")
        if method == b"CONNECT":
            try:
                host, port = parse_destination(text)
            except ValueError:
                raise _Refused("400 Bad Request") from None
            self._check(host, port)
            return method, host, port, b""
        url = urlsplit(text)
        if url.scheme != "http" or not url.hostname:
            raise _Refused("400 Bad Request")
        try:
            port = url.port or 80
        except ValueError:
            raise _Refused("400 Bad Request") from None
        self._check(url.hostname, port)
        path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        headers = [
            line
            for line in rest.split(b"\r\n")
            if line and line.split(b":", 1)[0].strip().lower() not in _HOP_HEADERS
        ]
        forward = b" ".join((method, path.encode(), version)) + b"\r\n"
        forward += b"".join(line + b"\r\n" for line in headers) + b"Connection: close\r\n\r\n"
        return method, url.hostname, port, forward
