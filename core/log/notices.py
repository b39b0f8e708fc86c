"""When a person should look: the one rule for every notification (issue 13).

An agent that waits for input, succeeds, fails, is given up on or is stopped by a budget, and
the run finishing, are worth a person's attention; everything else (heartbeats, locks, output)
is not. `NoticeWatch` turns a stream of applied events into at most one `Notice` per agent per
state change, so a flapping or chatty agent cannot cause a storm. The engine sends each notice
to the plan's `[run] notify` command (core/engine/notify.py); the console rings the bell, keeps
a status line and asks the desktop (`notify-send`) — both from this rule.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from corral.core.log import events as ev
from corral.core.log.state import RunState

NOTIFY_STATES: frozenset[str] = frozenset(
    {"succeeded", "failed", "timed_out", "lost", "dead_lettered", "cancelled", "budget_exceeded"}
)
"""Agent states a person hears about when an agent enters them."""
WAITING_FOR_INPUT = "waiting_for_input"
"""A notice's `state` when the agent's CLI says it waits for a person (its stream adapter)."""
WAITING_FOR_HUMAN = "waiting_for_human"
"""A notice's `state` when an agent asked a person a question (the MCP tool `ask_human`)."""


class Notice(BaseModel):
    """One thing worth a person's attention, as the `[run] notify` command receives it (JSON)."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    agent: str | None
    """None for the run itself (`state` is then "finished" or "stopped")."""
    state: str
    text: str
    """One line for a person: `agent: state: reason`."""
    seq: int
    ts: float
    event: str
    """The type of the event that caused it."""


def _line(agent: str | None, state: str, reason: str) -> str:
    head = f"{agent}: {state.replace('_', ' ')}" if agent else f"run {state}"
    return f"{head}: {reason}" if reason else head


class NoticeWatch:
    """Which applied events are worth a notice; remembers what each agent was last noticed for.

    Call `observe` after each event is applied to `state` (the engine's listener, the console's
    feed). `quiet=True` while replaying a log that was written before the watch started: the
    states are remembered, nothing is noticed."""

    def __init__(self) -> None:
        self.noticed: dict[str | None, str] = {}

    def seed(self, state: RunState) -> None:
        """Remember what `state` already shows, as a quiet replay of its log would have (a
        console that starts from a checkpoint folds no old events)."""
        for agent in state.agents.values():
            if agent.state in NOTIFY_STATES:
                self.noticed[agent.id] = agent.state
        if state.status == "finished":
            self.noticed[None] = "finished"

    def observe(self, state: RunState, event: ev.Event, *, quiet: bool = False) -> Notice | None:
        agent, now, reason = self._what(state, event)
        if now is None or self.noticed.get(agent) == now:
            return None
        self.noticed[agent] = now
        if quiet:
            return None
        return Notice(
            run_id=state.run_id,
            agent=agent,
            state=now,
            text=_line(agent, now, reason),
            seq=event.seq,
            ts=event.ts,
            event=event.type,
        )

    def _what(self, state: RunState, event: ev.Event) -> tuple[str | None, str | None, str]:
        """(agent, the state to notice or None, why) for one applied event."""
        if isinstance(event, ev.RunFinished):
            return (
                None,
                "finished",
                f"{event.verdict}: {event.reason}" if event.reason else event.verdict,
            )
        if isinstance(event, ev.EngineStopped) and event.reason != "finished":
            return None, "stopped", event.reason
        agent_id = getattr(event, "agent", None)
        if not isinstance(agent_id, str) or agent_id not in state.agents:
            return None, None, ""
        if isinstance(event, ev.AgentStarted):
            self.noticed.pop(agent_id, None)  # a new attempt: how it ends is news again
            return agent_id, None, ""
        if isinstance(event, ev.AgentActivity):
            if event.waiting:  # its CLI asks a person
                return agent_id, WAITING_FOR_INPUT, event.waiting
            if self.noticed.get(agent_id) == WAITING_FOR_INPUT:
                self.noticed.pop(agent_id)  # it goes on: its next wait is news again
            return agent_id, None, ""
        if isinstance(event, ev.HumanAsked):
            return agent_id, WAITING_FOR_HUMAN, event.question
        if isinstance(event, ev.HumanAnswered | ev.HumanUnanswered):
            self.noticed.pop(agent_id, None)  # the next question is news again
            return agent_id, None, ""
        agent = state.agents[agent_id]
        if agent.state not in NOTIFY_STATES:
            return agent_id, None, ""
        return agent_id, agent.state, agent.reason
