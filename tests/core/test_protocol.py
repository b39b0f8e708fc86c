"""The stdlib-only client and the engine's pydantic models speak the same language."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from corral.core.agent import client
from corral.core.control.protocol import HeartbeatRequest, Request, RequestAdapter, Response
from corral.core.control.server import serve


def test_client_heartbeat_line_is_a_valid_request(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The hand-encoded heartbeat line parses as the engine's HeartbeatRequest, any text included."""
    sent: list[bytes] = []

    def fake_exchange(path: str, line: bytes, timeout: float = 10.0) -> bytes:
        sent.append(line)
        return (
            Response(ok=True, data={"seq": 1}).model_dump_json(exclude_none=True).encode() + b"\n"
        )

    monkeypatch.setattr(client, "exchange", fake_exchange)
    for key, value in {
        "CORRAL_SOCKET": str(tmp_path / "s"),
        "CORRAL_AGENT_ID": "lint",
        "CORRAL_ATTEMPT": "2",
        "CORRAL_AGENT_TOKEN": "t0k",
    }.items():
        monkeypatch.setenv(key, value)
    message = 'parsing "src/ü.py"\n\ttab \\ and \x1b escape'
    client.heartbeat(0.25, message)
    client.heartbeat()
    first = RequestAdapter.validate_json(sent[0])
    assert first == HeartbeatRequest(
        agent="lint", attempt=2, token="t0k", progress=0.25, message=message
    )
    assert RequestAdapter.validate_json(sent[1]) == HeartbeatRequest(
        agent="lint", attempt=2, token="t0k"
    )


def test_heartbeat_reports_a_refusal(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    refusal = Response(ok=False, error="no running attempt lint#2 with that token")
    monkeypatch.setattr(
        client,
        "exchange",
        lambda *a, **k: refusal.model_dump_json(exclude_none=True).encode() + b"\n",
    )
    for key in ("CORRAL_SOCKET", "CORRAL_AGENT_ID", "CORRAL_ATTEMPT", "CORRAL_AGENT_TOKEN"):
        monkeypatch.setenv(key, "2" if key == "CORRAL_ATTEMPT" else "x")
    with pytest.raises(client.ControlError, match="no running attempt"):
        client.heartbeat()


def test_socket_server_answers_and_rejects_bad_requests(tmp_path: Path) -> None:
    path = tmp_path / "control.sock"

    async def handler(request: Request) -> Response:
        return Response(ok=True, data={"op": request.op})

    async def scenario() -> list[dict[str, Any]]:
        server = await serve(path, handler)
        try:
            assert path.stat().st_mode & 0o777 == 0o600
            answers = []
            for line in (b'{"op":"ping"}\n', b'{"op":"heartbeat","agent":"x"}\n', b"not json\n"):
                reader, writer = await asyncio.open_unix_connection(str(path))
                writer.write(line)
                await writer.drain()
                answers.append(json.loads(await reader.readline()))
                writer.close()
                await writer.wait_closed()
            return answers
        finally:
            server.close()
            await server.wait_closed()

    ok, missing, garbage = asyncio.run(scenario())
    assert ok == {"ok": True, "data": {"op": "ping"}}
    assert not missing["ok"]
    assert "bad request" in missing["error"]
    assert not garbage["ok"]


def test_socket_refuses_to_replace_a_planted_file(tmp_path: Path) -> None:
    target = tmp_path / "victim"
    target.write_text("keep me")
    path = tmp_path / "control.sock"
    path.symlink_to(target)

    async def handler(request: Request) -> Response:
        return Response(ok=True)

    with pytest.raises(PermissionError, match="not a socket"):
        asyncio.run(serve(path, handler))
    assert target.read_text() == "keep me"


def test_client_reports_a_missing_engine(tmp_path: Path) -> None:
    with pytest.raises(client.ControlError, match="no engine is listening"):
        client.request(str(tmp_path / "absent.sock"), {"op": "ping"})
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "dead.sock"))
    with pytest.raises(client.ControlError, match="gone"):
        client.request(str(tmp_path / "dead.sock"), {"op": "ping"})
