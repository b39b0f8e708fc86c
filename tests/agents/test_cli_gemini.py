"""Gemini CLI, headless, against the scripted Gemini streamGenerateContent endpoint."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.agents import checks, clis
from tests.agents.clis import Workspace
from tests.agents.model_server import ModelServer
from tests.agents.script import Script

pytestmark = [pytest.mark.slow, pytest.mark.timeout(200)]

SETTINGS = {"security": {"auth": {"selectedType": "gemini-api-key"}}}
"""Without a chosen auth type the CLI stops headless and asks for one."""


def test_gemini_cli_writes_a_file_with_write_file(
    space: Workspace, model_server: Callable[[Script], ModelServer]
) -> None:
    gemini = clis.require("gemini")
    target = space.repo / "hello.txt"
    server = model_server(
        checks.write_file_script(
            "write_file", {"file_path": str(target), "content": checks.CONTENT}
        )
    )
    (space.home / ".gemini").mkdir()
    (space.home / ".gemini" / "settings.json").write_text(json.dumps(SETTINGS))
    argv = [
        str(gemini), "-p", checks.PROMPT, "--output-format", "stream-json",
        "--approval-mode", "yolo", "-m", "gemini-2.5-pro",
    ]  # fmt: skip
    env = space.env(
        GEMINI_API_KEY="scripted",
        GOOGLE_GEMINI_BASE_URL=server.url,
        GEMINI_CLI_TRUST_WORKSPACE="true",
    )
    result = clis.run("gemini", argv, space, env)
    checks.assert_wrote_file(result, space.repo)
    checks.assert_round_trip(server, "gemini", "write_file")
    events = clis.json_lines(result.stdout)
    kinds = [event["type"] for event in events]
    assert kinds[0] == "init"
    assert "tool_use" in kinds
    assert "tool_result" in kinds
    assert events[-1]["type"] == "result"
    assert events[-1]["status"] == "success"
