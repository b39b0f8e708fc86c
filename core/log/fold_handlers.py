"""The per-event steps of `fold` (core/log/state.py): one function per event type that changes
the state, each advancing a RunState in place. Pure like `fold` itself: no clock, no randomness,
no I/O (docs/reliability.md E6).
"""

from __future__ import annotations

from corral.core.log import events as ev
from corral.core.log.state_models import (
    AgentState,
    AttemptState,
    ConflictState,
    EngineState,
    Heartbeat,
    IntegrityBaseline,
    LockState,
    LockWaiter,
    MergeState,
    Question,
    ReportState,
    ReviewState,
    RunState,
    StreamState,
    SuppressionState,
    TamperingState,
)


def _attempt(state: RunState, agent_id: str, number: int) -> tuple[AgentState, AttemptState]:
    agent = state.agents[agent_id]
    for attempt in reversed(agent.attempts):
        if attempt.number == number:
            return agent, attempt
    attempt = AttemptState(number=number)
    agent.attempts.append(attempt)
    agent.attempt = number
    return agent, attempt


def run_started(state: RunState, event: ev.RunStarted) -> None:
    state.run_id = event.run_id
    state.name = event.name
    state.repo = event.repo
    state.base_ref = event.base_ref
    state.snapshot = event.snapshot
    state.rerun_of = event.rerun_of
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
            input_format=summary.input_format,
            tty=summary.tty,
            tty_size=summary.tty_size,
        )
        for summary in event.agents
    }


def engine_resumed(state: RunState, event: ev.EngineResumed) -> None:
    state.engine = EngineState(**event.engine.model_dump())
    state.status = "running"


def engine_stopped(state: RunState, event: ev.EngineStopped) -> None:
    if state.status == "running":
        state.status = "stopped"


def run_finished(state: RunState, event: ev.RunFinished) -> None:
    state.status = "finished"
    state.verdict = event.verdict
    state.verdict_reason = event.reason
    state.finished_ts = event.ts


def agent_queued(state: RunState, event: ev.AgentQueued) -> None:
    agent = state.agents[event.agent]
    agent.state = "queued"
    agent.not_before = event.not_before
    agent.waiting_on = []


def agent_waiting(state: RunState, event: ev.AgentWaiting) -> None:
    agent = state.agents[event.agent]
    agent.state = "waiting"
    agent.reason = event.reason
    agent.waiting_on = list(event.on)


def agent_skipped(state: RunState, event: ev.AgentSkipped) -> None:
    agent = state.agents[event.agent]
    agent.state = "skipped"
    agent.reason = event.reason
    agent.waiting_on = []


def agent_starting(state: RunState, event: ev.AgentStarting) -> None:
    agent, attempt = _attempt(state, event.agent, event.attempt)
    agent.state = attempt.state = "starting"
    agent.reason = ""
    agent.waiting_on = []
    agent.not_before = None
    attempt.workspace = event.workspace
    attempt.host = event.host
    attempt.branch = event.branch
    attempt.output_dir = event.output_dir
    attempt.log_path = event.log_path
    attempt.started_ts = event.ts


def agent_started(state: RunState, event: ev.AgentStarted) -> None:
    agent, attempt = _attempt(state, event.agent, event.attempt)
    agent.state = attempt.state = "running"
    agent.paused_by = None
    attempt.pid = event.pid
    attempt.proc_start_time = event.proc_start_time
    extra = event.identity.model_extra or {}
    node, host = extra.get("node_id"), extra.get("host")
    attempt.node = node if isinstance(node, str) else ""
    if isinstance(host, str):  # else the host `agent_starting` named (or the engine's)
        attempt.host = host


def agent_paused(state: RunState, event: ev.AgentPaused) -> None:
    agent, _ = _attempt(state, event.agent, event.attempt)
    agent.paused_by = event.by


def agent_resumed(state: RunState, event: ev.AgentResumed) -> None:
    agent, _ = _attempt(state, event.agent, event.attempt)
    agent.paused_by = None


def agent_heartbeat(state: RunState, event: ev.AgentHeartbeat) -> None:
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


