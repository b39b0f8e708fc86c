"""What every wire format shares: an answer is either one JSON body or a stream of SSE events."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field


@dataclass(frozen=True)
class SseEvent:
    data: dict[str, object] | str
    event: str | None = None
    """The `event:` line; Anthropic and OpenAI Responses name each event, the others do not."""

    def encode(self) -> bytes:
        payload = self.data if isinstance(self.data, str) else json.dumps(self.data)
        head = f"event: {self.event}\n" if self.event else ""
        return f"{head}data: {payload}\n\n".encode()


@dataclass(frozen=True)
class Answer:
    """A JSON body (`events` empty) or an SSE stream (`events` set)."""

    body: dict[str, object] = field(default_factory=dict)
    events: list[SseEvent] = field(default_factory=list)
    status: int = 200


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:24]}"


def rough_tokens(body: object) -> int:
    """A token count that grows with the request, for the usage fields clients display."""
    return max(1, len(json.dumps(body)) // 4)


def as_dicts(value: object) -> list[dict[str, object]]:
    """The dict items of a JSON list (anything else: none)."""
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, dict)]
