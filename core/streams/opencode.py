"""opencode's `run --format json`: `step_start`, `text`, `tool_use`, `step_finish`, `error`.

A step is one model turn; each `step_finish` carries that step's tokens and cost, summed here.
opencode reports a cost of 0 for a model it has no price for, so 0 counts as "not reported".
"""

from __future__ import annotations

from typing import Any

from corral.core.streams.activity import (
    TEXT_CHARS,
    Activity,
    AssistantMessage,
    Cost,
    FinalResult,
    StreamError,
    ToolCall,
    Turn,
    Usage,
    clip,
    corral_tool,
)
from corral.core.streams.base import JsonLinesAdapter, as_int, summarize_arguments

MCP_PREFIX = "corral_"
"""How opencode names corral's MCP tools (`SERVER_TOOL`)."""


class OpencodeAdapter(JsonLinesAdapter):
    name = "opencode"

    def __init__(self) -> None:
        super().__init__()
        self._turns = 0
        self._tokens = [0, 0, 0]
        self._cost = 0.0
        self._last_text = ""

    def event(self, obj: dict[str, Any]) -> list[Activity]:
        kind = obj["type"]
        part = obj.get("part") or {}
        if kind == "step_start":
            self._turns += 1
            return [Turn(number=self._turns)]
        if kind == "text":
            said = clip(str(part.get("text", "")), TEXT_CHARS)
            if said:
                self._last_text = said
            return [AssistantMessage(text=said)] if said else []
        if kind == "tool_use":
            state = part.get("state") or {}
            tool = ToolCall(
                name=corral_tool(str(part.get("tool", "?")), MCP_PREFIX),
                summary=summarize_arguments(state.get("input")),
            )
            if state.get("status") == "error":
                message = clip(f"{tool.name} failed: {state.get('error', '')}", TEXT_CHARS)
                return [tool, StreamError(message=message)]
            return [tool]
        if kind == "step_finish":
            return self._step_finish(part)
        if kind == "error":
            error = obj.get("error") or {}
            data = error.get("data") if isinstance(error, dict) else None
            words = data.get("message") if isinstance(data, dict) else None
            name = error.get("name") if isinstance(error, dict) else None
            return [StreamError(message=clip(str(words or name or error), TEXT_CHARS))]
        return []

    def _step_finish(self, part: dict[str, Any]) -> list[Activity]:
        tokens = part.get("tokens") or {}
        cache = tokens.get("cache") or {}
        cached = as_int(cache.get("read"))
        self._tokens[0] += as_int(tokens.get("input")) + cached + as_int(cache.get("write"))
        self._tokens[1] += as_int(tokens.get("output")) + as_int(tokens.get("reasoning"))
        self._tokens[2] += cached
        tokens_in, tokens_out, cached_total = self._tokens
        out: list[Activity] = [
            Usage(input_tokens=tokens_in, output_tokens=tokens_out, cached_tokens=cached_total)
        ]
        cost = part.get("cost")
        if isinstance(cost, int | float) and not isinstance(cost, bool) and cost > 0:
            self._cost += float(cost)
            out.append(Cost(usd=round(self._cost, 6)))
        if part.get("reason") == "stop":
            out.append(FinalResult(text=self._last_text))
        return out