def agent_activity(state: RunState, event: ev.AgentActivity) -> None:
    """New totals replace the attempt's; the news (tool, message, result) is kept until newer."""
    agent, attempt = _attempt(state, event.agent, event.attempt)
    old = attempt.stream
    new = StreamState(
        tokens_in=event.tokens_in,
        tokens_out=event.tokens_out,
        tokens_cached=event.tokens_cached,
        cost_usd=event.cost_usd,
        turns=event.turns,
        tool_calls=event.tool_calls,
        model=event.model or (old.model if old else None),
        cost_source=event.cost_source,
        last_tool=event.tools[-1] if event.tools else (old.last_tool if old else None),
        last_message=event.message or (old.last_message if old else None),
        result=event.result if event.result is not None else (old.result if old else None),
        is_error=event.is_error if event.result is not None else bool(old and old.is_error),
        error=event.error or (old.error if old else None),
        retry=event.retry or (old.retry if old else None),
        waiting=event.waiting,
        malformed=event.malformed,
    )
    attempt.stream = new
    was = old.totals() if old else None
    agent.usage.add(new.totals(), was)
    state.usage.add(new.totals(), was)
    said = agent.last_heartbeat
    keep = said is not None and said.attempt == event.attempt
    agent.last_heartbeat = Heartbeat(
        ts=event.ts,
        source="stream",
        attempt=event.attempt,
        progress=said.progress if keep and said else None,
        message=said.message if keep and said else None,
    )
    agent.heartbeats += 1
    if attempt.state == "stalled":
        agent.state = attempt.state = "running"


def agent_stalled(state: RunState, event: ev.AgentStalled) -> None:
    agent, attempt = _attempt(state, event.agent, event.attempt)
    if attempt.state == "running":
        agent.state = attempt.state = "stalled"


def agent_finished(state: RunState, event: ev.AgentFinished) -> None:
    agent, attempt = _attempt(state, event.agent, event.attempt)
    agent.state = attempt.state = event.outcome
    agent.question = None
    agent.paused_by = None
    attempt.ended_ts = event.ts
    attempt.exit_code = event.exit_code
    attempt.signal = event.signal
    attempt.reason = event.reason
    attempt.requeue = event.requeue
    agent.reason = event.reason


def agent_retried(state: RunState, event: ev.AgentRetried) -> None:
    agent = state.agents[event.agent]
    agent.state = "queued"
    agent.retries_used += 1
    agent.not_before = event.ts + event.delay
    agent.reason = event.reason


def agent_dead_lettered(state: RunState, event: ev.AgentDeadLettered) -> None:
    agent = state.agents[event.agent]
    agent.state = "dead_lettered"
    agent.reason = event.reason


def agent_cancelled(state: RunState, event: ev.AgentCancelled) -> None:
    agent = state.agents[event.agent]
    agent.state = "cancelled"
    agent.reason = (
        f"cancelled by {event.by}: {event.reason}" if event.reason else f"cancelled by {event.by}"
    )


def agent_redriven(state: RunState, event: ev.AgentRedriven) -> None:
    agent = state.agents[event.agent]
    agent.state = "queued"
    agent.retries_used = 0
    agent.reason = f"retry requested by {event.by}"


def human_asked(state: RunState, event: ev.HumanAsked) -> None:
    agent, attempt = _attempt(state, event.agent, event.attempt)
    agent.question = Question(
        question_id=event.question_id,
        attempt=event.attempt,
        question=event.question,
        choices=list(event.choices),
        asked_ts=event.ts,
        timeout=event.timeout,
    )
    if attempt.state in ("running", "stalled"):
        agent.state = attempt.state = "waiting_for_human"


def _question_closed(state: RunState, agent_id: str, attempt_no: int, question_id: str) -> None:
    agent, attempt = _attempt(state, agent_id, attempt_no)
    if agent.question is not None and agent.question.question_id == question_id:
        agent.question = None
        if attempt.state == "waiting_for_human":
            agent.state = attempt.state = "running"


def human_answered(state: RunState, event: ev.HumanAnswered) -> None:
    _question_closed(state, event.agent, event.attempt, event.question_id)


def human_unanswered(state: RunState, event: ev.HumanUnanswered) -> None:
    _question_closed(state, event.agent, event.attempt, event.question_id)


def _lock(state: RunState, name: str) -> LockState:
    lock = state.locks.get(name)
    if lock is None:
        lock = state.locks[name] = LockState(name=name)
    return lock


