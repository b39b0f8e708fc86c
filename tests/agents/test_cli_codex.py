"""Codex, headless (`codex exec`), against the scripted OpenAI Responses endpoint."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.agents import checks, clis
from tests.agents.clis import Workspace
from tests.agents.model_server import ModelServer
from tests.agents.script import Script

pytestmark = [pytest.mark.slow, pytest.mark.timeout(200)]

PATCH = (
    "*** Begin Patch\n*** Add File: hello.txt\n"
    + "".join(f"+{line}\n" for line in checks.CONTENT.splitlines())
    + "*** End Patch\n"
)
MODEL = "gpt-5.5"
"""A model Codex has metadata for: with an unknown one it offers no apply_patch tool."""


def test_codex_writes_a_file_with_apply_patch(
    space: Workspace, model_server: Callable[[Script], ModelServer]
) -> None:
    codex = clis.require("codex")
    server = model_server(checks.write_file_script("apply_patch", {}, input=PATCH))
    provider = (
        f'model_providers.scripted={{name="scripted",base_url="{server.url}/v1",'
        'wire_api="responses",env_key="SCRIPTED_API_KEY"}'
    )
    argv = [
        str(codex), "exec", "--json", "--skip-git-repo-check", "-s", "workspace-write",
        "-m", MODEL, "-c", "model_provider=scripted", "-c", provider, checks.PROMPT,
    ]  # fmt: skip
    result = clis.run("codex", argv, space, space.env(SCRIPTED_API_KEY="sk-scripted"))
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
