"""`state = fold(events)`: the one pure function that turns the log into what everyone sees.

The engine uses it to resume after a crash, the console to draw, the report to count. It reads
no clock and no randomness (docs/reliability.md E6): the same events always give the same state. The
models here are the published shape of `corral status --json`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, Field

from corral.core.log import events as ev

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
"""The names docs/architecture.md lists; the same in events, on screen and in `--json` output."""

TERMINAL_STATES: frozenset[str] = frozenset({"succeeded", "dead_lettered", "skipped", "cancelled"})
"""An agent in one of these states gets no further attempt unless a person redrives it."""
ACTIVE_STATES: frozenset[str] = frozenset({"starting", "running", "stalled"})
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
        case ev.LockWaiting():
            _lock_waiting(state, event)
        case ev.LockAcquired():
            _lock_acquired(state, event)
        case ev.LockRenewed():
            _lock_renewed(state, event)
        case ev.LockReleased():
            _lock_released(state, event)
        case ev.LockExpired():
            _lock_expired(state, event)
        case ev.LockBroken():
            _lock_broken(state, event)
        case ev.LockWaitAbandoned():
            _lock_wait_abandoned(state, event)
        case ev.ConflictPredicted():
            _conflict_predicted(state, event)
        case ev.ConflictCleared():
            _conflict_cleared(state, event)
        case ev.MergeStarted():
            _merge_started(state, event)
        case ev.BranchMerged():
            _branch_merged(state, event)
        case ev.BranchLeftOut():
            _branch_left_out(state, event)
        case ev.VerificationFinished():
            _verification_finished(state, event)
        case ev.FindingsRejected():
            _findings_rejected(state, event)
        case ev.ReportWritten():
            _report_written(state, event)
        case ev.ReportApproved():
            _report_approved(state, event)
        case ev.ReportRejected():
            _report_rejected(state, event)
        case ev.IntegrityRecorded():
            _integrity_recorded(state, event)
        case ev.RepoTampered():
            _repo_tampered(state, event)
        case ev.TamperingAcknowledged():
            _tampering_acknowledged(state, event)


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
    progress, message = event.progress, event.message
    said = agent.last_heartbeat  # output and CPU say nothing: what the agent said stays
    if said is not None and said.attempt == event.attempt:
        progress = said.progress if progress is None else progress
        message = said.message if message is None else message
    agent.last_heartbeat = Heartbeat(
        ts=event.ts, source=event.source, attempt=event.attempt, progress=progress, message=message
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


def _lock(state: RunState, name: str) -> LockState:
    lock = state.locks.get(name)
    if lock is None:
        lock = state.locks[name] = LockState(name=name)
    return lock


def _drop_waiter(lock: LockState, agent: str, request_id: str) -> None:
    # Request ids are chosen by clients: only the same agent's id names the same request.
    lock.waiters = [w for w in lock.waiters if (w.agent, w.request_id) != (agent, request_id)]


def _lock_waiting(state: RunState, event: ev.LockWaiting) -> None:
    lock = _lock(state, event.lock)
    _drop_waiter(lock, event.agent, event.request_id)
    lock.waiters.append(
        LockWaiter(
            agent=event.agent,
            attempt=event.attempt,
            request_id=event.request_id,
            since=event.ts,
            reason=event.reason,
            declared=event.declared,
        )
    )
    agent = state.agents.get(event.agent)
    if agent is not None and agent.state in ("queued", "waiting", "starting"):
        holder = f" held by {event.holder} (token {event.holder_token})" if event.holder else ""
        agent.reason = f"waiting for lock {event.lock}{holder}"
        if event.declared:
            agent.state = "waiting"
            agent.waiting_on = []


def _lock_acquired(state: RunState, event: ev.LockAcquired) -> None:
    lock = _lock(state, event.lock)
    _drop_waiter(lock, event.agent, event.request_id)
    lock.holder, lock.holder_attempt, lock.token = event.agent, event.attempt, event.token
    lock.holder_pid = event.pid
    lock.ttl, lock.expires_at, lock.declared, lock.reason = (
        event.ttl,
        event.expires_at,
        event.declared,
        event.reason,
    )
    lock.acquired_ts = event.ts
    lock.newest_token = max(lock.newest_token, event.token)
    lock.last_event = f"acquired by {event.agent}"
    state.max_token = max(state.max_token, event.token)


def _lock_renewed(state: RunState, event: ev.LockRenewed) -> None:
    lock = _lock(state, event.lock)
    if lock.token == event.token:
        lock.ttl, lock.expires_at = event.ttl, event.expires_at
        lock.last_event = f"renewed by {lock.holder}"


def _lock_freed(state: RunState, name: str, token: int, what: str) -> None:
    lock = _lock(state, name)
    if lock.token == token:
        lock.holder = lock.holder_attempt = lock.holder_pid = lock.token = None
        lock.ttl = lock.expires_at = lock.acquired_ts = None
        lock.declared = False
        lock.reason = ""
    lock.last_event = what


def _lock_released(state: RunState, event: ev.LockReleased) -> None:
    _lock_freed(state, event.lock, event.token, f"released by {event.agent} ({event.reason})")


def _lock_expired(state: RunState, event: ev.LockExpired) -> None:
    _lock_freed(
        state, event.lock, event.token, f"expired ({event.agent} overdue {event.overdue:.1f}s)"
    )


def _lock_broken(state: RunState, event: ev.LockBroken) -> None:
    _lock_freed(state, event.lock, event.token, f"broken by {event.by}: {event.reason}")


def _lock_wait_abandoned(state: RunState, event: ev.LockWaitAbandoned) -> None:
    _drop_waiter(_lock(state, event.lock), event.agent, event.request_id)


def _conflict_predicted(state: RunState, event: ev.ConflictPredicted) -> None:
    known = state.conflicts.get(event.key)
    if known is None:
        state.conflicts[event.key] = ConflictState(
            key=event.key, agents=list(event.agents), files=list(event.files), predicted=True
        )
    else:
        known.files, known.predicted = list(event.files), True


def _conflict_cleared(state: RunState, event: ev.ConflictCleared) -> None:
    known = state.conflicts.get(event.key)
    if known is not None:
        known.predicted = False
        if not known.actual:
            del state.conflicts[event.key]


def _merge_started(state: RunState, event: ev.MergeStarted) -> None:
    state.merge = MergeState()
    for key, conflict in list(state.conflicts.items()):
        conflict.actual = False
        if not conflict.predicted:
            del state.conflicts[key]


def _branch_merged(state: RunState, event: ev.BranchMerged) -> None:
    state.merge.merged.append(event)
    state.merge.integration_commit = event.commit


def _branch_left_out(state: RunState, event: ev.BranchLeftOut) -> None:
    state.merge.left_out.append(event)
    for other in event.conflicts_with:
        key = "+".join(sorted((event.agent, other)))
        files = list(event.pair_files.get(other, event.files))
        known = state.conflicts.get(key)
        if known is None:
            state.conflicts[key] = ConflictState(
                key=key, agents=sorted((event.agent, other)), files=files, actual=True
            )
        else:
            known.actual = True
            known.files = files or known.files


def _verification_finished(state: RunState, event: ev.VerificationFinished) -> None:
    state.merge.verification = event


def _findings_rejected(state: RunState, event: ev.FindingsRejected) -> None:
    state.rejected_findings[event.agent] = event.reason
    state.rejected_attempts[event.agent] = event.attempt


def _report_written(state: RunState, event: ev.ReportWritten) -> None:
    state.report = ReportState(
        path=event.path,
        sha256=event.sha256,
        findings=event.findings,
        conflicts=event.conflicts,
        synthesized=event.synthesized,
        written_seq=event.seq,
    )
    state.review = None


def _report_approved(state: RunState, event: ev.ReportApproved) -> None:
    state.review = ReviewState(
        decision="approved",
        by=event.by,
        report_sha256=event.report_sha256,
        log_head=event.log_head,
        landed=event.landed,
    )


def _report_rejected(state: RunState, event: ev.ReportRejected) -> None:
    state.review = ReviewState(
        decision="rejected",
        by=event.by,
        reason=event.reason,
        report_sha256=event.report_sha256,
        log_head=event.log_head,
    )


def _integrity_recorded(state: RunState, event: ev.IntegrityRecorded) -> None:
    if event.files is not None:
        state.integrity = IntegrityBaseline(
            files=dict(event.files), git_dir=event.git_dir, copies=event.copies
        )
    if state.integrity is not None:  # refs alone add to a baseline, never start one
        state.integrity.refs.update(event.refs)


def _repo_tampered(state: RunState, event: ev.RepoTampered) -> None:
    state.tampering.append(
        TamperingState(
            seq=event.seq,
            ts=event.ts,
            live=list(event.live),
            seen=event.seen,
            changes=list(event.changes),
            problem=event.problem,
        )
    )
    baseline = state.integrity
    if baseline is None:
        return
    # What was reported and left as found is the new baseline, so it is reported once.
    for change in event.changes:
        if change.restored:
            continue
        known = baseline.refs if change.kind == "ref" else baseline.files
        if change.new is None:
            known.pop(change.name, None)
        else:
            known[change.name] = change.new


def _tampering_acknowledged(state: RunState, event: ev.TamperingAcknowledged) -> None:
    for tampering in state.tampering:
        if tampering.seq <= event.through_seq and tampering.acknowledged_by is None:
            tampering.acknowledged_by = event.by
