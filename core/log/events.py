"""Every fact of a run is one of these events, one JSON object a line in `events.jsonl`.

The union is discriminated by `type`, so a line parses straight into its model
(`EventAdapter.validate_json`), which is the fastest way pydantic has to replay a log.
`seq` and `prev` are set by the log writer, never by the code that emits the event.
"""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, TypeAdapter

GENESIS_HASH = "0" * 64
HeartbeatSource = Literal["beat", "output", "cpu"]
"""How the engine knows an agent is alive: an explicit heartbeat, new output, or CPU use."""
AttemptOutcome = Literal["succeeded", "failed", "timed_out", "killed", "lost"]
"""How one attempt ended. `lost`: the engine died while it ran; `killed`: hung or stopped."""


class EventBase(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    seq: int = 0
    """Position in the log, from 1, without gaps."""
    prev: str = ""
    """sha256 of the previous line (GENESIS_HASH for the first), so a lost or edited line shows."""
    ts: float = Field(default_factory=time.time)
    """Wall-clock time the event was made (seconds since the epoch)."""


class EngineInfo(BaseModel):
    """Which engine process wrote the events that follow, so a resumed engine can tell."""

    pid: int
    start_time: float
    host: str
    user: str
    inside: str | None = None
    """The attempt (`run/agent#n`) this engine was started inside, when an agent started it:
    that attempt is the run's operator (core/trust/authority.py)."""


class AgentSummary(BaseModel):
    """What the log keeps of each planned agent: enough to draw it, no secrets (no env values)."""

    id: str
    kind: Literal["coding", "audit"]
    command: list[str]
    depends_on: list[str] = Field(default_factory=list)
    retries: int = 0
    timeout: float = 0.0
    heartbeat_timeout: float = 0.0


class RunStarted(EventBase):
    type: Literal["run_started"] = "run_started"
    run_id: str
    name: str
    repo: str
    base_ref: str
    snapshot: str
    """The commit every agent starts from, resolved once."""
    plan_sha256: str
    agents: list[AgentSummary]
    max_parallel: int
    required_successes: int
    worktree_root: str
    engine: EngineInfo


class EngineResumed(EventBase):
    type: Literal["engine_resumed"] = "engine_resumed"
    engine: EngineInfo
    repaired_tail: bool = False
    """True when a torn last line was quarantined before this engine appended."""


class EngineStopped(EventBase):
    type: Literal["engine_stopped"] = "engine_stopped"
    reason: str
    signal: int | None = None


class RunFinished(EventBase):
    type: Literal["run_finished"] = "run_finished"
    verdict: Literal["passed", "failed"]
    succeeded: int
    required: int
    reason: str


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


# -- locks (leases with fencing tokens) --------------------------------------------------------


class LockWaiting(EventBase):
    type: Literal["lock_waiting"] = "lock_waiting"
    lock: str
    agent: str
    attempt: int
    request_id: str
    holder: str | None = None
    """The agent holding the lock when the wait began."""
    holder_token: int | None = None
    reason: str = ""
    declared: bool = False
    """The engine waits for a lock the plan declares: the agent has not started yet."""


class LockAcquired(EventBase):
    type: Literal["lock_acquired"] = "lock_acquired"
    lock: str
    agent: str
    attempt: int
    request_id: str
    token: int
    """Fencing token: strictly increasing over every grant of every lock of the run."""
    ttl: float | None = None
    """Lease length; None for a lock declared in the plan, held for the attempt's life."""
    expires_at: float | None = None
    reason: str = ""
    declared: bool = False
    pid: int | None = None
    """The process that asked for the lease, when the client said (shown beside the holder)."""


class LockRenewed(EventBase):
    type: Literal["lock_renewed"] = "lock_renewed"
    lock: str
    token: int
    ttl: float
    expires_at: float


class LockReleased(EventBase):
    type: Literal["lock_released"] = "lock_released"
    lock: str
    token: int
    agent: str
    reason: str = "released"


class LockExpired(EventBase):
    type: Literal["lock_expired"] = "lock_expired"
    lock: str
    token: int
    agent: str
    overdue: float
    """Seconds past the lease's end when it was reclaimed (at least the grace)."""


class LockBroken(EventBase):
    type: Literal["lock_broken"] = "lock_broken"
    lock: str
    token: int
    agent: str
    by: str
    reason: str


class LockWaitAbandoned(EventBase):
    type: Literal["lock_wait_abandoned"] = "lock_wait_abandoned"
    lock: str
    agent: str
    request_id: str
    reason: str


class FencedWriteAccepted(EventBase):
    type: Literal["fenced_write_accepted"] = "fenced_write_accepted"
    lock: str
    token: int
    agent: str
    path: str
    sha256: str
    size: int


class FencedWriteRefused(EventBase):
    type: Literal["fenced_write_refused"] = "fenced_write_refused"
    lock: str
    token: int
    newest_token: int
    agent: str
    path: str


# -- merge, report, review ---------------------------------------------------------------------

ConflictKind = Literal["content", "add_add", "modify_delete", "rename", "binary", "other"]


class ConflictFile(BaseModel):
    path: str
    kind: ConflictKind


class ConflictPredicted(EventBase):
    """While agents run: their current work (uncommitted included) would conflict."""

    type: Literal["conflict_predicted"] = "conflict_predicted"
    key: str
    """Stable identity of the pair, e.g. `a+b` or `a+@base`."""
    agents: list[str]
    """Two agents, or one agent and `@base` when the base branch moved under it."""
    files: list[ConflictFile]


class ConflictCleared(EventBase):
    type: Literal["conflict_cleared"] = "conflict_cleared"
    key: str


class MergeStarted(EventBase):
    """The merge step begins (again, after a crash): what an earlier try recorded is void."""

    type: Literal["merge_started"] = "merge_started"


class BranchMerged(EventBase):
    type: Literal["branch_merged"] = "branch_merged"
    agent: str
    attempt: int
    branch: str
    commit: str
    """The integration branch's commit after this merge."""


class BranchLeftOut(EventBase):
    type: Literal["branch_left_out"] = "branch_left_out"
    agent: str
    attempt: int
    branch: str
    reason: str
    conflicts_with: list[str] = Field(default_factory=list)
    files: list[ConflictFile] = Field(default_factory=list)
    """Where the branch conflicts with the integration branch."""
    pair_files: dict[str, list[ConflictFile]] = Field(default_factory=dict)
    """For each agent it conflicts with, the files the two alone conflict in (older logs lack
    it: then `files` stands for every pair)."""


class VerificationFinished(EventBase):
    type: Literal["verification_finished"] = "verification_finished"
    command: list[str]
    passed: bool
    exit_code: int | None
    log_path: str
    commit: str


class FindingsRejected(EventBase):
    type: Literal["findings_rejected"] = "findings_rejected"
    agent: str
    attempt: int
    reason: str


class ReportWritten(EventBase):
    type: Literal["report_written"] = "report_written"
    path: str
    sha256: str
    findings: int
    conflicts: int
    synthesized: bool
    """False when the run fell below min_success: the report says why and merges nothing."""


class ReportApproved(EventBase):
    type: Literal["report_approved"] = "report_approved"
    by: str
    report_sha256: str
    log_head: str
    landed: str | None = None
    """The commit the base branch now points at (coding runs)."""


class ReportRejected(EventBase):
    type: Literal["report_rejected"] = "report_rejected"
    by: str
    reason: str
    report_sha256: str
    log_head: str


class OperatorActionRefused(EventBase):
    """An operator action asked from inside an agent, refused (docs/reliability.md T1).

    Names the attempt that asked, which may belong to another run; never its token."""

    type: Literal["operator_action_refused"] = "operator_action_refused"
    action: str
    """`approve`, `reject`, `kill`, `retry`, `lock break` or `gc`."""
    target: str
    """What it was aimed at: `agent victim`, `lock db`, `the report`."""
    caller_run: str
    caller_agent: str
    caller_attempt: int | None = None
    evidence: str
    """How corral knew: the attempt's token, its process tree, or its variables."""


# -- the shared repository's integrity (docs/reliability.md T3) ----------------------------------------


class IntegrityRecorded(EventBase):
    """What agents must not touch in the shared repository, as corral saw it.

    At run start: everything (`files` set). After an attempt ended: only `refs`, its branch,
    which its siblings must leave alone from then on."""

    type: Literal["integrity_recorded"] = "integrity_recorded"
    refs: dict[str, str] = Field(default_factory=dict)
    """Ref (or `HEAD`) -> what it held; added to what was recorded before."""
    files: dict[str, str] | None = None
    """Watched file of the shared git dir (`config`, `hooks/<name>`, `info/attributes`) ->
    its stamp (sha256 and mode); None: unchanged since the last record."""
    git_dir: str = ""
    """The shared git dir the names are relative to."""
    copies: str = ""
    """Where the run keeps the files as they were, to restore them from."""


RepoChangeKind = Literal["ref", "config", "hook", "attributes"]
TamperingSeen = Literal["attempt_end", "resume", "approve"]
"""When a change was found: as an attempt ended, when a resumed engine looked, before approval."""


class RepoChange(BaseModel):
    """One thing in the shared repository that changed although no agent may change it."""

    kind: RepoChangeKind
    name: str
    """The ref (`refs/heads/main`, `HEAD`) or the file, relative to the git dir."""
    old: str | None
    """What was recorded (commit, or file stamp); None: it did not exist."""
    new: str | None
    """What was found; None: it is gone."""
    restored: bool = False
    """Put back as recorded (files only: refs are reported, never moved back)."""
    kept: str | None = None
    """Where the changed file was kept, in the run dir, before it was restored."""
    detail: list[str] = Field(default_factory=list)
    """What changed inside a file (lines added `+` and removed `-`), made printable."""


class RepoTampered(EventBase):
    type: Literal["repo_tampered"] = "repo_tampered"
    live: list[str]
    """Every attempt (`agent#n`) live since the previous check: one of them made the change.
    Empty when none was (found before an approval, after the run)."""
    seen: TamperingSeen
    changes: list[RepoChange]
    problem: str = ""
    """What could not be checked or restored, and what to do about it."""


class TamperingAcknowledged(EventBase):
    type: Literal["tampering_acknowledged"] = "tampering_acknowledged"
    by: str
    through_seq: int
    """Every `repo_tampered` up to this seq was shown to `by`; later ones still block approve."""


Event = Annotated[
    RunStarted
    | EngineResumed
    | EngineStopped
    | RunFinished
    | AgentQueued
    | AgentWaiting
    | AgentSkipped
    | AgentStarting
    | AgentStarted
    | AgentHeartbeat
    | AgentStalled
    | AgentFinished
    | AgentRetried
    | AgentDeadLettered
    | AgentCancelled
    | AgentRedriven
    | LockWaiting
    | LockAcquired
    | LockRenewed
    | LockReleased
    | LockExpired
    | LockBroken
    | LockWaitAbandoned
    | FencedWriteAccepted
    | FencedWriteRefused
    | ConflictPredicted
    | ConflictCleared
    | MergeStarted
    | BranchMerged
    | BranchLeftOut
    | VerificationFinished
    | FindingsRejected
    | ReportWritten
    | ReportApproved
    | ReportRejected
    | OperatorActionRefused
    | IntegrityRecorded
    | RepoTampered
    | TamperingAcknowledged,
    Field(discriminator="type"),
]
EventAdapter: TypeAdapter[Event] = TypeAdapter(Event)
