"""One agent's attempts: queued, started, alive, ended, retried, dead-lettered."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from corral.core.log.event_types.base import EventBase

HeartbeatSource = Literal["beat", "output", "cpu"]
"""How the engine knows an agent is alive: an explicit heartbeat, new output, or CPU use."""
AttemptOutcome = Literal["succeeded", "failed", "timed_out", "killed", "lost"]
"""How one attempt ended. `lost`: the engine died while it ran; `killed`: hung or stopped."""


class AgentQueued(EventBase):
    type: Literal["agent_queued"] = "agent_queued"
    agent: str
    attempt: int
    not_before: float | None = None
    """Earliest start (wall clock) when the attempt waits out a retry backoff."""


class AgentWaiting(EventBase):
    type: Literal["agent_waiting"] = "agent_waiting"
    agent: str
    attempt: int
    reason: str
    on: list[str] = Field(default_factory=list)
    """What it waits for: the unfinished dependencies."""


class AgentSkipped(EventBase):
    type: Literal["agent_skipped"] = "agent_skipped"
    agent: str
    reason: str


class AgentStarting(EventBase):
    type: Literal["agent_starting"] = "agent_starting"
    agent: str
    attempt: int
    workspace: str
    branch: str
    output_dir: str
    log_path: str


class AgentStarted(EventBase):
    type: Literal["agent_started"] = "agent_started"
    agent: str
    attempt: int
    pid: int
    proc_start_time: float
    """The process's start time as the kernel reports it, so a reused pid is never mistaken."""


class AgentHeartbeat(EventBase):
    type: Literal["agent_heartbeat"] = "agent_heartbeat"
    agent: str
    attempt: int
    source: HeartbeatSource
    progress: float | None = None
    message: str | None = None


class AgentStalled(EventBase):
    type: Literal["agent_stalled"] = "agent_stalled"
    agent: str
    attempt: int
    silent_for: float


class AgentFinished(EventBase):
    type: Literal["agent_finished"] = "agent_finished"
    agent: str
    attempt: int
    outcome: AttemptOutcome
    exit_code: int | None = None
    signal: int | None = None
    reason: str = ""
    duration: float = 0.0
    requeue: bool = False
    """The attempt ended through no fault of the agent (the engine stopped or died): the next
    attempt does not use up a retry."""


class AgentRetried(EventBase):
    type: Literal["agent_retried"] = "agent_retried"
    agent: str
    attempt: int
    """The attempt that will run next."""
    delay: float
    reason: str


class AgentDeadLettered(EventBase):
    type: Literal["agent_dead_lettered"] = "agent_dead_lettered"
    agent: str
    attempts: int
    reason: str
    last_heartbeat_ts: float | None = None
    last_message: str | None = None
    log_path: str = ""


class AgentCancelled(EventBase):
    type: Literal["agent_cancelled"] = "agent_cancelled"
    agent: str
    by: str
    reason: str


class AgentRedriven(EventBase):
    type: Literal["agent_redriven"] = "agent_redriven"
    agent: str
    by: str
    """Who asked for another attempt of an agent that had ended."""
