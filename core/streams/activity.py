"""What an agent CLI's stream says, normalised: the same few kinds of activity for every CLI.

Adapters (one module per CLI) turn raw output into these; the engine tallies them
(core/streams/tally.py) and records the tally as events. Texts are the agent's, so hostile:
each is capped here, redacted by the engine and made inert by whoever shows it (T5).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

SUMMARY_CHARS = 120
"""A tool call's argument summary is cut to this many characters."""
TEXT_CHARS = 300
"""An assistant message, an error or a retry notice is cut to this many characters."""
RESULT_CHARS = 1000
"""The final result text is cut to this many characters (the whole is in output.log)."""


CORRAL_SERVER = "corral"
"""corral's MCP server's name in each CLI's configuration (core/presets/mcp.py)."""


def corral_tool(name: str, prefix: str) -> str:
    """One of corral's MCP tools as `corral.NAME` whatever the CLI calls it (`prefix`: its
    spelling of the server, `mcp__corral__` for Claude Code); any other tool as it is."""
    if name.startswith(prefix) and len(name) > len(prefix):
        return f"{CORRAL_SERVER}.{name[len(prefix) :]}"
    return name


def clip(text: str, limit: int) -> str:
    """`text` on one line, at most `limit` characters (an ellipsis marks a cut)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class _Activity(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ToolCall(_Activity):
    kind: Literal["tool_call"] = "tool_call"
    name: str
    """The tool as the CLI names it (`Write`, `shell`, `github.search` for an MCP tool of
    Codex), but corral's own MCP tools as `corral.NAME` for every CLI (`corral.heartbeat`)."""
    summary: str = ""
    """Its arguments in short: a path, a command, the first words of a text."""


class AssistantMessage(_Activity):
    kind: Literal["message"] = "message"
    text: str


class Usage(_Activity):
    """Tokens of the whole session so far, as the CLI counts them (a running total, not a
    delta: adapters add up per-turn figures themselves, so a repeated line counts once)."""

    kind: Literal["usage"] = "usage"
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    """Input tokens read from the provider's cache, where the CLI says."""


class Cost(_Activity):
    """What the session cost so far in USD, as the CLI itself reports it."""

    kind: Literal["cost"] = "cost"
    usd: float


class Turn(_Activity):
    """The model's turns (one request and its answer) so far."""

    kind: Literal["turn"] = "turn"
    number: int


class ModelNamed(_Activity):
    kind: Literal["model"] = "model"
    model: str


class FinalResult(_Activity):
    kind: Literal["result"] = "result"
    text: str
    is_error: bool = False


class StreamError(_Activity):
    kind: Literal["error"] = "error"
    message: str


class Retry(_Activity):
    """The CLI retries a request (rate limit, dropped connection)."""

    kind: Literal["retry"] = "retry"
    message: str


class WaitingForInput(_Activity):
    """The CLI says it waits for a person's answer."""

    kind: Literal["waiting"] = "waiting"
    prompt: str


Activity = (
    ToolCall
    | AssistantMessage
    | Usage
    | Cost
    | Turn
    | ModelNamed
    | FinalResult
    | StreamError
    | Retry
    | WaitingForInput
)
