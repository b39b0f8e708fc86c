"""Claude Code's `--output-format stream-json --verbose`: `system`, `assistant`, `user`, `result`.

An assistant message may come as several lines with one message id (a text, then a tool use),
each repeating the message's usage: tokens are summed per message id, the last figure of each
winning, and the `result` line's session totals replace them when it comes.
"""

from __future__ import annotations

from typing import Any

from corral.core.streams.activity import (
    RESULT_CHARS,
    TEXT_CHARS,
    Activity,
    AssistantMessage,
    Cost,
    FinalResult,
    ModelNamed,
    Retry,
    StreamError,
    ToolCall,
    Turn,
    Usage,
    clip,
    corral_tool,
)
from corral.core.streams.base import JsonLinesAdapter, as_int, summarize_arguments

MCP_PREFIX = "mcp__corral__"
"""How Claude Code names corral's MCP tools (`mcp__SERVER__TOOL`)."""


def _usage(usage: Any) -> tuple[int, int, int]:
    if not isinstance(usage, dict):
        return 0, 0, 0
    cached = as_int(usage.get("cache_read_input_tokens"))
    fresh = as_int(usage.get("input_tokens")) + as_int(usage.get("cache_creation_input_tokens"))
    return fresh + cached, as_int(usage.get("output_tokens")), cached


class ClaudeAdapter(JsonLinesAdapter):
    name = "claude"

    def __init__(self) -> None:
        super().__init__()
        self._messages: dict[str, tuple[int, int, int]] = {}
        self._model = ""

    def event(self, obj: dict[str, Any]) -> list[Activity]:
        kind = obj["type"]
        if kind == "assistant":
            return self._assistant(obj["message"])
        if kind == "result":
            return self._result(obj)
        if kind == "system":
            return self._system(obj)
        return []  # `user` lines carry tool results: what the tool said is in output.log

    def _system(self, obj: dict[str, Any]) -> list[Activity]:
        subtype = obj.get("subtype")
        if subtype == "init" and isinstance(obj.get("model"), str):
            self._model = obj["model"]
            return [ModelNamed(model=obj["model"])]
        if subtype == "api_retry":
            attempt = obj.get("attempt")
            error = obj.get("error") or obj.get("error_status") or "the API"
            return [Retry(message=clip(f"retry {attempt or ''} after {error}", TEXT_CHARS))]
        return []

    def _assistant(self, message: dict[str, Any]) -> list[Activity]:
        out: list[Activity] = []
        model = message.get("model")
        if isinstance(model, str) and model and model != self._model:
            self._model = model
            out.append(ModelNamed(model=model))
        for block in message.get("content") or ():
            if not isinstance(block, dict):
                continue
            if block.get("type") == "tool_use":
                name = corral_tool(str(block.get("name", "?")), MCP_PREFIX)
                out.append(ToolCall(name=name, summary=summarize_arguments(block.get("input"))))
            elif block.get("type") == "text" and block.get("text"):
                out.append(AssistantMessage(text=clip(str(block["text"]), TEXT_CHARS)))
        message_id = str(message.get("id", ""))
        new = message_id not in self._messages
        self._messages[message_id] = _usage(message.get("usage"))
        if new:
            out.append(Turn(number=len(self._messages)))
        totals = [sum(figures) for figures in zip(*self._messages.values(), strict=True)]
        out.append(Usage(input_tokens=totals[0], output_tokens=totals[1], cached_tokens=totals[2]))
        return out

    def _result(self, obj: dict[str, Any]) -> list[Activity]:
        out: list[Activity] = []
        if "usage" in obj:
            tokens_in, tokens_out, cached = _usage(obj["usage"])
            out.append(
                Usage(input_tokens=tokens_in, output_tokens=tokens_out, cached_tokens=cached)
            )
        cost = obj.get("total_cost_usd")
        if isinstance(cost, int | float) and not isinstance(cost, bool) and cost >= 0:
            out.append(Cost(usd=float(cost)))
        if as_int(obj.get("num_turns")):
            out.append(Turn(number=as_int(obj["num_turns"])))
        is_error = bool(obj.get("is_error")) or str(obj.get("subtype", "")).startswith("error")
        text = obj.get("result")
        if is_error:
            words = text if isinstance(text, str) and text else str(obj.get("subtype", "error"))
            out.append(StreamError(message=clip(words, TEXT_CHARS)))
        out.append(
            FinalResult(
                text=clip(text if isinstance(text, str) else "", RESULT_CHARS), is_error=is_error
            )
        )
        return out
