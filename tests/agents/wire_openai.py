"""OpenAI Responses (`POST /v1/responses`, SSE) and Chat Completions (`POST /v1/chat/completions`,
streamed or not), text and tool calls.

In Responses a tool is a `function` (JSON arguments), a `custom` tool (free-form text input, as
Codex's `apply_patch`), a `namespace` grouping tools (as Codex groups MCP tools; a call to a
tool inside one names its namespace in the item), or `tool_search`, run by the client, whose
output loads deferred tools for the next request.
"""

from __future__ import annotations

import time

from tests.agents.script import Reply
from tests.agents.wire import Answer, SseEvent, as_dicts, new_id, rough_tokens

RESULT_ITEMS = {"function_call_output", "custom_tool_call_output", "tool_search_output"}


def responses_tool_results(body: dict[str, object]) -> int:
    return sum(1 for item in as_dicts(body.get("input")) if item.get("type") in RESULT_ITEMS)


def _responses_tools(tools: object, namespace: str | None) -> dict[str, tuple[str, str | None]]:
    """Offered name -> (tool type, namespace). A namespaced tool is offered under its own name
    and as `namespace.name`."""
    found: dict[str, tuple[str, str | None]] = {}
    for tool in as_dicts(tools):
        kind = str(tool.get("type"))
        name = str(tool.get("name", kind))
        if kind == "namespace":
            found.update(_responses_tools(tool.get("tools"), name))
            continue
        found[name] = (kind, namespace)
        if namespace:
            found[f"{namespace}.{name}"] = (kind, namespace)
    return found


def _offered(body: dict[str, object]) -> dict[str, tuple[str, str | None]]:
    """The request's tools and those a client-run `tool_search` has loaded since (Codex defers
    MCP tools for models it knows: they come back in `tool_search_output` items)."""
    loaded = [
        tool
        for item in as_dicts(body.get("input"))
        if item.get("type") == "tool_search_output"
        for tool in as_dicts(item.get("tools"))
    ]
    return _responses_tools([*as_dicts(body.get("tools")), *loaded], None)


def responses_offered_tools(body: dict[str, object]) -> list[str]:
    return list(_offered(body))


def _responses_items(body: dict[str, object], reply: Reply) -> list[dict[str, object]]:
    items: list[dict[str, object]] = []
    if reply.text:
        items.append(
            {
                "type": "message",
                "id": new_id("msg"),
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": reply.text, "annotations": []}],
            }
        )
    if reply.tool_name:
        kind, namespace = _offered(body)[reply.tool_name]
        name = reply.tool_name.split(".")[-1] if namespace else reply.tool_name
        call: dict[str, object] = {"id": new_id("fc"), "status": "completed", "name": name}
        call["call_id"] = new_id("call")
        if kind == "tool_search":
            call.update(type="tool_search_call", execution="client", arguments=reply.arguments)
            del call["name"]
        elif kind == "custom":
            call.update(type="custom_tool_call", input=reply.input or "")
        else:
            call.update(type="function_call", arguments=reply.arguments_json)
        if namespace:
            call["namespace"] = namespace
        items.append(call)
    return items


