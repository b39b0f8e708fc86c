"""Which adapter reads which CLI: the names an agent's `stream` may take."""

from __future__ import annotations

from corral.core.errors import InputError
from corral.core.streams.aider import AiderAdapter
from corral.core.streams.base import StreamAdapter
from corral.core.streams.claude import ClaudeAdapter
from corral.core.streams.codex import CodexAdapter
from corral.core.streams.gemini import GeminiAdapter
from corral.core.streams.opencode import OpencodeAdapter

ADAPTERS: dict[str, type[StreamAdapter]] = {
    adapter.name: adapter
    for adapter in (ClaudeAdapter, CodexAdapter, GeminiAdapter, OpencodeAdapter, AiderAdapter)
}


class UnknownStream(InputError):
    """An agent names a stream adapter corral does not have (preflight refuses the plan first)."""

    def __init__(self, name: str) -> None:
        super().__init__(
            f"no event-stream adapter {name!r}; "
            f"use one of {', '.join(sorted(ADAPTERS))} (or leave `stream` out)"
        )


def adapter_for(name: str) -> StreamAdapter:
    """A fresh adapter for one attempt's output; raises UnknownStream."""
    try:
        return ADAPTERS[name]()
    except KeyError:
        raise UnknownStream(name) from None


def stream_names() -> list[str]:
    return sorted(ADAPTERS)
