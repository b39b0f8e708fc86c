"""The agent-side lock client: what it sends validates as the engine's models, it stays light,
and a renewing lease notices when it is lost (refused, or the engine unreachable for a TTL)."""

from __future__ import annotations

import asyncio
import itertools
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from corral.core.agent import lock_client
from corral.core.agent.client import NotInAgent
from corral.core.agent.lock_client import LeaseLost, LockBusy, LockClient, WriteRefused
from corral.core.agent.lock_command import lock_lines
from corral.core.control import protocol
from corral.core.control.protocol import Request, Response
from corral.core.control.server import serve

Answer = Callable[[Request], Response]


@contextmanager
def fake_engine(path: Path, answer: Answer) -> Iterator[list[Request]]:
    """A real control socket in a thread, answering with `answer` (and recording requests)."""
    seen: list[Request] = []
    ready = threading.Event()
    stop: list[Callable[[], None]] = []

    async def handler(request: Request) -> Response:
        seen.append(request)
        return answer(request)

    async def main() -> None:
        server = await serve(path, handler)
        done = asyncio.Event()
        loop = asyncio.get_running_loop()

        def stopper() -> None:
            loop.call_soon_threadsafe(done.set)

        stop.append(stopper)
        ready.set()
        await done.wait()
        server.close()
        await server.wait_closed()

    thread = threading.Thread(target=asyncio.run, args=(main(),))
    thread.start()
    ready.wait(5)
    try:
        yield seen
    finally:
        stop[0]()
        thread.join(5)


def granting(request: Request) -> Response:
    match request:
        case protocol.LockAcquireRequest() | protocol.LockRenewRequest():
            ttl = getattr(request, "ttl", None) or 0.4
            return Response(
                ok=True,
                data={"lock": request.lock, "token": 7, "ttl": ttl, "expires_at": 1.0},
            )
        case protocol.LockReleaseRequest():
            return Response(ok=True, data={"lock": request.lock, "released": True})
        case protocol.PutRequest():
            return Response(ok=False, code="refused", error="stale token")
        case protocol.LockListRequest():
            return Response(ok=True, data={"locks": []})
        case _:
            return Response(ok=False, code="invalid", error="unexpected")


def client(path: Path) -> LockClient:
    return LockClient(str(path), "agent-1", 2, "s3cret", timeout=2)


def test_requests_validate_as_the_engines_models(tmp_path: Path) -> None:
    sock = tmp_path / "c.sock"
    with fake_engine(sock, granting) as seen, client(sock) as locks:
        lease = locks.acquire("db", ttl=1.5, wait=3, reason="migrate", request_id="req-1")
        assert (lease.lock, lease.token, lease.ttl) == ("db", 7, 1.5)
        locks.renew(lease)
        assert locks.release(lease)
        assert locks.list() == []
        with pytest.raises(WriteRefused, match="stale token"):
            locks.put("db", 7, "out/x", b"\x00\xff data")
    acquire, renew, release, listing, put = seen
    assert acquire == protocol.LockAcquireRequest(
        agent="agent-1",
        attempt=2,
        token="s3cret",
        lock="db",
        request_id="req-1",
        ttl=1.5,
        wait=3,
        reason="migrate",
        pid=acquire.pid,  # type: ignore[union-attr]
    )
    assert isinstance(renew, protocol.LockRenewRequest)
    assert renew.fencing_token == 7
    assert isinstance(release, protocol.LockReleaseRequest)
    assert isinstance(listing, protocol.LockListRequest)
    assert isinstance(put, protocol.PutRequest)
    assert put.path == "out/x"


def test_errors_come_back_typed(tmp_path: Path) -> None:
    def refuse(request: Request) -> Response:
        if isinstance(request, protocol.LockAcquireRequest):
            return Response(ok=False, code="busy", error="lock db is held by x#1 (token 3)")
        return Response(ok=False, code="lost", error="token 7 expired")

    sock = tmp_path / "c.sock"
    with fake_engine(sock, refuse), client(sock) as locks:
        with pytest.raises(LockBusy, match="held by x#1"):
            locks.acquire("db", ttl=1, wait=0)
        with pytest.raises(LeaseLost, match="expired"):
            locks.renew(lock_client.Lease("db", 7, 1.0, 0.0, "r", 0.0))