def responses_answer(body: dict[str, object], reply: Reply) -> Answer:
    """Always streamed: Codex, the one Responses client here, streams."""
    model = str(body.get("model", "scripted"))
    response_id = new_id("resp")
    items = _responses_items(body, reply)
    input_tokens = rough_tokens(body)
    output_tokens = max(1, (len(reply.text) + len(reply.arguments_json)) // 4)
    shell: dict[str, object] = {
        "id": response_id,
        "object": "response",
        "created_at": int(time.time()),
        "model": model,
        "status": "in_progress",
        "output": [],
    }
    events: list[SseEvent] = []

    def emit(kind: str, **fields: object) -> None:
        events.append(
            SseEvent(event=kind, data={"type": kind, "sequence_number": len(events), **fields})
        )

    emit("response.created", response=shell)
    emit("response.in_progress", response=shell)
    for index, item in enumerate(items):
        if item["type"] == "message":
            text = reply.text
            emit("response.output_item.added", output_index=index, item={**item, "content": []})
            part = {"type": "output_text", "text": "", "annotations": []}
            where = {"item_id": item["id"], "output_index": index, "content_index": 0}
            emit("response.content_part.added", **where, part=part)
            emit("response.output_text.delta", **where, delta=text)
            emit("response.output_text.done", **where, text=text)
            emit("response.content_part.done", **where, part={**part, "text": text})
        elif item["type"] == "function_call":
            emit(
                "response.output_item.added",
                output_index=index,
                item={**item, "arguments": "", "status": "in_progress"},
            )
            where = {"item_id": item["id"], "output_index": index}
            emit("response.function_call_arguments.delta", **where, delta=item["arguments"])
            emit("response.function_call_arguments.done", **where, arguments=item["arguments"])
        elif item["type"] == "custom_tool_call":
            emit(
                "response.output_item.added",
                output_index=index,
                item={**item, "input": "", "status": "in_progress"},
            )
            where = {"item_id": item["id"], "output_index": index}
            emit("response.custom_tool_call_input.delta", **where, delta=item["input"])
            emit("response.custom_tool_call_input.done", **where, input=item["input"])
        else:
            emit("response.output_item.added", output_index=index, item=item)
        emit("response.output_item.done", output_index=index, item=item)
    usage = {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }
    emit(
        "response.completed",
        response={**shell, "status": "completed", "output": items, "usage": usage},
    )
    return Answer(events=events)


def chat_tool_results(body: dict[str, object]) -> int:
    return sum(1 for message in as_dicts(body.get("messages")) if message.get("role") == "tool")


def chat_offered_tools(body: dict[str, object]) -> list[str]:
    names = []
    for tool in as_dicts(body.get("tools")):
        function = tool.get("function")
        if isinstance(function, dict):
            names.append(str(function.get("name")))
    return names


def chat_answer(body: dict[str, object], reply: Reply) -> Answer:
    model = str(body.get("model", "scripted"))
    completion_id = new_id("chatcmpl")
    created = int(time.time())
    finish = "tool_calls" if reply.tool_name else "stop"
    prompt_tokens = rough_tokens(body)
    completion_tokens = max(1, (len(reply.text) + len(reply.arguments_json)) // 4)
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    calls: list[dict[str, object]] = []
    if reply.tool_name:
        function = {"name": reply.tool_name, "arguments": reply.arguments_json}
        calls.append({"id": new_id("call"), "type": "function", "function": function})
    head = {"id": completion_id, "created": created, "model": model}
    if not body.get("stream"):
        message: dict[str, object] = {"role": "assistant", "content": reply.text or None}
        if calls:
            message["tool_calls"] = calls
        choice = {"index": 0, "message": message, "finish_reason": finish}
        return Answer(
            body={**head, "object": "chat.completion", "choices": [choice], "usage": usage}
        )

    def chunk(delta: dict[str, object], finish_reason: str | None = None) -> SseEvent:
        choice = {"index": 0, "delta": delta, "finish_reason": finish_reason}
        return SseEvent(data={**head, "object": "chat.completion.chunk", "choices": [choice]})

    events = [chunk({"role": "assistant", "content": ""})]
    if reply.text:
        events.append(chunk({"content": reply.text}))
    if calls:
        events.append(chunk({"tool_calls": [{"index": 0, **calls[0]}]}))
    events.append(chunk({}, finish))
    options = body.get("stream_options")
    if isinstance(options, dict) and options.get("include_usage"):
        events.append(
            SseEvent(
                data={**head, "object": "chat.completion.chunk", "choices": [], "usage": usage}
            )
        )
    events.append(SseEvent(data="[DONE]"))
    return Answer(events=events)


def model_entry(model: str) -> dict[str, object]:
    return {"id": model, "object": "model", "created": 0, "owned_by": "corral"}


def models(model: str) -> dict[str, object]:
    return {"object": "list", "data": [model_entry(model)]}
