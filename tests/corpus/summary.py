"""What of a folded run the corpus records: what people and the console rely on.

Not the whole RunState, so that a new field in the state does not mean regenerating the
corpus; a field added here does (tests/corpus/regenerate.py).
"""

from __future__ import annotations

from typing import Any

from corral.core.log.state import RunState


def summarize(state: RunState) -> dict[str, Any]:
    """The run's outcome, each agent's attempts, locks, merge, report, review and tampering;
    the agents' stream usage, for a run that has some."""
    summary = _summary(state)
    if state.usage.tokens or state.usage.turns:
        summary["usage"] = state.usage.model_dump()
        summary["streams"] = {
            agent.id: {
                "model": agent.stream.model,
                "tokens": agent.usage.tokens,
                "cost_usd": agent.usage.cost_usd,
                "turns": agent.usage.turns,
                "last_tool": agent.stream.last_tool.name if agent.stream.last_tool else None,
                "malformed": agent.stream.malformed,
            }
            for agent in state.agents.values()
            if agent.stream is not None
        }
    return summary


def _summary(state: RunState) -> dict[str, Any]:
    return {
        "run_id": state.run_id,
        "status": state.status,
        "verdict": state.verdict,
        "verdict_reason": state.verdict_reason,
        "required_successes": state.required_successes,
        "last_seq": state.last_seq,
        "agents": {
            agent.id: {
                "state": agent.state,
                "attempt": agent.attempt,
                "retries_used": agent.retries_used,
                "reason": agent.reason,
                "attempts": [
                    {"number": a.number, "state": a.state, "exit_code": a.exit_code}
                    for a in agent.attempts
                ],
            }
            for agent in state.agents.values()
        },
        "locks": {
            lock.name: {
                "holder": lock.holder,
                "token": lock.token,
                "newest_token": lock.newest_token,
                "last_event": lock.last_event,
            }
            for lock in state.locks.values()
        },
        "max_token": state.max_token,
        "merge": {
            "merged": [branch.agent for branch in state.merge.merged],
            "left_out": [branch.agent for branch in state.merge.left_out],
            "integration_commit": state.merge.integration_commit,
        },
        "report": None
        if state.report is None
        else {"findings": state.report.findings, "synthesized": state.report.synthesized},
        "review": None
        if state.review is None
        else {"decision": state.review.decision, "by": state.review.by},
        "tampering": [
            {
                "seq": t.seq,
                "seen": t.seen,
                "live": t.live,
                "changes": [f"{change.kind} {change.name}" for change in t.changes],
                "acknowledged_by": t.acknowledged_by,
            }
            for t in state.tampering
        ],
    }
