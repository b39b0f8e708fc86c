"""The shape of a folded run: `RunState` and its parts, published as `corral status --json`.

Plain models, no behaviour beyond small queries: `fold` (core/log/state.py) builds them, its
per-event steps live in core/log/fold_handlers.py. Import them from `corral.core.log.state`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, computed_field

from corral.core.log import events as ev

AgentStateName = Literal[
    "queued",
    "waiting",
    "starting",
    "running",
    "stalled",
    "waiting_for_human",
    "succeeded",
    "failed",
    "timed_out",
    "killed",
    "lost",
    "dead_lettered",
    "skipped",
    "cancelled",
    "budget_exceeded",
]
"""The names docs/architecture.md lists; the same in events, on screen and in `--json` output."""

TERMINAL_STATES: frozenset[str] = frozenset({"succeeded", "dead_lettered", "skipped", "cancelled"})
"""An agent in one of these states gets no further attempt unless a person redrives it."""
ACTIVE_STATES: frozenset[str] = frozenset({"starting", "running", "stalled", "waiting_for_human"})
RunStatus = Literal["running", "finished", "stopped"]


class Heartbeat(BaseModel):
    """The latest sign of life (`ts`, `source`: "last seen") and what the agent last said.

    Any sign of life moves `ts` and `source`; `progress` and `message` are each the last value
    the agent set with `corral heartbeat` in this attempt, kept while output and CPU use keep
    it alive, and blank again when a new attempt starts.
    """

    ts: float
    source: ev.HeartbeatSource
    attempt: int = 0
    progress: float | None = None
    message: str | None = None


class Usage(BaseModel):
    """Tokens, cost and turns added up (an agent's over its attempts, the run's over its agents)."""

    tokens_in: int = 0
    tokens_out: int = 0
    tokens_cached: int = 0
    cost_usd: float | None = None
    """None while no stream counted gave a cost (unknown, not free)."""
    turns: int = 0
    tool_calls: int = 0

    @property
    def tokens(self) -> int:
        """Input and output tokens: what `max_tokens` counts."""
        return self.tokens_in + self.tokens_out

    def add(self, new: Usage, old: Usage | None = None) -> None:
        """Count `new` in place of `old` (the same attempt's earlier totals)."""
        was = old or Usage()
        self.tokens_in += new.tokens_in - was.tokens_in
        self.tokens_out += new.tokens_out - was.tokens_out
        self.tokens_cached += new.tokens_cached - was.tokens_cached
        self.turns += new.turns - was.turns
        self.tool_calls += new.tool_calls - was.tool_calls
        if new.cost_usd is not None or was.cost_usd is not None:
            cost = (self.cost_usd or 0.0) + (new.cost_usd or 0.0) - (was.cost_usd or 0.0)
            self.cost_usd = round(cost, 6)


class StreamState(Usage):
    """What an attempt's event stream said (`agent_activity`): its totals and its latest news."""

    model: str | None = None
    cost_source: ev.CostSource | None = None
    last_tool: ev.ToolUse | None = None
    last_message: str | None = None
    result: str | None = None
    is_error: bool = False
    error: str | None = None
    retry: str | None = None
    waiting: str | None = None
    """What the CLI asked while it waited for input (cleared by the next activity)."""
    malformed: int = 0

    def totals(self) -> Usage:
        return Usage(
            tokens_in=self.tokens_in,
            tokens_out=self.tokens_out,
            tokens_cached=self.tokens_cached,
            cost_usd=self.cost_usd,
            turns=self.turns,
            tool_calls=self.tool_calls,
        )


class AttemptState(BaseModel):
    """One attempt of an agent: its own workspace, branch and process."""

    number: int
    state: AgentStateName = "queued"
    workspace: str = ""
    host: str = ""
    """Where it runs when not on the engine's host: a host of the `ssh` runtime's pool, or the
    host name of its Ray node (when the runtime says it); empty for the engine's host."""
    branch: str = ""
    output_dir: str = ""
    log_path: str = ""
    pid: int | None = None
    proc_start_time: float | None = None
    node: str = ""
    """The Ray node it runs on (`identity.node_id`), on a cluster."""
    started_ts: float | None = None
    ended_ts: float | None = None
    exit_code: int | None = None
    signal: int | None = None
    reason: str = ""
    requeue: bool = False
    stream: StreamState | None = None
    """What the agent's CLI reported, for an agent with a `stream` adapter."""


class AgentState(BaseModel):
    """An agent as the log tells it."""

    id: str
    kind: Literal["coding", "audit"]
    command: list[str]
    depends_on: list[str] = Field(default_factory=list)
    retries: int = 0
    input_format: str | None = None
    """How it takes a person's messages while it runs; None: it does not (no `i`)."""
    tty: bool = False
    """It runs on a terminal the engine holds: attach to it (keystrokes, resize)."""
    tty_size: tuple[int, int] | None = None
    """Its terminal's size as it starts, (columns, rows), when `tty`."""
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
    usage: Usage = Field(default_factory=Usage)
    """Tokens, cost and turns of all its attempts (each attempt's own: `attempts[].stream`)."""
    paused_by: str | None = None
    """Who paused its running attempt (`agent_paused`); None while it is not paused."""

    @property
    def paused(self) -> bool:
        return self.paused_by is not None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def stream(self) -> StreamState | None:
        """What the latest attempt's stream said (model, last tool call, result)."""
        for attempt in reversed(self.attempts):
            if attempt.stream is not None:
                return attempt.stream
        return None

    question: Question | None = None
    """The question the agent waits on a person for (state `waiting_for_human`)."""

    @property
    def current(self) -> AttemptState | None:
        return self.attempts[-1] if self.attempts else None


class Question(BaseModel):
    """What an agent asked a person (the MCP tool `ask_human`) and is waiting to hear back."""

    question_id: str
    attempt: int
    question: str
    choices: list[str] = Field(default_factory=list)
    asked_ts: float
    timeout: float


class LockWaiter(BaseModel):
    """An attempt queued for a lock (first in line first)."""

    agent: str
    attempt: int
    request_id: str
    since: float
    reason: str = ""
    declared: bool = False
    """The engine waits on the agent's behalf for a lock its plan declares."""


class LockState(BaseModel):
    """A lock as the log tells it: holder, lease, token and the queue behind it."""

    name: str
    holder: str | None = None
    holder_attempt: int | None = None
    holder_pid: int | None = None
    """The process that asked for the lease, when its client said."""
    token: int | None = None
    """The holder's fencing token."""
    newest_token: int = 0
    """The highest token ever granted for this lock: fenced writes need exactly this one."""
    ttl: float | None = None
    expires_at: float | None = None
    """Wall-clock end of the lease (None: held for the holder's whole attempt)."""
    declared: bool = False
    reason: str = ""
    acquired_ts: float | None = None
    waiters: list[LockWaiter] = Field(default_factory=list)
    last_event: str = ""
    """What happened last: acquired, renewed, released, expired or broken (with who)."""


class ConflictState(BaseModel):
    """Two agents whose work collides (or an agent and the moved base, `@base`)."""

    key: str
    agents: list[str]
    files: list[ev.ConflictFile]
    predicted: bool = False
    """Seen while the agents ran; cleared when their snapshots stop colliding."""
    actual: bool = False
    """Found at merge time."""


class MergeState(BaseModel):
    merged: list[ev.BranchMerged] = Field(default_factory=list)
    left_out: list[ev.BranchLeftOut] = Field(default_factory=list)
    integration_commit: str | None = None
    verification: ev.VerificationFinished | None = None


class ReportState(BaseModel):
    path: str
    sha256: str
    findings: int
    conflicts: int
    synthesized: bool
    written_seq: int


class ReviewState(BaseModel):
    decision: Literal["approved", "rejected"]
    by: str
    reason: str = ""
    report_sha256: str
    log_head: str
    landed: str | None = None


class IntegrityBaseline(BaseModel):
    """What agents must not touch, as last recorded (docs/reliability.md T3; core/trust/integrity.py)."""

    refs: dict[str, str] = Field(default_factory=dict)
    files: dict[str, str] = Field(default_factory=dict)
    git_dir: str = ""
    copies: str = ""


class SuppressionState(BaseModel):
    """A `findings_suppressed` event: a rule or a path set aside for this review."""

    seq: int
    kind: Literal["rule", "path"]
    pattern: str
    by: str
    reason: str


class TamperingState(BaseModel):
    """A `repo_tampered` event, and who acknowledged it (approve waits until someone did)."""

    seq: int
    ts: float
    live: list[str]
    seen: ev.TamperingSeen
    changes: list[ev.RepoChange]
    problem: str = ""
    acknowledged_by: str | None = None


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
    rerun_of: ev.RerunOrigin | None = None
    """The run whose left-out agents this run redoes on its integration commit (`corral rerun`)."""
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
    locks: dict[str, LockState] = Field(default_factory=dict)
    max_token: int = 0
    """Highest fencing token ever granted in the run; a restarted engine continues above it."""
    conflicts: dict[str, ConflictState] = Field(default_factory=dict)
    merge: MergeState = Field(default_factory=MergeState)
    rejected_findings: dict[str, str] = Field(default_factory=dict)
    """Agents whose output failed validation, with the reason."""
    rejected_attempts: dict[str, int] = Field(default_factory=dict)
    """The attempt each of those rejections was of: a later attempt's output may validate."""
    report: ReportState | None = None
    review: ReviewState | None = None
    integrity: IntegrityBaseline | None = Field(default=None, exclude=True)
    """The recorded baseline; engine-internal (it lists every ref), so not in `--json`."""
    tampering: list[TamperingState] = Field(default_factory=list)
    """Changes to the shared repository no agent may make; approve waits for acknowledgement."""
    suppressions: list[SuppressionState] = Field(default_factory=list)
    """Rules and paths reviewers set aside for this review, oldest first."""
    usage: Usage = Field(default_factory=Usage)
    """Tokens, cost and turns of every agent's attempts: the run's totals."""
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

    def unacknowledged_tampering(self) -> list[TamperingState]:
        return [t for t in self.tampering if t.acknowledged_by is None]
