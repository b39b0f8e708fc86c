"""Aider, headless (`--message`), against the scripted OpenAI Chat Completions endpoint.

Aider has no tools: it edits through its edit format in plain text. With `--edit-format whole`
the reply names the file and gives its whole content in a fence, and Aider writes it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.agents import checks, clis, launch
from tests.agents.clis import Workspace
from tests.agents.model_server import ModelServer
from tests.agents.script import Script, Turn

pytestmark = [pytest.mark.slow, pytest.mark.timeout(200)]

WHOLE_FILE_REPLY = f"I'll create the file.\n\nhello.txt\n```\n{checks.CONTENT}```\n"


def test_aider_writes_a_file_through_its_whole_edit_format(
    space: Workspace, model_server: Callable[[Script], ModelServer]
) -> None:
    server = model_server(Script(turns=[Turn(text=WHOLE_FILE_REPLY)]))
    started = launch.aider(space, server.url)
    result = clis.run("aider", started.argv, space, started.env)
    checks.assert_wrote_file(result, space.repo)
    assert [call.turn for call in server.model_calls("chat")] == [0]
    assert "Applied edit to hello.txt" in result.stdout
    assert not (space.repo / ".gitignore").exists()
