"""One agent's attempts: queued, started, alive, ended, retried, dead-lettered."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny

from corral.core.log.event_types.base import EventBase

HeartbeatSource = Literal["beat", "output", "cpu", "stream"]
"""How the engine knows an agent is alive: an explicit heartbeat, new output, CPU use, or
activity its CLI's event stream reported (`agent_activity`)."""
AttemptOutcome = Literal["succeeded", "failed", "timed_out", "killed", "lost", "budget_exceeded"]
"""How one attempt ended. `lost`: the engine died while it ran; `killed`: hung or stopped;
`budget_exceeded`: stopped for crossing a `max_cost_usd`, `max_tokens` or `max_turns`."""


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
    host: str = ""
    """The host it runs on (runtime `ssh`: the pool's name; `workspace` is then a path on that
    host); empty on the engine's own host."""


class ExecutionIdentity(BaseModel):
    """Which execution an attempt's agent is, as its runtime (core/runtime/base.py) knows it.

    `runtime` names the runtime; the rest is the runtime's own (a container id, a host and its
    boot id, a node and actor id), kept as extra fields. `pid` and `start_time` are set only for
    a process on the engine's own host: the kernel's start time makes a reused pid impossible to
    mistake, and they are what /proc-based checks (core/trust/authority.py) may use."""

    model_config = ConfigDict(extra="allow", frozen=True, allow_inf_nan=False)

    runtime: str
    pid: int | None = None
    start_time: float | None = None


def _identity_of_pid(data: dict[str, Any]) -> ExecutionIdentity:
    """A log from before runtimes (or a caller that gives the local pid): a local process."""
    return ExecutionIdentity(
        runtime="local", pid=data.get("pid"), start_time=data.get("proc_start_time")
    )


class AgentStarted(EventBase):
    type: Literal["agent_started"] = "agent_started"
    agent: str
    attempt: int
    pid: int | None = None
    """The agent's process on the engine's host, when it is one (its identity's pid)."""
    proc_start_time: float | None = None
    """The process's start time as the kernel reports it, so a reused pid is never mistaken."""
    runtime: str = "local"
    """The runtime that started it (`[run] runtime`, or the agent's own)."""
    identity: SerializeAsAny[ExecutionIdentity] = Field(default_factory=_identity_of_pid)
    """Enough for the runtime to find the execution again after an engine crash
    (core/runtime/base.py `Runtime.reattach`); older logs have only `pid` and `proc_start_time`."""


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


class NetworkRefused(EventBase):
    """A sandboxed agent (`network = "allow"`) asked corral's proxy for a destination its
    allowlist does not hold, and was refused (docs/reliability.md T6). A fact to see; it
    changes no state."""

    type: Literal["network_refused"] = "network_refused"
    agent: str
    attempt: int
    destination: str
    """`host:port` as the agent asked for it."""


class LateResultRefused(EventBase):
    """A host came back after its attempt was lost, and what the attempt did meanwhile is not
    taken (docs/reliability.md T7): `what` is `commit` (its branch moved on the host; never
    fetched). Its late requests on the socket are refused by token and recorded on their own
    (`fenced_write_refused`, `operator_action_refused`). A fact; it changes no state."""

    type: Literal["late_result_refused"] = "late_result_refused"
    agent: str
    attempt: int
    host: str
    what: str
    detail: str = ""


class AgentPaused(EventBase):
    """A person froze a running agent's whole tree (SIGSTOP): it uses no CPU, and its timeout
    and heartbeat timeout stand still until `agent_resumed`. It stays `running`, paused."""

    type: Literal["agent_paused"] = "agent_paused"
    agent: str
    attempt: int
    by: str
    processes: int = 0
    """How many processes of its tree were stopped."""


class AgentResumed(EventBase):
    """A person let a paused agent go on (SIGCONT); `paused_for` seconds did not count against
    its timeouts."""

    type: Literal["agent_resumed"] = "agent_resumed"
    agent: str
    attempt: int
    by: str
    paused_for: float = 0.0


class AgentResized(EventBase):
    """A person's view resized a terminal agent's screen (it got SIGWINCH): who, and to what.
    One event per burst (a dragged window sends dozens): its last size, once the viewer has
    been quiet for RESIZE_QUIET seconds (core/engine/resizes.py), and only when it changed."""

    type: Literal["agent_resized"] = "agent_resized"
    agent: str
    attempt: int
    by: str
    cols: int
    rows: int


class AgentInputSent(EventBase):
    """A person's message was written to a running agent's stdin (`input_format`): who sent
    what, as the agent received it. A fact to see; a sign of life of the person, not the agent."""

    type: Literal["agent_input_sent"] = "agent_input_sent"
    agent: str
    attempt: int
    by: str
    text: str
    """What was sent, cut to MAX_LOGGED_INPUT characters (`truncated` says so)."""
    raw: bool = False
    """Keystrokes written as is to its terminal (`send_keys`), not a message in its format."""
    truncated: bool = False
