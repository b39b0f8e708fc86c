"""Codex, headless (`codex exec`), against the scripted OpenAI Responses endpoint."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.agents import checks, clis, launch
from tests.agents.clis import Workspace
from tests.agents.launch import Mcp
from tests.agents.model_server import ModelServer
from tests.agents.script import Script, ToolCall, Turn

pytestmark = [pytest.mark.slow, pytest.mark.timeout(200)]
Server = Callable[[Script], ModelServer]

PATCH = (
    "*** Begin Patch\n*** Add File: hello.txt\n"
    + "".join(f"+{line}\n" for line in checks.CONTENT.splitlines())
    + "*** End Patch\n"
)


def test_codex_writes_a_file_with_apply_patch(space: Workspace, model_server: Server) -> None:
    server = model_server(checks.write_file_script("apply_patch", {}, input=PATCH))
    started = launch.codex(space, server.url)
    result = clis.run("codex", started.argv, space, started.env)
    checks.assert_wrote_file(result, space.repo)
    checks.assert_round_trip(server, "responses", "apply_patch")
    output = next(
        item
        for call in server.model_calls("responses")
        if call.turn == 1 and isinstance(call.body, dict)
        for item in call.body["input"]
        if item["type"] == "custom_tool_call_output"
    )
    assert "Exit code: 0" in str(output["output"])
    events = clis.json_lines(result.stdout)
    kinds = [event["type"] for event in events]
    assert kinds[0] == "thread.started"
    assert kinds[-1] == "turn.completed"
    completed = [event["item"] for event in events if event["type"] == "item.completed"]
    changes = [
        item for item in completed if isinstance(item, dict) and item["type"] == "file_change"
    ]
    assert [change["status"] for change in changes] == ["completed"]


def test_codex_finds_an_mcp_tool_with_tool_search_and_calls_it(
    space: Workspace, model_server: Server, mcp: tuple[Mcp, Path]
) -> None:
    """For a model it knows, Codex defers MCP tools: the model searches, then calls."""
    stub, notes = mcp
    search = Turn(tool=ToolCall(names=["tool_search"], arguments={"query": "note", "limit": 8}))
    script = checks.note_script("mcp__corral.note")
    server = model_server(script.model_copy(update={"turns": [search, *script.turns]}))
    started = launch.codex(space, server.url, stub, prompt="Make a note.")
    result = clis.run("codex-mcp", started.argv, space, started.env)
    checks.assert_noted(result, notes)
    seen = [(call.turn, call.tool_call) for call in server.model_calls("responses")]
    assert seen == [(0, "tool_search"), (1, "mcp__corral.note"), (2, None)]
    assert_mcp_call_completed(result)


def test_codex_calls_an_mcp_tool_offered_as_a_namespace(
    space: Workspace, model_server: Server, mcp: tuple[Mcp, Path]
) -> None:
    """For a model it has no metadata for, Codex offers MCP tools at once, in a namespace."""
    stub, notes = mcp
    server = model_server(checks.note_script("mcp__corral.note"))
    started = launch.codex(space, server.url, stub, prompt="Make a note.", model="scripted-model")
    result = clis.run("codex-mcp-namespace", started.argv, space, started.env)
    checks.assert_noted(result, notes)
    checks.assert_round_trip(server, "responses", "mcp__corral.note")
    assert_mcp_call_completed(result)


def assert_mcp_call_completed(result: clis.Run) -> None:
    events = clis.json_lines(result.stdout)
    calls = [e["item"] for e in events if e["type"] == "item.completed"]
    mcp_calls = [
        item for item in calls if isinstance(item, dict) and item["type"] == "mcp_tool_call"
    ]
    assert [(c["server"], c["tool"], c["status"]) for c in mcp_calls] == [
        ("corral", "note", "completed")
    ]
