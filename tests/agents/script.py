"""What the scripted model says, turn by turn, and how a request finds its turn.

A script is a list of turns. Each turn is an optional tool call followed by optional text. The
server is stateless about conversations: the turn for a request is the number of tool results
already in that request's history, so turn 0 answers the prompt, turn 1 answers the first tool
result, and so on; a retried request gets the same answer. A request whose tools offer none of
the names a tool-call turn accepts is a side request (a title, a summary, a check) and gets
`side_text` instead, so it neither consumes nor confuses the script.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class ToolCall(BaseModel):
    """One tool call. `names` are accepted spellings, tried in order against the request's tools
    (`Write`, `write_file`, `write`: one script can serve several CLIs); `arguments` is the JSON
    input of a function tool, `input` the raw text of a free-form (custom) tool."""

    model_config = ConfigDict(extra="forbid")

    names: list[str] = Field(min_length=1)
    arguments: dict[str, object] = Field(default_factory=dict)
    input: str | None = None


class Turn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tool: ToolCall | None = None
    text: str = ""
    hold: bool = False
    """Answer this turn only once the test opens the server's gate (`ModelServer.release`): a
    moment in which the agent is mid-run for as long as the test needs."""


class Script(BaseModel):
    model_config = ConfigDict(extra="forbid")

    turns: list[Turn] = Field(min_length=1)
    side_text: str = "ok"
    final_text: str = "Done."
    """Said once the script has run out of turns."""

    @classmethod
    def load(cls, path: Path) -> Script:
        return cls.model_validate_json(path.read_text(encoding="utf-8"))


class Reply(BaseModel):
    """What one response carries: text, then at most one tool call under its chosen name."""

    text: str
    tool_name: str | None = None
    arguments: dict[str, object] = Field(default_factory=dict)
    input: str | None = None
    turn: int | None = None
    """The script turn answered, None for a side request."""

    @property
    def arguments_json(self) -> str:
        return json.dumps(self.arguments)


def choose_reply(script: Script, tool_results: int, offered_tools: list[str]) -> Reply:
    """The reply for a request that has `tool_results` results in its history and offers these
    tool names."""
    if tool_results >= len(script.turns):
        return Reply(text=script.final_text, turn=tool_results)
    turn = script.turns[tool_results]
    if turn.tool is None:
        return Reply(text=turn.text, turn=tool_results)
    name = next((name for name in turn.tool.names if name in offered_tools), None)
    if name is None:
        return Reply(text=script.side_text)
    return Reply(
        text=turn.text,
        tool_name=name,
        arguments=turn.tool.arguments,
        input=turn.tool.input,
        turn=tool_results,
    )
