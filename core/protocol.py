"""Messages on the control socket: one JSON object a line each way.

The engine validates every request with these models; the agent-side client (`client.py`)
builds the same shapes with the standard library only, so `corral heartbeat` starts fast.
A test checks the two agree.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

MAX_MESSAGE_BYTES = 64 * 1024
"""A request line longer than this is refused: agents are untrusted."""


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PingRequest(_Request):
    op: Literal["ping"] = "ping"


class HeartbeatRequest(_Request):
    """Sent by an agent (`corral heartbeat`) to say it is alive."""

    op: Literal["heartbeat"] = "heartbeat"
    agent: str
    attempt: int
    token: str
    """The attempt's secret from CORRAL_AGENT_TOKEN, so one agent cannot beat for another."""
    progress: float | None = Field(default=None, ge=0.0, le=1.0)
    message: str | None = Field(default=None, max_length=500)


class StatusRequest(_Request):
    op: Literal["status"] = "status"


class KillRequest(_Request):
    """A person stops an agent; it ends `cancelled` and is not retried."""

    op: Literal["kill"] = "kill"
    agent: str
    by: str
    reason: str = Field(default="", max_length=500)


class RetryRequest(_Request):
    """A person asks for another attempt of an agent that has ended."""

    op: Literal["retry"] = "retry"
    agent: str
    by: str


Request = Annotated[
    PingRequest | HeartbeatRequest | StatusRequest | KillRequest | RetryRequest,
    Field(discriminator="op"),
]
RequestAdapter: TypeAdapter[Request] = TypeAdapter(Request)


class Response(BaseModel):
    ok: bool
    error: str | None = None
    data: dict[str, Any] | None = None
