"""Which operator action is allowed in which state: the one place that says so.

Front ends ask these before they offer a key or a command (a dimmed key, a refused command); the
engine and the review gate check again when the action arrives, since the run may have moved on.
"""

from __future__ import annotations

from corral.core.log.state import ACTIVE_STATES, TERMINAL_STATES, RunState

RETRYABLE = frozenset(
    {"failed", "timed_out", "killed", "lost", "budget_exceeded", "dead_lettered", "cancelled"}
)
"""Ended states from which a person may give an agent another attempt."""
WORKING = ACTIVE_STATES | {"queued", "waiting"}
"""States of an agent that still has work ahead: a decision waits until none is in them."""


def agent_state(state: RunState | None, agent: str) -> str:
    """The agent's state name; '' for an agent the run does not have."""
    found = state.agents.get(agent) if state is not None else None
    return found.state if found is not None else ""


def killable(state: RunState | None, agent: str) -> bool:
    """An agent not ended yet can be stopped (by a live engine)."""
    return agent_state(state, agent) not in TERMINAL_STATES


def stoppable(state: RunState | None) -> bool:
    """A run whose engine still drives it can be stopped as a whole (and resumed later)."""
    return state is not None and state.status == "running"


PAUSABLE = ACTIVE_STATES - {"starting"}
"""States of an agent whose command runs: it can be paused (if its runtime can: the engine
says) and let go on."""


def pausable(state: RunState | None, agent: str) -> bool:
    """An agent whose command runs, not paused yet, can be paused."""
    found = state.agents.get(agent) if state is not None else None
    return found is not None and found.state in PAUSABLE and not found.paused


def unpausable(state: RunState | None, agent: str) -> bool:
    """A paused agent can be let go on."""
    found = state.agents.get(agent) if state is not None else None
    return found is not None and found.state in PAUSABLE and found.paused


def running_agents(state: RunState) -> list[str]:
    """The agents whose process trees a stop of the run would end."""
    return [a.id for a in state.agents.values() if a.state in ACTIVE_STATES]


def takes_input(state: RunState | None, agent: str) -> bool:
    """A running agent whose plan says it reads a person's messages (`input_format`, `tty`)."""
    found = state.agents.get(agent) if state is not None else None
    return (
        found is not None
        and (found.input_format is not None or found.tty)
        and found.state in ACTIVE_STATES
    )


def retryable(state: RunState | None, agent: str) -> bool:
    """An agent that ended without success, or was stopped, can have another attempt."""
    return agent_state(state, agent) in RETRYABLE


def agents_working(state: RunState) -> bool:
    return any(agent.state in WORKING for agent in state.agents.values())


def decision_blocker(state: RunState, shown_sha256: str | None) -> str:
    """Why neither approve nor reject can be taken now ('' when they can). `shown_sha256` is the
    sha256 of the report the person was shown (None: nothing was shown yet)."""
    if state.report is None:
        return "no report yet"
    if shown_sha256 != state.report.sha256:
        return "the report on disk is not the one the log recorded"
    if state.review is not None:
        return f"already {state.review.decision}"
    if agents_working(state):
        return "agents still run"
    return ""


def approve_blocker(state: RunState, shown_sha256: str | None) -> str:
    """Why an approval cannot be taken now ('' when it can): a decision's reasons, a report
    below min_success (only a rejection is left), or tampering nobody acknowledged yet."""
    blocked = decision_blocker(state, shown_sha256)
    if blocked:
        return blocked
    if state.report is not None and not state.report.synthesized:
        return "the run fell below min_success, so there is nothing to approve; reject it"
    if state.unacknowledged_tampering():
        return "acknowledge the tampering first"
    return ""


def acknowledge_blocker(state: RunState) -> str:
    """Why tampering cannot be acknowledged now ('' when it can)."""
    if not state.unacknowledged_tampering():
        return "nothing to acknowledge: no unacknowledged tampering in this run"
    if agents_working(state):
        return "agents still run"
    return ""


def rerun_blocker(state: RunState | None, agent: str) -> str:
    """Why `agent` cannot be re-run on the run's integration now ('' when it can): the rule of
    `corral rerun` (core/runs/rerun.py)."""
    from corral.core.runs.rerun import RerunRefused, check_rerun

    if state is None:
        return "the run has not started"
    try:
        check_rerun(state, [agent])
    except RerunRefused as exc:
        return str(exc)
    return ""
