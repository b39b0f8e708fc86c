"""Aider's plain text (`--no-pretty --no-stream`): its `Model:`, `Tokens:` and `Cost:` lines.

Aider prints one `Tokens: 1.2k sent, 300 received. Cost: $0.01 message, $0.02 session.` line
per model reply, so each is a turn; the text it says between them is its message. Its edits are
reported as `Applied edit to PATH`, counted as tool calls. Nothing here is malformed: any line
is text.
"""

from __future__ import annotations

import re

from corral.core.streams.activity import (
    RESULT_CHARS,
    SUMMARY_CHARS,
    TEXT_CHARS,
    Activity,
    AssistantMessage,
    Cost,
    FinalResult,
    ModelNamed,
    Retry,
    StreamError,
    ToolCall,
    Turn,
    Usage,
    WaitingForInput,
    clip,
)
from corral.core.streams.base import StreamAdapter

_NUMBER = r"([\d.,]+)\s*([kKmM]?)"
_TOKENS = re.compile(rf"^Tokens: {_NUMBER} sent(?:, {_NUMBER} cache \w+)*, {_NUMBER} received\.")
_CACHED = re.compile(rf"{_NUMBER} cache hit")
_COST = re.compile(r"Cost: \$([\d.]+) message, \$([\d.]+) session")
_MODEL = re.compile(r"^Model: (\S+)")
_APPLIED = re.compile(r"^Applied edit to (.+)$")
_RETRY = re.compile(r"^Retrying in [\d.]+ seconds")
_ERROR = re.compile(r"^(litellm\.\w+|\w+Error):|^Error: ")
_QUESTION = re.compile(r"\((?:Y)es/\(N\)o.*\]:?\s*$|\[Yes\]:\s*$")
_NOISE = ("Aider v", "Git repo:", "Repo-map:", "https://aider.chat", "Update git ", "Detected ")


def _count(number: str, unit: str) -> int:
    value = float(number.replace(",", ""))
    return round(value * {"": 1, "k": 1_000, "m": 1_000_000}[unit.lower()])


class AiderAdapter(StreamAdapter):
    name = "aider"

    def __init__(self) -> None:
        super().__init__()
        self._turns = 0
        self._tokens = [0, 0, 0]
        self._said: list[str] = []
        self._last_said = ""
        self._fenced = False

    def line(self, text: str) -> list[Activity]:
        if match := _TOKENS.match(text):
            return self._tokens_line(text, match)
        if match := _APPLIED.match(text):
            return [ToolCall(name="edit", summary=clip(match.group(1), SUMMARY_CHARS))]
        if match := _MODEL.match(text):
            return [ModelNamed(model=match.group(1))]
        if _RETRY.match(text):
            return [Retry(message=clip(text, TEXT_CHARS))]
        if _ERROR.match(text):
            return [StreamError(message=clip(text, TEXT_CHARS))]
        if _QUESTION.search(text):
            return [WaitingForInput(prompt=clip(text, TEXT_CHARS))]
        if text.startswith("```"):
            if not self._fenced and self._said:
                self._said.pop()  # the file's name, on the line before its fence
            self._fenced = not self._fenced  # a file's new content: in output.log, not a message
        elif text.startswith(_NOISE):
            self._said = []  # the banner: what came before it was not the model's
        elif not self._fenced:
            self._said.append(text)
        return []

    def _tokens_line(self, text: str, match: re.Match[str]) -> list[Activity]:
        self._turns += 1
        groups = match.groups()
        self._tokens[0] += _count(groups[0], groups[1])
        self._tokens[1] += _count(groups[-2], groups[-1])
        if cached := _CACHED.search(text):
            self._tokens[2] += _count(cached.group(1), cached.group(2))
        tokens_in, tokens_out, cached_total = self._tokens
        out: list[Activity] = [Turn(number=self._turns)]
        if self._said:
            self._last_said = " ".join(self._said)
            out.append(AssistantMessage(text=clip(self._last_said, TEXT_CHARS)))
            self._said = []
        out.append(
            Usage(input_tokens=tokens_in, output_tokens=tokens_out, cached_tokens=cached_total)
        )
        if cost := _COST.search(text):
            out.append(Cost(usd=float(cost.group(2))))
        return out

    def finish(self) -> list[Activity]:
        out = super().finish()
        return [*out, FinalResult(text=clip(self._last_said, RESULT_CHARS))]
