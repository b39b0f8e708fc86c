"""`network = "allow"` in a real sandbox: an unmodified client honouring the proxy variables
reaches the allowed destination; anything else is refused and reported, and a direct connection
that skips the proxy reaches nothing (the namespace has no way out but the proxy's socket)."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from corral.core.sandbox.policy import SandboxPolicy
from corral.core.sandbox.proxy import AllowlistProxy
from tests.core.sandbox.conftest import Attempt
from tests.core.sandbox.origin import Origin

FETCH = """
import sys, urllib.request, urllib.error
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())
except urllib.error.HTTPError as error:
    print("refused", error.code)
"""
DIRECT = """
import socket, sys
try:
    socket.create_connection(("127.0.0.1", int(sys.argv[1])), 5)
    print("connected")
except OSError as error:
    print("no route", error.errno)
"""
TUNNEL = """
import socket, sys
s = socket.create_connection(("127.0.0.1", 3128), 5)
s.sendall(b"CONNECT 127.0.0.1:%s HTTP/1.1\\r\\n\\r\\n" % sys.argv[1].encode())
print(s.recv(100).split(b"\\r\\n")[0].decode())
"""


@dataclass
class Network:
    socket: Path
    allowed: Origin
    allowed_port: int
    refused: Origin
    refused_port: int
    reported: list[str]


@pytest.fixture
def network(tmp_path: Path) -> Iterator[Network]:
    """The proxy on a Unix socket and two origins, served by an event loop on a thread."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    allowed, refused = Origin("allowed"), Origin("refused")
    reported: list[str] = []

    def call(coroutine: object) -> object:
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(10)  # type: ignore[arg-type]

    allowed_port = int(call(allowed.start()))  # type: ignore[call-overload]
    refused_port = int(call(refused.start()))  # type: ignore[call-overload]
    proxy = AllowlistProxy(frozenset({("127.0.0.1", allowed_port)}), reported.append)
    path = tmp_path / "proxy.sock"
    call(proxy.start_unix(path))
    yield Network(path, allowed, allowed_port, refused, refused_port, reported)
    call(proxy.close())
    call(allowed.close())
    call(refused.close())
    loop.call_soon_threadsafe(loop.stop)
    thread.join(10)
    loop.close()


def test_only_allowed_destinations_are_reached_through_the_proxy(
    attempt: Attempt, network: Network
) -> None:
    policy = SandboxPolicy(network="allow", allow=(f"127.0.0.1:{network.allowed_port}",))
    paths = replace(attempt.paths, proxy_socket=network.socket)
    python = attempt.env["CORRAL_PYTHON"]

    def inside(script: str, *args: object) -> str:
        done = attempt.run_argv(
            [python, "-c", script, *map(str, args)], sandboxed=True, policy=policy, paths=paths
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    assert inside(FETCH, f"http://127.0.0.1:{network.allowed_port}/") == "hello from allowed"
    assert inside(FETCH, f"http://127.0.0.1:{network.refused_port}/") == "refused 403"
    assert inside(TUNNEL, network.allowed_port) == "HTTP/1.1 200 Connection Established"
    assert inside(TUNNEL, network.refused_port) == "HTTP/1.1 403 Forbidden"
    assert inside(DIRECT, network.allowed_port).startswith("no route")
    assert network.refused.connections == 0
    assert network.reported == [f"127.0.0.1:{network.refused_port}"] * 2
    assert network.allowed.connections == 2
