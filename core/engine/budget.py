"""Budgets: `max_cost_usd`, `max_tokens`, `max_turns`, per attempt (the agent's) and per run.

Counted from what agents' streams report (core/streams/): an attempt is checked on every
liveness tick against its own totals and against the run's (what the log holds, with this
attempt's unrecorded news in place of its recorded totals). Crossing one ends the attempt with
`budget_exceeded`, which the retry policy never retries (core/engine/policy.py).
"""

from __future__ import annotations

from typing import Protocol

from corral.core.log.state import Usage


class Limits(Protocol):
    @property
    def max_cost_usd(self) -> float | None: ...
    @property
    def max_tokens(self) -> int | None: ...
    @property
    def max_turns(self) -> int | None: ...


def crossed(limits: Limits, usage: Usage, whose: str) -> str | None:
    """Why `usage` is over one of `limits` (a person's words), or None."""
    if limits.max_tokens is not None and usage.tokens > limits.max_tokens:
        return f"{whose} used {usage.tokens} tokens, over max_tokens = {limits.max_tokens}"
    if limits.max_turns is not None and usage.turns > limits.max_turns:
        return f"{whose} took {usage.turns} turns, over max_turns = {limits.max_turns}"
    cost = usage.cost_usd
    if limits.max_cost_usd is not None and cost is not None and cost > limits.max_cost_usd:
        return f"{whose} cost ${cost:.4f}, over max_cost_usd = {limits.max_cost_usd}"
    return None


def run_budget_spent(limits: Limits, usage: Usage) -> str | None:
    """Why no further agent may start: the run's budget is spent (reached, not only crossed)."""
    if limits.max_tokens is not None and usage.tokens >= limits.max_tokens:
        return f"the run used {usage.tokens} tokens of max_tokens = {limits.max_tokens}"
    if limits.max_turns is not None and usage.turns >= limits.max_turns:
        return f"the run took {usage.turns} turns of max_turns = {limits.max_turns}"
    cost = usage.cost_usd
    if limits.max_cost_usd is not None and cost is not None and cost >= limits.max_cost_usd:
        return f"the run cost ${cost:.4f} of max_cost_usd = {limits.max_cost_usd}"
    return None
