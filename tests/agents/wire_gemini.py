"""Gemini: `POST /v1beta/models/{model}:streamGenerateContent?alt=sse` and `:generateContent`,
text and functionCall parts, with usageMetadata."""

from __future__ import annotations

from tests.agents.script import Reply
from tests.agents.wire import Answer, SseEvent, as_dicts, rough_tokens


def tool_results(body: dict[str, object]) -> int:
    return sum(
        1
        for content in as_dicts(body.get("contents"))
        for part in as_dicts(content.get("parts"))
        if "functionResponse" in part
    )


def offered_tools(body: dict[str, object]) -> list[str]:
    return [
        str(declaration.get("name"))
        for tool in as_dicts(body.get("tools"))
        for declaration in as_dicts(tool.get("functionDeclarations"))
    ]


def answer(body: dict[str, object], reply: Reply, model: str, stream: bool) -> Answer:
    parts: list[dict[str, object]] = []
    if reply.text:
        parts.append({"text": reply.text})
    if reply.tool_name:
        parts.append({"functionCall": {"name": reply.tool_name, "args": reply.arguments}})
    prompt_tokens = rough_tokens(body)
    output_tokens = max(1, (len(reply.text) + len(reply.arguments_json)) // 4)
    chunk: dict[str, object] = {
        "candidates": [
            {
                "content": {"role": "model", "parts": parts or [{"text": ""}]},
                "finishReason": "STOP",
                "index": 0,
            }
        ],
        "usageMetadata": {
            "promptTokenCount": prompt_tokens,
            "candidatesTokenCount": output_tokens,
            "totalTokenCount": prompt_tokens + output_tokens,
        },
        "modelVersion": model,
    }
    if stream:
        return Answer(events=[SseEvent(data=chunk)])
    return Answer(body=chunk)


def count_tokens(body: dict[str, object]) -> Answer:
    return Answer(body={"totalTokens": rough_tokens(body)})


def models(model: str) -> dict[str, object]:
    return {
        "models": [
            {
                "name": f"models/{model}",
                "displayName": model,
                "supportedGenerationMethods": ["generateContent", "streamGenerateContent"],
            }
        ]
    }
