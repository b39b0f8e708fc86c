"""Gemini CLI's `--output-format stream-json`: `init`, `message`, `tool_use`, `tool_result`,
`error`, `result`.

Gemini reports no cost, and its tokens only in the final `result`'s stats. A turn is counted
whenever the model speaks (a message or a tool call) after the user or a tool result did.
"""

from __future__ import annotations

from typing import Any

from corral.core.streams.activity import (
    RESULT_CHARS,
    TEXT_CHARS,
    Activity,
    AssistantMessage,
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

MCP_PREFIX = "mcp_corral_"
"""How Gemini CLI names corral's MCP tools (`mcp_SERVER_TOOL`)."""


class GeminiAdapter(JsonLinesAdapter):
    name = "gemini"

    def __init__(self) -> None:
        super().__init__()
        self._turns = 0
        self._model_speaks = False
        self._said: list[str] = []

    def _model_turn(self) -> list[Activity]:
        if self._model_speaks:
            return []
        self._model_speaks = True
        self._turns += 1
        self._said = []
        return [Turn(number=self._turns)]

    def event(self, obj: dict[str, Any]) -> list[Activity]:
        kind = obj["type"]
        if kind == "init":
            model = obj.get("model")
            return [ModelNamed(model=model)] if isinstance(model, str) and model else []
        if kind == "message":
            if obj.get("role") != "assistant":
                self._model_speaks = False
                return []
            out = self._model_turn()
            text = str(obj.get("content", ""))
            self._said.append(text)
            return [*out, AssistantMessage(text=clip("".join(self._said), TEXT_CHARS))]
        if kind == "tool_use":
            out = self._model_turn()
            name = corral_tool(str(obj.get("tool_name", "?")), MCP_PREFIX)
            return [*out, ToolCall(name=name, summary=summarize_arguments(obj.get("parameters")))]
        if kind == "tool_result":
            self._model_speaks = False
            if obj.get("status") == "error":
                error = obj.get("error")
                message = error.get("message") if isinstance(error, dict) else error
                return [StreamError(message=clip(f"tool failed: {message or ''}", TEXT_CHARS))]
            return []
        if kind == "error":
            message = clip(str(obj.get("message", "error")), TEXT_CHARS)
            if "retry" in message.lower():
                return [Retry(message=message)]
            return [StreamError(message=message)]
        if kind == "result":
            return self._result(obj)
        return []

    def _result(self, obj: dict[str, Any]) -> list[Activity]:
        stats = obj.get("stats") or {}
        out: list[Activity] = [
            Usage(
                input_tokens=as_int(stats.get("input_tokens")),
                output_tokens=as_int(stats.get("output_tokens")),
                cached_tokens=as_int(stats.get("cached")),
            )
        ]
        is_error = obj.get("status") not in (None, "success")
        if is_error:
            error = obj.get("error")
            message = error.get("message") if isinstance(error, dict) else obj.get("status")
            out.append(StreamError(message=clip(str(message), TEXT_CHARS)))
        said = "".join(self._said) if self._model_speaks or self._said else ""
        out.append(FinalResult(text=clip(said, RESULT_CHARS), is_error=is_error))
        return out
