"""An attempt's stream added up: the running totals and what happened since they were last
recorded, which the engine turns into one `agent_activity` event (coalesced, so a chatty stream
makes a few events a second at most, each small).

Cost is the CLI's own figure where it reports one, else the price table's for the model named
(core/streams/prices.py), else unknown: tokens only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from corral.core.streams.activity import (
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
)
from corral.core.streams.prices import PriceTable

MAX_TOOLS_PER_EVENT = 8
"""Tool calls kept per event (the latest ones); the total count is always ex"""
CostSource = Literal["cli", "prices"]


@dataclass(frozen=True, kw_only=True)
class Pending:
    """What happened since the last recorded event."""

    tools: list[ToolCall]
    message: str | None
    result: FinalResult | None
    error: str | None
    retry: str | None
    waiting: str | None


@dataclass(kw_only=True)
class StreamTally:
    prices: PriceTable
    model: str | None = None
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_cached: int = 0
    cli_cost: float | None = None
    turns: int = 0
    tool_calls: int = 0
    malformed: int = 0
    changed: bool = False
    """Something arrived since the last `take`."""
    urgent: bool = False
    """What arrived should be recorded now: a result, an error, a wait for input."""
    _tools: list[ToolCall] = field(default_factory=list)
    _message: str | None = None
    _result: FinalResult | None = None
    _error: str | None = None
    _retry: str | None = None
    _waiting: str | None = None

    def add(self, activities: list[Activity]) -> None:
        for item in activities:
            self._add(item)
        if activities:
            self.changed = True

    def _add(self, item: Activity) -> None:
        match item:
            case ToolCall():
                self.tool_calls += 1
                self._tools.append(item)
                if len(self._tools) > MAX_TOOLS_PER_EVENT:
                    del self._tools[0]
            case AssistantMessage():
                self._message = item.text
            case Usage():
                self.tokens_in = max(self.tokens_in, item.input_tokens)
                self.tokens_out = max(self.tokens_out, item.output_tokens)
                self.tokens_cached = max(self.tokens_cached, item.cached_tokens)
            case Cost():
                self.cli_cost = item.usd
            case Turn():
                self.turns = max(self.turns, item.number)
            case ModelNamed():
                self.model = item.model
            case FinalResult():
                self._result = item
                self.urgent = True
            case StreamError():
                self._error = item.message
                self.urgent = True
            case Retry():
                self._retry = item.message
            case WaitingForInput():
                self._waiting = item.prompt
                self.urgent = True

    @property
    def tokens(self) -> int:
        """Input and output tokens: what `max_tokens` counts."""
        return self.tokens_in + self.tokens_out

    def cost(self) -> tuple[float | None, CostSource | None]:
        if self.cli_cost is not None:
            return self.cli_cost, "cli"
        if self.model is not None and (self.tokens_in or self.tokens_out):
            usd = self.prices.cost(self.model, self.tokens_in, self.tokens_out, self.tokens_cached)
            if usd is not None:
                return usd, "prices"
        return None, None

    def take(self) -> Pending:
        """What happened since the last take, cleared."""
        pending = Pending(
            tools=self._tools,
            message=self._message,
            result=self._result,
            error=self._error,
            retry=self._retry,
            waiting=self._waiting,
        )
        self._tools = []
        self._message = self._result = self._error = self._retry = self._waiting = None
        self.changed = self.urgent = False
        return pending
