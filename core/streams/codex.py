"""Codex's `exec --json`: `thread.*`, `turn.*` and `item.*` events.

A tool call is an item (`command_execution`, `file_change`, `mcp_tool_call`, `web_search`),
counted once when it starts (or when it completes, if its start was not seen). Usage comes per
turn in `turn.completed` and is summed here; Codex reports no cost.
"""

from __future__ import annotations

import re
from typing import Any

from corral.core.streams.activity import (
    SUMMARY_CHARS,
    TEXT_CHARS,
    Activity,
    AssistantMessage,
    FinalResult,
    Retry,
    StreamError,
    ToolCall,
    Turn,
    Usage,
    clip,
)
from corral.core.streams.base import JsonLinesAdapter, as_int, summarize_arguments

_RETRYING = re.compile(r"reconnecting|retrying", re.IGNORECASE)


def _tool(item: dict[str, Any]) -> ToolCall | None:
    kind = item.get("type")
    if kind == "command_execution":
        return ToolCall(name="shell", summary=summarize_arguments({"command": item.get("command")}))
    if kind == "file_change":
        paths = [c.get("path", "") for c in item.get("changes") or () if isinstance(c, dict)]
        return ToolCall(name="file_change", summary=clip(" ".join(map(str, paths)), SUMMARY_CHARS))
    if kind == "mcp_tool_call":  # `server.tool`: corral's are `corral.NAME` as for every CLI
        name = f"{item.get('server', '?')}.{item.get('tool', '?')}"
        return ToolCall(name=name, summary=summarize_arguments(item.get("arguments")))
    if kind == "web_search":
        return ToolCall(
            name="web_search", summary=summarize_arguments({"query": item.get("query")})
        )
    return None


class CodexAdapter(JsonLinesAdapter):
    name = "codex"

    def __init__(self) -> None:
        super().__init__()
        self._turns = 0
        self._tokens = [0, 0, 0]
        self._tools_seen: set[str] = set()
        self._last_message = ""

    def event(self, obj: dict[str, Any]) -> list[Activity]:
        kind = obj["type"]
        if kind == "turn.started":
            self._turns += 1
            return [Turn(number=self._turns)]
        if kind == "turn.completed":
            usage = obj.get("usage") or {}
            self._tokens[0] += as_int(usage.get("input_tokens"))
            self._tokens[1] += as_int(usage.get("output_tokens"))
            self._tokens[2] += as_int(usage.get("cached_input_tokens"))
            tokens_in, tokens_out, cached = self._tokens
            return [
                Usage(input_tokens=tokens_in, output_tokens=tokens_out, cached_tokens=cached),
                FinalResult(text=self._last_message),
            ]
        if kind in ("turn.failed", "error"):
            error = obj.get("error")
            message = error.get("message") if isinstance(error, dict) else obj.get("message")
            return [self._error(str(message or kind))]
        if kind in ("item.started", "item.completed", "item.updated"):
            return self._item(kind, obj["item"])
        return []

    def _error(self, message: str) -> Activity:
        if _RETRYING.search(message):
            return Retry(message=clip(message, TEXT_CHARS))
        return StreamError(message=clip(message, TEXT_CHARS))

    def _item(self, kind: str, item: dict[str, Any]) -> list[Activity]:
        item_type = item.get("type")
        if item_type == "agent_message" and kind == "item.completed":
            self._last_message = clip(str(item.get("text", "")), TEXT_CHARS)
            return [AssistantMessage(text=self._last_message)]
        if item_type == "error" and kind == "item.completed":
            return [self._error(str(item.get("message", "error")))]
        item_id = str(item.get("id", ""))
        if kind == "item.updated" or item_id in self._tools_seen:
            return []
        tool = _tool(item)
        if tool is None:
            return []
        self._tools_seen.add(item_id)
        return [tool]
