"""Aider, headless (`--message`), against the scripted OpenAI Chat Completions endpoint.

Aider has no tools: it edits through its edit format in plain text. With `--edit-format whole`
the reply names the file and gives its whole content in a fence, and Aider writes it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.agents import checks, clis
from tests.agents.clis import Workspace
from tests.agents.model_server import ModelServer
from tests.agents.script import Script, Turn

pytestmark = [pytest.mark.slow, pytest.mark.timeout(200)]

WHOLE_FILE_REPLY = f"I'll create the file.\n\nhello.txt\n```\n{checks.CONTENT}```\n"


def test_aider_writes_a_file_through_its_whole_edit_format(
    space: Workspace, model_server: Callable[[Script], ModelServer]
) -> None:
    aider = clis.require("aider")
    server = model_server(Script(turns=[Turn(text=WHOLE_FILE_REPLY)]))
    caches = space.home / ".aider" / "caches"
    caches.mkdir(parents=True)
    # Aider fetches litellm's model price list from GitHub unless a fresh copy is cached.
    (caches / "model_prices_and_context_window.json").write_text("{}")
    argv = [
        str(aider), "--model", "openai/scripted-model", "--openai-api-base", f"{server.url}/v1",
        "--message", checks.PROMPT, "--edit-format", "whole", "--yes-always", "--no-auto-commits",
        "--no-check-update", "--no-analytics", "--no-pretty", "--no-stream", "--no-gitignore",
        "--no-show-model-warnings",
    ]  # fmt: skip
    env = space.env(OPENAI_API_KEY="sk-scripted", LITELLM_LOCAL_MODEL_COST_MAP="True")
    result = clis.run("aider", argv, space, env)
    checks.assert_wrote_file(result, space.repo)
    calls = server.model_calls("chat")
    assert [call.turn for call in calls] == [0]
    assert "Applied edit to hello.txt" in result.stdout
    assert not (space.repo / ".gitignore").exists()
