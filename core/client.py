"""The agent-side client of the control socket, standard library only.

Agents call `corral heartbeat` often, so this path must not import pydantic, GitPython or
Textual (PERF.md: each costs more than Python's own start-up). The shapes sent here are
those of `protocol.py`; tests keep the two in step.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from typing import Any

DEFAULT_TIMEOUT = 10.0


class ControlError(Exception):
    """The engine could not be reached or refused the request.

    `code` is the engine's reason when it refused (`denied`, `busy`, `lost`, `refused`,
    `invalid`); None when the engine was not reached or gave none.
    """

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class Unreachable(ControlError):
    """The request may not have reached the engine (no socket, refused, timed out)."""


class NotInAgent(ControlError):
    """An agent-side command was run outside an agent started by corral."""


@dataclass(frozen=True)
class AgentContext:
    """What corral put in an agent's environment."""

    socket: str
    run_id: str
    agent: str
    attempt: int
    token: str

    @classmethod
    def from_env(cls, command: str) -> AgentContext:
        env = os.environ
        missing = [
            name
            for name in ("CORRAL_SOCKET", "CORRAL_AGENT_ID", "CORRAL_ATTEMPT", "CORRAL_AGENT_TOKEN")
            if not env.get(name)
        ]
        if missing:
            raise NotInAgent(
                f"`corral {command}` works inside an agent started by corral "
                f"({', '.join(missing)} not set); run it from an agent's command"
            )
        return cls(
            socket=env["CORRAL_SOCKET"],
            run_id=env.get("CORRAL_RUN_ID", ""),
            agent=env["CORRAL_AGENT_ID"],
            attempt=int(env["CORRAL_ATTEMPT"]),
            token=env["CORRAL_AGENT_TOKEN"],
        )


def request(
    socket_path: str, payload: dict[str, Any], timeout: float = DEFAULT_TIMEOUT
) -> dict[str, Any]:
    """Send one request and return the response's `data` (raise ControlError if refused)."""
    line = json.dumps(payload, separators=(",", ":")).encode() + b"\n"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(socket_path)
            sock.sendall(line)
            reply = _read_line(sock)
    except OSError as exc:
        raise unreachable(socket_path, exc, timeout) from None
    return parse_reply(reply)


def unreachable(socket_path: str, exc: OSError, timeout: float) -> Unreachable:
    """A person's words for a socket error."""
    if isinstance(exc, FileNotFoundError):
        return Unreachable(f"no engine is listening at {socket_path}; is the run still going?")
    if isinstance(exc, ConnectionRefusedError):
        return Unreachable(f"the engine at {socket_path} is gone (connection refused)")
    if isinstance(exc, TimeoutError):
        return Unreachable(f"the engine at {socket_path} did not answer within {timeout:.0f}s")
    return Unreachable(f"cannot reach the engine at {socket_path}: {exc.strerror or exc}")


def parse_reply(reply: bytes) -> dict[str, Any]:
    """The `data` of one response line; ControlError (with the engine's code) if refused."""
    try:
        response = json.loads(reply)
    except ValueError:
        raise ControlError("the engine sent an unreadable answer") from None
    if not isinstance(response, dict):
        raise ControlError("the engine sent an unreadable answer")
    if not response.get("ok"):
        code = response.get("code")
        raise ControlError(
            str(response.get("error") or "the engine refused the request"),
            code if isinstance(code, str) else None,
        )
    data = response.get("data")
    return data if isinstance(data, dict) else {}


def _read_line(sock: socket.socket) -> bytes:
    chunks: list[bytes] = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
        if chunk.endswith(b"\n"):
            break
    if not chunks:
        raise Unreachable("the engine closed the connection without answering")
    return b"".join(chunks)


def heartbeat(progress: float | None = None, message: str | None = None) -> None:
    """Tell the engine this agent is alive (optionally how far along, and what it is doing)."""
    ctx = AgentContext.from_env("heartbeat")
    payload: dict[str, Any] = {
        "op": "heartbeat",
        "agent": ctx.agent,
        "attempt": ctx.attempt,
        "token": ctx.token,
    }
    if progress is not None:
        payload["progress"] = progress
    if message is not None:
        payload["message"] = message
    request(ctx.socket, payload)
