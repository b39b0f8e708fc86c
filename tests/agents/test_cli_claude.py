"""Claude Code, headless, against the scripted Anthropic Messages endpoint."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.agents import checks, clis, launch
from tests.agents.clis import Workspace
from tests.agents.launch import Mcp
from tests.agents.model_server import ModelServer
from tests.agents.script import Script

pytestmark = [pytest.mark.slow, pytest.mark.timeout(200)]
Server = Callable[[Script], ModelServer]


def test_claude_code_writes_a_file_with_its_write_tool(
    space: Workspace, model_server: Server
) -> None:
    target = space.repo / "hello.txt"
    server = model_server(
        checks.write_file_script("Write", {"file_path": str(target), "content": checks.CONTENT})
    )
    started = launch.claude(space, server.url)
    result = clis.run("claude", started.argv, space, started.env)
    checks.assert_wrote_file(result, space.repo)
    checks.assert_round_trip(server, "anthropic", "Write")
    events = clis.json_lines(result.stdout)
    assert events[0]["type"] == "system"
    assert events[-1]["type"] == "result"
    assert events[-1]["subtype"] == "success"
    assert events[-1]["result"] == "Created hello.txt."


def test_claude_code_calls_an_mcp_tool(
    space: Workspace, model_server: Server, mcp: tuple[Mcp, Path]
) -> None:
    stub, notes = mcp
    server = model_server(checks.note_script("mcp__corral__note"))
    started = launch.claude(space, server.url, stub, prompt="Make a note.")
    result = clis.run("claude-mcp", started.argv, space, started.env)
    checks.assert_noted(result, notes)
    checks.assert_round_trip(server, "anthropic", "mcp__corral__note")
