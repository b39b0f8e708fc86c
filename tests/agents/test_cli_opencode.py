"""opencode, headless (`opencode run`), against the scripted OpenAI Chat Completions endpoint."""

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


def test_opencode_writes_a_file_with_its_write_tool(space: Workspace, model_server: Server) -> None:
    target = space.repo / "hello.txt"
    server = model_server(
        checks.write_file_script("write", {"filePath": str(target), "content": checks.CONTENT})
    )
    started = launch.opencode(space, server.url)
    result = clis.run("opencode", started.argv, space, started.env)
    checks.assert_wrote_file(result, space.repo)
    checks.assert_round_trip(server, "chat", "write")
    others = [call.path for call in server.requests if call.api != "chat"]
    assert all(path.startswith("/npm/") for path in others), others  # the registry stand-in
    events = clis.json_lines(result.stdout)
    tools = [event["part"] for event in events if event["type"] == "tool_use"]
    assert [part["tool"] for part in tools if isinstance(part, dict)] == ["write"]
    assert events[-1]["type"] == "step_finish"


def test_opencode_calls_an_mcp_tool(
    space: Workspace, model_server: Server, mcp: tuple[Mcp, Path]
) -> None:
    stub, notes = mcp
    server = model_server(checks.note_script("corral_note"))
    started = launch.opencode(space, server.url, stub, prompt="Make a note.")
    result = clis.run("opencode-mcp", started.argv, space, started.env)
    checks.assert_noted(result, notes)
    checks.assert_round_trip(server, "chat", "corral_note")
