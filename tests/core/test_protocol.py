"""The stdlib-only client and the engine's pydantic models speak the same language."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from corral.core import client
from corral.core.control import serve
from corral.core.protocol import HeartbeatRequest, Request, RequestAdapter, Response


def test_client_heartbeat_payload_validates(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    sent: list[dict[str, Any]] = []

    def fake_request(path: str, payload: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
        sent.append(payload)
        return {}

    monkeypatch.setattr(client, "request", fake_request)
    for key, value in {
        "CORRAL_SOCKET": str(tmp_path / "s"),
        "CORRAL_AGENT_ID": "lint",
        "CORRAL_ATTEMPT": "2",
        "CORRAL_AGENT_TOKEN": "t0k",
    }.items():
        monkeypatch.setenv(key, value)
    client.heartbeat(0.25, "parsing")
    request = RequestAdapter.validate_python(sent[0])
    assert request == HeartbeatRequest(
        agent="lint", attempt=2, token="t0k", progress=0.25, message="parsing"
    )


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
