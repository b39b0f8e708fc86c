"""Claude Code, headless, against the scripted Anthropic Messages endpoint."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.agents import checks, clis
from tests.agents.clis import Workspace
from tests.agents.model_server import ModelServer
from tests.agents.script import Script

pytestmark = [pytest.mark.slow, pytest.mark.timeout(200)]


def test_claude_code_writes_a_file_with_its_write_tool(
    space: Workspace, model_server: Callable[[Script], ModelServer]
) -> None:
    claude = clis.require("claude")
    target = space.repo / "hello.txt"
    server = model_server(
        checks.write_file_script("Write", {"file_path": str(target), "content": checks.CONTENT})
    )
    argv = [
        str(claude), "-p", checks.PROMPT, "--output-format", "stream-json", "--verbose",
        "--model", "claude-sonnet-4-5", "--permission-mode", "bypassPermissions",
    ]  # fmt: skip
    env = space.env(
        ANTHROPIC_BASE_URL=server.url,
        ANTHROPIC_API_KEY="sk-ant-scripted",
        IS_SANDBOX="1",  # as root, Claude Code skips permissions only in a declared sandbox
    )
    result = clis.run("claude", argv, space, env)
    checks.assert_wrote_file(result, space.repo)
    checks.assert_round_trip(server, "anthropic", "Write")
    events = clis.json_lines(result.stdout)
    assert events[0]["type"] == "system"
    assert events[-1]["type"] == "result"
    assert events[-1]["subtype"] == "success"
    assert events[-1]["result"] == "Created hello.txt."