def _drop_waiter(lock: LockState, agent: str, request_id: str) -> None:
    # Request ids are chosen by clients: only the same agent's id names the same request.
    lock.waiters = [w for w in lock.waiters if (w.agent, w.request_id) != (agent, request_id)]


def lock_waiting(state: RunState, event: ev.LockWaiting) -> None:
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


def lock_acquired(state: RunState, event: ev.LockAcquired) -> None:
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


def lock_renewed(state: RunState, event: ev.LockRenewed) -> None:
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


def lock_released(state: RunState, event: ev.LockReleased) -> None:
    _lock_freed(state, event.lock, event.token, f"released by {event.agent} ({event.reason})")


def lock_expired(state: RunState, event: ev.LockExpired) -> None:
    _lock_freed(
        state, event.lock, event.token, f"expired ({event.agent} overdue {event.overdue:.1f}s)"
    )


def lock_broken(state: RunState, event: ev.LockBroken) -> None:
    _lock_freed(state, event.lock, event.token, f"broken by {event.by}: {event.reason}")


def lock_wait_abandoned(state: RunState, event: ev.LockWaitAbandoned) -> None:
    _drop_waiter(_lock(state, event.lock), event.agent, event.request_id)


def conflict_predicted(state: RunState, event: ev.ConflictPredicted) -> None:
    known = state.conflicts.get(event.key)
    if known is None:
        state.conflicts[event.key] = ConflictState(
            key=event.key, agents=list(event.agents), files=list(event.files), predicted=True
        )
    else:
        known.files, known.predicted = list(event.files), True


def conflict_cleared(state: RunState, event: ev.ConflictCleared) -> None:
    known = state.conflicts.get(event.key)
    if known is not None:
        known.predicted = False
        if not known.actual:
            del state.conflicts[event.key]


def merge_started(state: RunState, event: ev.MergeStarted) -> None:
    state.merge = MergeState()
    for key, conflict in list(state.conflicts.items()):
        conflict.actual = False
        if not conflict.predicted:
            del state.conflicts[key]


def branch_merged(state: RunState, event: ev.BranchMerged) -> None:
    state.merge.merged.append(event)
    state.merge.integration_commit = event.commit


def branch_left_out(state: RunState, event: ev.BranchLeftOut) -> None:
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


def verification_finished(state: RunState, event: ev.VerificationFinished) -> None:
    state.merge.verification = event


def findings_rejected(state: RunState, event: ev.FindingsRejected) -> None:
    state.rejected_findings[event.agent] = event.reason
    state.rejected_attempts[event.agent] = event.attempt


def report_written(state: RunState, event: ev.ReportWritten) -> None:
    state.report = ReportState(
        path=event.path,
        sha256=event.sha256,
        findings=event.findings,
        conflicts=event.conflicts,
        synthesized=event.synthesized,
        written_seq=event.seq,
    )
    state.review = None


def report_approved(state: RunState, event: ev.ReportApproved) -> None:
    state.review = ReviewState(
        decision="approved",
        by=event.by,
        report_sha256=event.report_sha256,
        log_head=event.log_head,
        landed=event.landed,
    )


def report_rejected(state: RunState, event: ev.ReportRejected) -> None:
    state.review = ReviewState(
        decision="rejected",
        by=event.by,
        reason=event.reason,
        report_sha256=event.report_sha256,
        log_head=event.log_head,
    )


def findings_suppressed(state: RunState, event: ev.FindingsSuppressed) -> None:
    state.suppressions.append(
        SuppressionState(
            seq=event.seq, kind=event.kind, pattern=event.pattern, by=event.by, reason=event.reason
        )
    )


def integrity_recorded(state: RunState, event: ev.IntegrityRecorded) -> None:
    if event.files is not None:
        state.integrity = IntegrityBaseline(
            files=dict(event.files), git_dir=event.git_dir, copies=event.copies
        )
    if state.integrity is not None:  # refs alone add to a baseline, never start one
        state.integrity.refs.update(event.refs)


def repo_tampered(state: RunState, event: ev.RepoTampered) -> None:
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


def tampering_acknowledged(state: RunState, event: ev.TamperingAcknowledged) -> None:
    for tampering in state.tampering:
        if tampering.seq <= event.through_seq and tampering.acknowledged_by is None:
            tampering.acknowledged_by = event.by
