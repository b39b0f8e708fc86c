"""The agent-side client of the control socket, standard library only.

Agents call `corral heartbeat` often, so this path must not import pydantic, GitPython or
Textual (docs/performance.md: each costs more than Python's own start-up). The shapes sent here are
those of `protocol.py`; tests keep the two in step.
"""

from __future__ import annotations

# The C modules, not `socket` and `json`: their Python wrappers (enum, selectors, re...) cost
# an agent-side command more than the round trip to the engine does.
import _socket
import os

from corral.core.errors import CorralError

TYPE_CHECKING = False  # typing and dataclasses cost more than this whole client
if TYPE_CHECKING:
    from typing import Any

DEFAULT_TIMEOUT = 10.0


class ControlError(CorralError):
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


class AgentContext:
    """What corral put in an agent's environment (a plain class: dataclasses import inspect)."""

    __slots__ = ("agent", "attempt", "run_id", "socket", "token")

    def __init__(self, *, socket: str, run_id: str, agent: str, attempt: int, token: str) -> None:
        self.socket = socket
        self.run_id = run_id
        self.agent = agent
        self.attempt = attempt
        self.token = token

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
    import json

    line = json.dumps(payload, separators=(",", ":")).encode() + b"\n"
    return parse_reply(exchange(socket_path, line, timeout))


def exchange(socket_path: str, line: bytes, timeout: float = DEFAULT_TIMEOUT) -> bytes:
    """Send one request line, return the engine's answer line (Unreachable if it cannot)."""
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(socket_path)
        sock.sendall(line)
        return _read_line(sock)
    except OSError as exc:
        raise unreachable(socket_path, exc, timeout) from None
    finally:
        sock.close()


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
    import json

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


def _read_line(sock: _socket.socket) -> bytes:
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
    """Tell the engine this agent is alive (optionally how far along, and what it is doing).

    The request is the protocol's HeartbeatRequest, encoded without the json module (strings
    through its C escaper), and a plain `{"ok":true` answer needs no decoding at all."""
    from _json import encode_basestring_ascii as quote

    ctx = AgentContext.from_env("heartbeat")
    fields = [
        '"op":"heartbeat"',
        f'"agent":{quote(ctx.agent)}',
        f'"attempt":{int(ctx.attempt)}',
        f'"token":{quote(ctx.token)}',
    ]
    if progress is not None:
        fields.append(f'"progress":{float(progress)!r}')
    if message is not None:
        fields.append(f'"message":{quote(message)}')
    reply = exchange(ctx.socket, ("{" + ",".join(fields) + "}\n").encode())
    if not reply.startswith(b'{"ok":true'):
        parse_reply(reply)  # raises with the engine's reason
