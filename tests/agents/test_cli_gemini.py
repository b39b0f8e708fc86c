"""Gemini CLI, headless, against the scripted Gemini streamGenerateContent endpoint."""

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


def test_gemini_cli_writes_a_file_with_write_file(space: Workspace, model_server: Server) -> None:
    target = space.repo / "hello.txt"
    server = model_server(
        checks.write_file_script(
            "write_file", {"file_path": str(target), "content": checks.CONTENT}
        )
    )
    started = launch.gemini(space, server.url)
    result = clis.run("gemini", started.argv, space, started.env)
    checks.assert_wrote_file(result, space.repo)
    checks.assert_round_trip(server, "gemini", "write_file")
    events = clis.json_lines(result.stdout)
    kinds = [event["type"] for event in events]
    assert kinds[0] == "init"
    assert "tool_use" in kinds
    assert "tool_result" in kinds
    assert events[-1]["type"] == "result"
    assert events[-1]["status"] == "success"


def test_gemini_cli_calls_an_mcp_tool(
    space: Workspace, model_server: Server, mcp: tuple[Mcp, Path]
) -> None:
    stub, notes = mcp
    server = model_server(checks.note_script("mcp_corral_note"))
    started = launch.gemini(space, server.url, stub, prompt="Make a note.")
    result = clis.run("gemini-mcp", started.argv, space, started.env)
    checks.assert_noted(result, notes)
    checks.assert_round_trip(server, "gemini", "mcp_corral_note")
