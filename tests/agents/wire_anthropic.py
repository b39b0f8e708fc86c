"""Anthropic Messages: `POST /v1/messages`, streamed (SSE) or not, text and tool_use blocks."""

from __future__ import annotations

from tests.agents.script import Reply
from tests.agents.wire import Answer, SseEvent, as_dicts, new_id, rough_tokens


def tool_results(body: dict[str, object]) -> int:
    return sum(
        1
        for message in as_dicts(body.get("messages"))
        for block in as_dicts(message.get("content"))
        if block.get("type") == "tool_result"
    )


def offered_tools(body: dict[str, object]) -> list[str]:
    return [str(tool.get("name")) for tool in as_dicts(body.get("tools"))]


def _blocks(reply: Reply, tool_id: str) -> list[dict[str, object]]:
    blocks: list[dict[str, object]] = []
    if reply.text:
        blocks.append({"type": "text", "text": reply.text})
    if reply.tool_name:
        blocks.append(
            {"type": "tool_use", "id": tool_id, "name": reply.tool_name, "input": reply.arguments}
        )
    return blocks or [{"type": "text", "text": ""}]


def answer(body: dict[str, object], reply: Reply) -> Answer:
    model = str(body.get("model", "scripted"))
    message_id = new_id("msg")
    tool_id = new_id("toolu")
    stop_reason = "tool_use" if reply.tool_name else "end_turn"
    input_tokens = rough_tokens(body)
    output_tokens = max(1, len(reply.text) // 4 + len(reply.arguments_json) // 4)
    usage = {
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    blocks = _blocks(reply, tool_id)
    if not body.get("stream"):
        return Answer(
            body={
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": blocks,
                "stop_reason": stop_reason,
                "stop_sequence": None,
                "usage": usage,
            }
        )
    events = [
        SseEvent(
            event="message_start",
            data={
                "type": "message_start",
                "message": {
                    "id": message_id,
                    "type": "message",
                    "role": "assistant",
                    "model": model,
                    "content": [],
                    "stop_reason": None,
                    "stop_sequence": None,
                    "usage": {**usage, "output_tokens": 1},
                },
            },
        )
    ]
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            start: dict[str, object] = {"type": "text", "text": ""}
            delta: dict[str, object] = {"type": "text_delta", "text": block["text"]}
        else:
            start = {**block, "input": {}}
            delta = {"type": "input_json_delta", "partial_json": reply.arguments_json}
        events += [
            SseEvent(
                event="content_block_start",
                data={"type": "content_block_start", "index": index, "content_block": start},
            ),
            SseEvent(
                event="content_block_delta",
                data={"type": "content_block_delta", "index": index, "delta": delta},
            ),
            SseEvent(
                event="content_block_stop", data={"type": "content_block_stop", "index": index}
            ),
        ]
    events += [
        SseEvent(
            event="message_delta",
            data={
                "type": "message_delta",
                "delta": {"stop_reason": stop_reason, "stop_sequence": None},
                "usage": {"output_tokens": output_tokens},
            },
        ),
        SseEvent(event="message_stop", data={"type": "message_stop"}),
    ]
    return Answer(events=events)


def count_tokens(body: dict[str, object]) -> Answer:
    return Answer(body={"input_tokens": rough_tokens(body)})


def model_entry(model: str) -> dict[str, object]:
    return {
        "type": "model",
        "id": model,
        "display_name": model,
        "created_at": "2025-01-01T00:00:00Z",
    }


def models(model: str) -> dict[str, object]:
    entry = model_entry(model)
    return {"data": [entry], "has_more": False, "first_id": model, "last_id": model}