def test_held_lease_renews_and_reports_a_refused_renewal(tmp_path: Path) -> None:
    renewals: list[float] = []

    def answer(request: Request) -> Response:
        if isinstance(request, protocol.LockRenewRequest):
            renewals.append(time.monotonic())
            if len(renewals) >= 3:
                return Response(ok=False, code="lost", error="broken by alice: stuck")
        return granting(request)

    lost: list[str] = []
    sock = tmp_path / "c.sock"
    with (
        fake_engine(sock, answer),
        client(sock) as locks,
        locks.hold("db", ttl=0.3, wait=1, on_lost=lost.append) as held,
    ):
        deadline = time.monotonic() + 5
        while not held.lost and time.monotonic() < deadline:
            time.sleep(0.01)
        with pytest.raises(LeaseLost, match="broken by alice"):
            held.check()
    assert len(renewals) == 3
    assert all(0.05 < b - a < 0.3 for a, b in itertools.pairwise(renewals))
    assert lost == ["broken by alice: stuck"]


def test_held_lease_is_lost_when_the_engine_stays_unreachable(tmp_path: Path) -> None:
    sock = tmp_path / "c.sock"
    lost: list[str] = []
    with fake_engine(sock, granting), client(sock) as locks:
        holding = locks.hold("db", ttl=0.4, wait=1, on_lost=lost.append)
        held = holding.__enter__()
    # the engine is gone: renewals fail until the lease must be assumed lost
    started = time.monotonic()
    while not lost and time.monotonic() - started < 5:
        time.sleep(0.01)
    assert lost
    assert "could not renew before the lease ran out" in lost[0]
    assert held.lease.valid_until <= time.monotonic()
    assert held.lost
    holding.__exit__(None, None, None)  # a lost lease is not released again


def test_outside_a_run_lock_commands_say_so(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("CORRAL_SOCKET", "CORRAL_AGENT_ID", "CORRAL_ATTEMPT", "CORRAL_AGENT_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    with pytest.raises(NotInAgent, match="works inside an agent started by corral"):
        LockClient.from_env()
    env = {"PATH": "/usr/bin:/bin"}
    for argv in (
        ["lock", "acquire", "db"],
        ["lock", "renew", "db", "--token", "1"],
        ["lock", "release", "db", "--token", "1"],
        ["lock", "list"],
        ["lock", "run", "db", "--", "true"],
        ["lock", "break", "db", "--reason", "x"],
        ["put", "db", "--token", "1", "x"],
    ):
        done = subprocess.run(
            [sys.executable, "-m", "corral.core.cli", *argv],
            capture_output=True,
            text=True,
            env=env,
            input="",
            check=False,
        )
        assert done.returncode == 1, (argv, done.stderr)
        assert "CORRAL_SOCKET" in done.stderr, (argv, done.stderr)


def test_agent_side_lock_commands_stay_light() -> None:
    code = (
        "import sys\n"
        "from corral.core.agent import lock_client, lock_command\n"
        "from corral.core.cli import locks, main\n"
        "heavy = sorted(m for m in ('pydantic', 'git', 'rich', 'textual', 'psutil') if m in sys.modules)\n"
        "print(heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.strip() == "[]"
    assert lock_client.MAX_PUT_BYTES == protocol.MAX_PUT_BYTES


def test_lock_list_lines_show_holder_pid_token_ttl_and_waiters() -> None:
    now = 1000.0
    lines = lock_lines(
        [
            {
                "lock": "db",
                "holder": {
                    "agent": "migrate",
                    "attempt": 1,
                    "pid": 4242,
                    "token": 17,
                    "ttl": 30.0,
                    "ttl_left": 12.5,
                },
                "waiters": [{"agent": "seed", "attempt": 2, "since": now - 3}],
            },
            {
                "lock": "port",
                "holder": {"agent": "web", "attempt": 1, "token": 3, "declared": True},
                "waiters": [],
            },
        ],
        now=now,
    )
    assert lines[0].split() == ["LOCK", "HOLDER", "PID", "TOKEN", "TTL", "LEFT", "WAITING"]
    assert lines[1].split() == [
        "db",
        "migrate#1",
        "4242",
        "17",
        "12.5s",
        "of",
        "30s",
        "seed#2",
        "(3s)",
    ]
    assert lines[2].split() == ["port", "web#1", "-", "3", "until", "it", "ends", "-"]
    assert lock_lines([]) == ["no lock is held or waited for"]
