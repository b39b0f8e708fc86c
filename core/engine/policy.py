"""What follows an ended attempt: nothing, a requeue, a retry after a backoff, a dead letter or
a cancel. A decision on the folded state alone, so it is the same in a fresh and a resumed
engine, and testable without running anything (tests/core/test_runtime_policy.py runs it)."""

from __future__ import annotations

import random

from corral.core.log import events as ev
from corral.core.log.state import TERMINAL_STATES, RunState
from corral.core.plan.model import Plan


def backoff_delay(plan: Plan, retries_used: int, rng: random.Random) -> float:
    """Capped exponential backoff with full jitter (uniform between 0 and the cap)."""
    cap = min(plan.run.backoff_max, plan.run.backoff * (2**retries_used))
    return round(rng.uniform(0, cap), 3)


def after_attempt(
    state: RunState,
    plan: Plan,
    agent_id: str,
    cancelled: tuple[str, str] | None,
    rng: random.Random,
) -> ev.EventBase | None:
    """The event that settles `agent_id` after its current attempt ended; None when it needs
    none (it succeeded, or is settled already). `cancelled`: (by, reason) of a kill request."""
    agent = state.agents[agent_id]
    attempt = agent.current
    if attempt is None or agent.state in TERMINAL_STATES or attempt.state == "succeeded":
        return None
    if cancelled is not None:
        by, reason = cancelled
        return ev.AgentCancelled(agent=agent_id, by=by, reason=reason)
    if attempt.requeue:
        return ev.AgentQueued(agent=agent_id, attempt=attempt.number + 1)
    why = f"attempt {attempt.number} {attempt.state}: {attempt.reason}"
    # a budget is spent, not failed: another attempt would spend it again (a person may redrive)
    retry = attempt.state != "budget_exceeded"
    if retry and agent.retries_used < plan.agent(agent_id).retries:
        delay = backoff_delay(plan, agent.retries_used, rng)
        return ev.AgentRetried(agent=agent_id, attempt=attempt.number + 1, delay=delay, reason=why)
    heartbeat = agent.last_heartbeat
    return ev.AgentDeadLettered(
        agent=agent_id,
        attempts=len(agent.attempts),
        reason=why,
        last_heartbeat_ts=heartbeat.ts if heartbeat else None,
        last_message=heartbeat.message if heartbeat else None,
        log_path=attempt.log_path,
    )
