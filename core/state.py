"""`state = fold(events)`: the one pure function that turns the log into what everyone sees.

The engine uses it to resume after a crash, the console to draw, the report to count. It reads
no clock and no randomness (RELIABILITY E6): the same events always give the same state. The
models here are the published shape of `corral status --json`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, Field

from corral.core import events as ev

AgentStateName = Literal[
    "queued",
    "waiting",
    "starting",
    "running",
    "stalled",
    "succeeded",
    "failed",
    "timed_out",
    "killed",
    "lost",
    "dead_lettered",
    "skipped",
    "cancelled",
]
"""The names DESIGN.md gives; the same in events, on screen and in `--json` output."""

TERMINAL_STATES: frozenset[str] = frozenset({"succeeded", "dead_lettered", "skipped", "cancelled"})
"""An agent in one of these states gets no further attempt unless a person redrives it."""
ACTIVE_STATES: frozenset[str] = frozenset({"starting", "running", "stalled"})
RunStatus = Literal["running", "finished", "stopped"]


class Heartbeat(BaseModel):
    """The latest sign of life and where it came from."""

    ts: float
    source: ev.HeartbeatSource
    progress: float | None = None
    message: str | None = None


class AttemptState(BaseModel):
    """One attempt of an agent: its own workspace, branch and process."""

    number: int
    state: AgentStateName = "queued"
    workspace: str = ""
    branch: str = ""
    output_dir: str = ""
    log_path: str = ""
    pid: int | None = None
    proc_start_time: float | None = None
    started_ts: float | None = None
    ended_ts: float | None = None
    exit_code: int | None = None
    signal: int | None = None
    reason: str = ""
    requeue: bool = False


class AgentState(BaseModel):
    """An agent as the log tells it."""

    id: str
    kind: Literal["coding", "audit"]
    command: list[str]
    depends_on: list[str] = Field(default_factory=list)
    retries: int = 0
    state: AgentStateName = "queued"
    attempt: int = 0
    """Number of the current (or last) attempt; 0 before the first starts."""
    attempts: list[AttemptState] = Field(default_factory=list)
    last_heartbeat: Heartbeat | None = None
    heartbeats: int = 0
    retries_used: int = 0
    """Retries spent since the start (or since a person last redrove the agent)."""
    reason: str = ""
    """Why it waits, was skipped, failed or was cancelled."""
    waiting_on: list[str] = Field(default_factory=list)
    not_before: float | None = None
    """Earliest start of the next attempt while a retry backoff runs."""

    @property
    def current(self) -> AttemptState | None:
        return self.attempts[-1] if self.attempts else None


class EngineState(BaseModel):
    pid: int
    start_time: float
    host: str
    user: str


class RunState(BaseModel):
    """The whole run: published as `corral status RUN --json`."""

    run_id: str = ""
    name: str = ""
    repo: str = ""
    base_ref: str = ""
    snapshot: str = ""
    worktree_root: str = ""
    status: RunStatus = "running"
    verdict: Literal["passed", "failed"] | None = None
    verdict_reason: str = ""
    required_successes: int = 0
    max_parallel: int = 1
    started_ts: float | None = None
    finished_ts: float | None = None
    engine: EngineState | None = None
    agents: dict[str, AgentState] = Field(default_factory=dict)
    last_seq: int = 0
    last_ts: float | None = None

    def counts(self) -> dict[str, int]:
        """Agents by state, in the order of AgentStateName."""
        found: dict[str, int] = {}
        for agent in self.agents.values():
            found[agent.state] = found.get(agent.state, 0) + 1
        return found

    def succeeded(self) -> int:
        return sum(1 for agent in self.agents.values() if agent.state == "succeeded")


def fold(events: Iterable[ev.Event]) -> RunState:
    """Replay events into a fresh state."""
    state = RunState()
    for event in events:
        apply(state, event)
    return state


def apply(state: RunState, event: ev.Event) -> None:
    """Advance `state` by one event (in place: the console applies events as they arrive)."""
    state.last_seq = event.seq
    state.last_ts = event.ts
    match event:
        case ev.RunStarted():
            _run_started(state, event)
        case ev.EngineResumed():
            _engine_resumed(state, event)
        case ev.EngineStopped():
            _engine_stopped(state, event)
        case ev.RunFinished():
            _run_finished(state, event)
        case ev.AgentQueued():
            _agent_queued(state, event)
        case ev.AgentWaiting():
            _agent_waiting(state, event)
        case ev.AgentSkipped():
            _agent_skipped(state, event)
        case ev.AgentStarting():
            _agent_starting(state, event)
        case ev.AgentStarted():
            _agent_started(state, event)
        case ev.AgentHeartbeat():
            _agent_heartbeat(state, event)
        case ev.AgentStalled():
            _agent_stalled(state, event)
        case ev.AgentFinished():
            _agent_finished(state, event)
        case ev.AgentRetried():
            _agent_retried(state, event)
        case ev.AgentDeadLettered():
            _agent_dead_lettered(state, event)
        case ev.AgentCancelled():
            _agent_cancelled(state, event)
        case ev.AgentRedriven():
            _agent_redriven(state, event)


def _attempt(state: RunState, agent_id: str, number: int) -> tuple[AgentState, AttemptState]:
    agent = state.agents[agent_id]
    for attempt in reversed(agent.attempts):
        if attempt.number == number:
            return agent, attempt
    attempt = AttemptState(number=number)
    agent.attempts.append(attempt)
    agent.attempt = number
    return agent, attempt


def _run_started(state: RunState, event: ev.RunStarted) -> None:
    state.run_id = event.run_id
    state.name = event.name
    state.repo = event.repo
    state.base_ref = event.base_ref
    state.snapshot = event.snapshot
    state.worktree_root = event.worktree_root
    state.required_successes = event.required_successes
    state.max_parallel = event.max_parallel
    state.started_ts = event.ts
    state.engine = EngineState(**event.engine.model_dump())
    state.agents = {
        summary.id: AgentState(
            id=summary.id,
            kind=summary.kind,
            command=list(summary.command),
            depends_on=list(summary.depends_on),
            retries=summary.retries,
        )
        for summary in event.agents
    }


def _engine_resumed(state: RunState, event: ev.EngineResumed) -> None:
    state.engine = EngineState(**event.engine.model_dump())
    state.status = "running"


def _engine_stopped(state: RunState, event: ev.EngineStopped) -> None:
    if state.status == "running":
        state.status = "stopped"


def _run_finished(state: RunState, event: ev.RunFinished) -> None:
    state.status = "finished"
    state.verdict = event.verdict
    state.verdict_reason = event.reason
    state.finished_ts = event.ts


def _agent_queued(state: RunState, event: ev.AgentQueued) -> None:
    agent = state.agents[event.agent]
    agent.state = "queued"
    agent.not_before = event.not_before
    agent.waiting_on = []


def _agent_waiting(state: RunState, event: ev.AgentWaiting) -> None:
    agent = state.agents[event.agent]
    agent.state = "waiting"
    agent.reason = event.reason
    agent.waiting_on = list(event.on)


def _agent_skipped(state: RunState, event: ev.AgentSkipped) -> None:
    agent = state.agents[event.agent]
    agent.state = "skipped"
    agent.reason = event.reason
    agent.waiting_on = []


def _agent_starting(state: RunState, event: ev.AgentStarting) -> None:
    agent, attempt = _attempt(state, event.agent, event.attempt)
    agent.state = attempt.state = "starting"
    agent.reason = ""
    agent.waiting_on = []
    agent.not_before = None
    attempt.workspace = event.workspace
    attempt.branch = event.branch
    attempt.output_dir = event.output_dir
    attempt.log_path = event.log_path
    attempt.started_ts = event.ts


def _agent_started(state: RunState, event: ev.AgentStarted) -> None:
    agent, attempt = _attempt(state, event.agent, event.attempt)
    agent.state = attempt.state = "running"
    attempt.pid = event.pid
    attempt.proc_start_time = event.proc_start_time


def _agent_heartbeat(state: RunState, event: ev.AgentHeartbeat) -> None:
    agent, attempt = _attempt(state, event.agent, event.attempt)
    agent.last_heartbeat = Heartbeat(
        ts=event.ts, source=event.source, progress=event.progress, message=event.message
    )
    agent.heartbeats += 1
    if attempt.state == "stalled":
        agent.state = attempt.state = "running"


def _agent_stalled(state: RunState, event: ev.AgentStalled) -> None:
    agent, attempt = _attempt(state, event.agent, event.attempt)
    if attempt.state == "running":
        agent.state = attempt.state = "stalled"


def _agent_finished(state: RunState, event: ev.AgentFinished) -> None:
    agent, attempt = _attempt(state, event.agent, event.attempt)
    agent.state = attempt.state = event.outcome
    attempt.ended_ts = event.ts
    attempt.exit_code = event.exit_code
    attempt.signal = event.signal
    attempt.reason = event.reason
    attempt.requeue = event.requeue
    agent.reason = event.reason


def _agent_retried(state: RunState, event: ev.AgentRetried) -> None:
    agent = state.agents[event.agent]
    agent.state = "queued"
    agent.retries_used += 1
    agent.not_before = event.ts + event.delay
    agent.reason = event.reason


def _agent_dead_lettered(state: RunState, event: ev.AgentDeadLettered) -> None:
    agent = state.agents[event.agent]
    agent.state = "dead_lettered"
    agent.reason = event.reason


def _agent_cancelled(state: RunState, event: ev.AgentCancelled) -> None:
    agent = state.agents[event.agent]
    agent.state = "cancelled"
    agent.reason = (
        f"cancelled by {event.by}: {event.reason}" if event.reason else f"cancelled by {event.by}"
    )


def _agent_redriven(state: RunState, event: ev.AgentRedriven) -> None:
    agent = state.agents[event.agent]
    agent.state = "queued"
    agent.retries_used = 0
    agent.reason = f"retry requested by {event.by}"
