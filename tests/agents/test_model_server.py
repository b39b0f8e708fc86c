"""The scripted model server speaks each wire format as its clients parse it, picks turns by
the tool results in a request's history, and records every request without its secrets."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.agents.model_server import ModelServer, running
from tests.agents.script import Script, ToolCall, Turn

SCRIPT = Script(
    turns=[
        Turn(
            text="Writing.", tool=ToolCall(names=["Write", "write_file"], arguments={"path": "a"})
        ),
        Turn(text="Done writing."),
    ],
    side_text="a title",
)


@pytest.fixture
def server() -> Iterator[ModelServer]:
    with running(SCRIPT) as started:
        yield started


Json = Any
"""Parsed JSON, read by the assertions as the clients read it."""


def post(server: ModelServer, path: str, body: Json, **headers: str) -> str:
    request = urllib.request.Request(
        server.url + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **headers},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return str(response.read().decode())


def get(server: ModelServer, path: str) -> Json:
    with urllib.request.urlopen(server.url + path, timeout=10) as response:
        return json.loads(response.read())


def sse(text: str) -> list[tuple[str | None, Json]]:
    """(event name, data) per event; the `[DONE]` sentinel is kept as {"done": True}."""
    events: list[tuple[str | None, Json]] = []
    for block in text.strip().split("\n\n"):
        lines = dict(line.split(": ", 1) for line in block.splitlines())
        data = lines["data"]
        events.append(
            (lines.get("event"), {"done": True} if data == "[DONE]" else json.loads(data))
        )
    return events


TOOLS = [{"name": "Write", "input_schema": {}}, {"name": "Read", "input_schema": {}}]


def test_anthropic_stream_calls_the_tool_then_answers_its_result(server: ModelServer) -> None:
    prompt = [{"role": "user", "content": "go"}]
    first = sse(
        post(
            server,
            "/v1/messages",
            {"model": "m", "stream": True, "messages": prompt, "tools": TOOLS},
        )
    )
    names = [name for name, _ in first]
    assert names[0] == "message_start"
    assert names[-2:] == ["message_delta", "message_stop"]
    starts = [data["content_block"] for name, data in first if name == "content_block_start"]
    assert starts == [
        {"type": "text", "text": ""},
        {"type": "tool_use", "id": starts[1]["id"], "name": "Write", "input": {}},
    ]
    deltas = [data["delta"] for name, data in first if name == "content_block_delta"]
    assert deltas[1] == {"type": "input_json_delta", "partial_json": '{"path": "a"}'}
    assert first[-2][1]["delta"] == {"stop_reason": "tool_use", "stop_sequence": None}
    history = [
        *prompt,
        {
            "role": "assistant",
            "content": [{"type": "tool_use", "id": "t1", "name": "Write", "input": {}}],
        },
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}],
        },
    ]
    second = json.loads(
        post(server, "/v1/messages", {"model": "m", "messages": history, "tools": TOOLS})
    )
    assert second["content"] == [{"type": "text", "text": "Done writing."}]
    assert second["stop_reason"] == "end_turn"
    assert [(r.turn, r.tool_call) for r in server.model_calls("anthropic")] == [
        (0, "Write"),
        (1, None),
    ]


def test_a_request_offering_none_of_the_tools_is_a_side_request(server: ModelServer) -> None:
    body = {"model": "m", "messages": [{"role": "user", "content": "title?"}]}
    answer = json.loads(post(server, "/v1/messages", body))
    assert answer["content"] == [{"type": "text", "text": "a title"}]
    assert server.model_calls()[0].turn is None


def test_responses_stream_a_function_a_custom_and_a_namespaced_call() -> None:
    script = Script(
        turns=[
            Turn(tool=ToolCall(names=["shell"], arguments={"cmd": "ls"})),
            Turn(tool=ToolCall(names=["apply_patch"], input="*** Begin Patch\n")),
            Turn(tool=ToolCall(names=["corral.lock"], arguments={"path": "a"})),
        ]
    )
    tools = [
        {"type": "function", "name": "shell"},
        {"type": "custom", "name": "apply_patch"},
        {"type": "namespace", "name": "corral", "tools": [{"type": "function", "name": "lock"}]},
    ]
    done = {"type": "function_call_output", "call_id": "c", "output": "ok"}
    with running(script) as server:
        items = []
        for results in range(3):
            body = {"model": "m", "stream": True, "tools": tools, "input": [done] * results}
            events = sse(post(server, "/v1/responses", body))
            assert events[0][0] == "response.created"
            assert events[-1][0] == "response.completed"
            assert [data["sequence_number"] for _, data in events] == list(range(len(events)))
            completed = events[-1][1]["response"]
            assert isinstance(completed, dict)
            assert completed["usage"]["total_tokens"] > 0
            items.append(completed["output"][0])
    assert items[0]["type"] == "function_call"
    assert items[0]["arguments"] == '{"cmd": "ls"}'
    assert items[1]["type"] == "custom_tool_call"
    assert items[1]["input"] == "*** Begin Patch\n"
    assert (items[2]["name"], items[2]["namespace"]) == ("lock", "corral")


def test_responses_tool_search_loads_the_tools_it_found() -> None:
    """Codex runs `tool_search` itself; the namespace it found is offered in its output."""
    search = Turn(tool=ToolCall(names=["tool_search"], arguments={"query": "note"}))
    note = Turn(tool=ToolCall(names=["mcp__corral.note"], arguments={"text": "x"}))
    namespace = {
        "type": "namespace",
        "name": "mcp__corral",
        "tools": [{"type": "function", "name": "note"}],
    }
    tools = [{"type": "tool_search", "execution": "client"}]
    with running(Script(turns=[search, note])) as server:
        body: Json = {"model": "m", "stream": True, "tools": tools, "input": []}
        found = sse(post(server, "/v1/responses", body))[-1][1]["response"]["output"][0]
        assert found["type"] == "tool_search_call"
        assert found["arguments"] == {"query": "note"}
        output = {"type": "tool_search_output", "call_id": found["call_id"], "tools": [namespace]}
        body["input"] = [found, output]
        called = sse(post(server, "/v1/responses", body))[-1][1]["response"]["output"][0]
    assert (called["type"], called["name"], called["namespace"]) == (
        "function_call",
        "note",
        "mcp__corral",
    )


def test_chat_completions_stream_and_not(server: ModelServer) -> None:
    tools = [{"type": "function", "function": {"name": "write_file", "parameters": {}}}]
    body = {
        "model": "m",
        "stream": True,
        "stream_options": {"include_usage": True},
        "tools": tools,
        "messages": [{"role": "user", "content": "go"}],
    }
    chunks = [data for _, data in sse(post(server, "/v1/chat/completions", body))]
    assert chunks[-1] == {"done": True}
    assert chunks[-2]["usage"]["total_tokens"] > 0
    calls = [c["choices"][0]["delta"].get("tool_calls") for c in chunks[:-2]]
    call = next(call for call in calls if call)[0]
    assert call["function"] == {"name": "write_file", "arguments": '{"path": "a"}'}
    assert chunks[-3]["choices"][0]["finish_reason"] == "tool_calls"
    body = {
        **body,
        "stream": False,
        "messages": [{"role": "tool", "tool_call_id": "x", "content": "ok"}],
    }
    answer = json.loads(post(server, "/v1/chat/completions", body))
    assert answer["choices"][0]["message"] == {"role": "assistant", "content": "Done writing."}
    assert answer["choices"][0]["finish_reason"] == "stop"


def test_gemini_stream_generate_content_with_a_function_call(server: ModelServer) -> None:
    prompt = {"role": "user", "parts": [{"text": "go"}]}
    body: Json = {
        "contents": [prompt],
        "tools": [{"functionDeclarations": [{"name": "write_file"}]}],
    }
    (event,) = sse(post(server, "/v1beta/models/g:streamGenerateContent?alt=sse", body))
    parts = event[1]["candidates"][0]["content"]["parts"]
    assert parts[1] == {"functionCall": {"name": "write_file", "args": {"path": "a"}}}
    assert event[1]["usageMetadata"]["totalTokenCount"] > 0
    result = {
        "role": "user",
        "parts": [{"functionResponse": {"name": "write_file", "response": {}}}],
    }
    body["contents"] = [prompt, result]
    answer = json.loads(post(server, "/v1beta/models/g:generateContent", body))
    assert answer["candidates"][0]["content"]["parts"] == [{"text": "Done writing."}]


def test_listings_and_counts_answer_minimally(server: ModelServer) -> None:
    listing = get(server, "/v1/models")
    assert listing["data"][0]["id"] == "scripted-model"
    assert listing["data"][0]["object"] == "model"
    assert listing["data"][0]["type"] == "model"
    assert listing["models"][0]["name"] == "models/scripted-model"
    assert (
        json.loads(post(server, "/v1/messages/count_tokens", {"messages": []}))["input_tokens"] > 0
    )


def test_every_request_is_recorded_without_its_secrets(server: ModelServer) -> None:
    post(
        server,
        "/telemetry",
        {"event": "start"},
        Authorization="Bearer sk-1",
        **{"x-api-key": "sk-2"},
    )
    (recorded,) = server.requests
    assert (recorded.method, recorded.path, recorded.api, recorded.body) == (
        "POST",
        "/telemetry",
        "other",
        {"event": "start"},
    )
    assert "authorization" not in recorded.headers
    assert "x-api-key" not in recorded.headers
    assert "sk-" not in json.dumps(recorded.headers)


def test_past_the_script_the_model_says_it_is_done(server: ModelServer) -> None:
    results = [{"role": "tool", "tool_call_id": str(n), "content": "ok"} for n in range(5)]
    answer = json.loads(post(server, "/v1/chat/completions", {"model": "m", "messages": results}))
    assert answer["choices"][0]["message"]["content"] == SCRIPT.final_text
