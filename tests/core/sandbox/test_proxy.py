"""The allowlist proxy with real sockets: an allowed destination answers through CONNECT and
plain HTTP, a refused one is never connected to, answers 403 and is reported."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from corral.core.sandbox.proxy import AllowlistProxy
from tests.core.sandbox.origin import Origin


@dataclass
class Setup:
    proxy: AllowlistProxy
    proxy_port: int
    allowed: Origin
    allowed_port: int
    refused: Origin
    refused_port: int
    reported: list[str]


async def _exchange(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(data)
    await writer.drain()
    answer = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    await writer.wait_closed()
    return answer


@asynccontextmanager
async def started() -> AsyncIterator[Setup]:
    allowed, refused = Origin("allowed"), Origin("refused")
    allowed_port, refused_port = await allowed.start(), await refused.start()
    reported: list[str] = []
    proxy = AllowlistProxy(frozenset({("127.0.0.1", allowed_port)}), reported.append)
    port = await proxy.start_tcp()
    try:
        yield Setup(proxy, port, allowed, allowed_port, refused, refused_port, reported)
    finally:
        await proxy.close()
        await allowed.close()
        await refused.close()


def scenario(body: Callable[[Setup], Awaitable[None]]) -> None:
    async def main() -> None:
        async with started() as setup:
            await asyncio.wait_for(body(setup), 30)

    asyncio.run(main())


def test_connect_to_an_allowed_destination_is_relayed_both_ways() -> None:
    async def body(s: Setup) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", s.proxy_port)
        writer.write(f"CONNECT 127.0.0.1:{s.allowed_port} HTTP/1.1\r\n\r\n".encode())
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        writer.write(b"GET /tunnelled HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = await reader.read()
        writer.close()
        assert answer.endswith(b"hello from allowed")
        assert s.allowed.requests[0].startswith(b"GET /tunnelled ")
        assert s.reported == []

    scenario(body)


def test_plain_http_to_an_allowed_destination_is_sent_in_origin_form() -> None:
    async def body(s: Setup) -> None:
        request = (
            f"GET http://127.0.0.1:{s.allowed_port}/path?q=1 HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{s.allowed_port}\r\nProxy-Authorization: Basic eA==\r\n"
            "Proxy-Connection: keep-alive\r\n\r\n"
        )
        answer = await _exchange(s.proxy_port, request.encode())
        assert answer.endswith(b"hello from allowed")
        sent = s.allowed.requests[0]
        assert sent.startswith(b"GET /path?q=1 HTTP/1.1\r\n")
        assert b"Proxy-" not in sent
        assert b"Connection: close" in sent

    scenario(body)


def test_a_refused_destination_is_never_connected_to_and_is_reported() -> None:
    async def body(s: Setup) -> None:
        for request in (
            f"CONNECT 127.0.0.1:{s.refused_port} HTTP/1.1\r\n\r\n",
            f"GET http://127.0.0.1:{s.refused_port}/ HTTP/1.1\r\nHost: x\r\n\r\n",
            f"CONNECT localhost:{s.allowed_port} HTTP/1.1\r\n\r\n",  # a name, not the address
        ):
            answer = await _exchange(s.proxy_port, request.encode())
            assert answer.startswith(b"HTTP/1.1 403"), answer
        assert s.refused.connections == 0
        assert s.allowed.connections == 0
        assert s.reported == [
            f"127.0.0.1:{s.refused_port}",
            f"127.0.0.1:{s.refused_port}",
            f"localhost:{s.allowed_port}",
        ]

    scenario(body)


def test_malformed_requests_are_answered_400_and_not_reported() -> None:
    async def body(s: Setup) -> None:
        for request in (
            b"GET /relative HTTP/1.1\r\n\r\n",
            b"nonsense\r\n\r\n",
            b"CONNECT *.example.com:443 HTTP/1.1\r\n\r\n",
            b"GET ftp://127.0.0.1/ HTTP/1.1\r\n\r\n",
        ):
            assert (await _exchange(s.proxy_port, request)).startswith(b"HTTP/1.1 400")
        assert s.reported == []

    scenario(body)


def test_close_ends_open_tunnels(tmp_path: Path) -> None:
    async def main() -> None:
        ended = asyncio.Event()

        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()  # until the proxy closes its side
            writer.close()
            await writer.wait_closed()
            ended.set()

        upstream = await asyncio.start_server(hold, "127.0.0.1", 0)
        port = int(upstream.sockets[0].getsockname()[1])
        proxy = AllowlistProxy(frozenset({("127.0.0.1", port)}), lambda _: None)
        path = tmp_path / "proxy.sock"
        await proxy.start_unix(path)
        assert path.stat().st_mode & 0o777 == 0o600
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        await asyncio.wait_for(proxy.close(), 10)
        assert await asyncio.wait_for(reader.read(), 10) == b""
        writer.close()
        await writer.wait_closed()
        upstream.close()
        await upstream.wait_closed()
        await asyncio.wait_for(ended.wait(), 10)  # the tunnel's far end saw it close too

    asyncio.run(main())
