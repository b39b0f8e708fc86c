"""What every CLI test asserts: the CLI ended well, the file its tool wrote is there, and the
server saw the tool call go out and its result come back."""

from __future__ import annotations

from pathlib import Path

from tests.agents.clis import Run
from tests.agents.model_server import ModelServer
from tests.agents.script import Script, ToolCall, Turn

CONTENT = "hello from the scripted model\n"
NOTE = "a note from the scripted model"


def write_file_script(tool: str, arguments: dict[str, object], input: str | None = None) -> Script:
    """Turn 0: the CLI's own file-writing tool creates hello.txt; turn 1: a final text."""
    return Script(
        turns=[
            Turn(
                text="I'll create the file.",
                tool=ToolCall(names=[tool], arguments=arguments, input=input),
            ),
            Turn(text="Created hello.txt."),
        ]
    )


def note_script(tool: str) -> Script:
    """Turn 0: call the MCP stub's `note` tool (under the CLI's name for it); turn 1: text."""
    return Script(
        turns=[Turn(tool=ToolCall(names=[tool], arguments={"text": NOTE})), Turn(text="Noted.")]
    )


def assert_noted(result: Run, notes: Path) -> None:
    assert result.returncode == 0, result.explain()
    assert notes.is_file(), f"the MCP tool was not called\n{result.explain()}"
    assert notes.read_text() == NOTE + "\n"


def assert_wrote_file(result: Run, repo: Path) -> None:
    assert result.returncode == 0, result.explain()
    target = repo / "hello.txt"
    assert target.is_file(), f"hello.txt was not created\n{result.explain()}"
    assert target.read_text() == CONTENT


def assert_round_trip(server: ModelServer, api: str, tool: str) -> None:
    """The scripted tool call was answered (turn 0, the tool offered) and its result came back
    in the next request (turn 1: one tool result in the history)."""
    calls = server.model_calls(api)
    assert calls, f"no {api} request reached the server: {server.requests}"
    seen = [(call.turn, call.tool_call) for call in calls]
    assert (0, tool) in seen, f"no request was answered with a call to {tool}: {seen}"
    assert any(turn == 1 for turn, _ in seen), f"the tool result never came back: {seen}"
