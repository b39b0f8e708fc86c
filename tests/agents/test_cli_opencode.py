"""opencode, headless (`opencode run`), against the scripted OpenAI Chat Completions endpoint."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.agents import checks, clis
from tests.agents.clis import Workspace
from tests.agents.model_server import ModelServer
from tests.agents.script import Script

pytestmark = [pytest.mark.slow, pytest.mark.timeout(200)]


def provider_config(base_url: str) -> dict[str, object]:
    """An OpenAI-compatible provider `scripted` with one model `scripted-model`."""
    return {
        "$schema": "https://opencode.ai/config.json",
        "provider": {
            "scripted": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Scripted",
                "options": {"baseURL": f"{base_url}/v1", "apiKey": "scripted"},
                "models": {"scripted-model": {"name": "Scripted", "tool_call": True}},
            }
        },
    }


def test_opencode_writes_a_file_with_its_write_tool(
    space: Workspace, model_server: Callable[[Script], ModelServer]
) -> None:
    opencode = clis.require("opencode")
    target = space.repo / "hello.txt"
    server = model_server(
        checks.write_file_script("write", {"filePath": str(target), "content": checks.CONTENT})
    )
    config = space.home / "opencode.json"
    config.write_text(json.dumps(provider_config(server.url)))
    argv = [
        str(opencode),
        "run",
        "--format",
        "json",
        "-m",
        "scripted/scripted-model",
        checks.PROMPT,
    ]
    env = space.env(
        OPENCODE_CONFIG=str(config),
        OPENCODE_DISABLE_MODELS_FETCH="1",
        OPENCODE_DISABLE_AUTOUPDATE="1",
    )
    result = clis.run("opencode", argv, space, env)
    checks.assert_wrote_file(result, space.repo)
    checks.assert_round_trip(server, "chat", "write")
    events = clis.json_lines(result.stdout)
    tools = [event["part"] for event in events if event["type"] == "tool_use"]
    assert [part["tool"] for part in tools if isinstance(part, dict)] == ["write"]
    assert events[-1]["type"] == "step_finish"
