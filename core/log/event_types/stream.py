"""What an agent's own event stream said (core/streams/), as the engine records it.

One `agent_activity` event coalesces everything the stream said within a moment, with the
attempt's running totals, so that a lost or skipped line never loses a token and a chatty
agent makes at most a few small events a second (docs/architecture.md, "Agent streams").
Texts are the agent's: capped and redacted by the engine, hostile to whoever shows them (T5).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

from corral.core.log.event_types.base import EventBase

CostSource = Literal["cli", "prices"]
"""`cli`: the agent CLI reported the cost; `prices`: corral's price table for the model."""


class ToolUse(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    summary: str = ""


class AgentActivity(EventBase):
    """Signs of life from the agent's stream, with the attempt's totals so far."""

    type: Literal["agent_activity"] = "agent_activity"
    agent: str
    attempt: int
    model: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_cached: int = 0
    cost_usd: float | None = None
    """The attempt's cost so far; None when neither the CLI nor the price table gives one."""
    cost_source: CostSource | None = None
    turns: int = 0
    tool_calls: int = 0
    """Tool calls of the attempt so far (`tools` holds only the latest few of this event's)."""
    tools: list[ToolUse] = []
    """The tool calls since the previous event, at most the latest 8."""
    message: str | None = None
    """The latest assistant message since the previous event."""
    result: str | None = None
    """The final result text, when the stream gave it."""
    is_error: bool = False
    """The final result is an error."""
    error: str | None = None
    retry: str | None = None
    waiting: str | None = None
    """What the CLI asks, when it says it waits for input."""
    malformed: int = 0
    """Stream lines of the attempt so far that could not be read (they stay in output.log)."""
