"""`state = fold(events)`: the one pure function that turns the log into what everyone sees.

The engine uses it to resume after a crash, the console to draw, the report to count. It reads
no clock and no randomness (docs/reliability.md E6): the same events always give the same state. The
models (the published shape of `corral status --json`) live in `state_models`, the step for each
event type in `fold_handlers`; import all of them from here.
"""

from __future__ import annotations

from collections.abc import Iterable

from corral.core.log import events as ev
from corral.core.log import fold_handlers as on
from corral.core.log.state_models import (
    ACTIVE_STATES,
    TERMINAL_STATES,
    AgentState,
    AgentStateName,
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
    RunStatus,
    StreamState,
    SuppressionState,
    TamperingState,
    Usage,
)

__all__ = [
    "ACTIVE_STATES",
    "TERMINAL_STATES",
    "AgentState",
    "AgentStateName",
    "AttemptState",
    "ConflictState",
    "EngineState",
    "Heartbeat",
    "IntegrityBaseline",
    "LockState",
    "LockWaiter",
    "MergeState",
    "Question",
    "ReportState",
    "ReviewState",
    "RunState",
    "RunStatus",
    "StreamState",
    "SuppressionState",
    "TamperingState",
    "Usage",
    "apply",
    "fold",
]


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
            on.run_started(state, event)
        case ev.EngineResumed():
            on.engine_resumed(state, event)
        case ev.EngineStopped():
            on.engine_stopped(state, event)
        case ev.RunFinished():
            on.run_finished(state, event)
        case ev.AgentQueued():
            on.agent_queued(state, event)
        case ev.AgentWaiting():
            on.agent_waiting(state, event)
        case ev.AgentSkipped():
            on.agent_skipped(state, event)
        case ev.AgentStarting():
            on.agent_starting(state, event)
        case ev.AgentStarted():
            on.agent_started(state, event)
        case ev.AgentHeartbeat():
            on.agent_heartbeat(state, event)
        case ev.AgentStalled():
            on.agent_stalled(state, event)
        case ev.AgentActivity():
            on.agent_activity(state, event)
        case ev.AgentFinished():
            on.agent_finished(state, event)
        case ev.AgentRetried():
            on.agent_retried(state, event)
        case ev.AgentDeadLettered():
            on.agent_dead_lettered(state, event)
        case ev.AgentCancelled():
            on.agent_cancelled(state, event)
        case ev.AgentRedriven():
            on.agent_redriven(state, event)
        case ev.LockWaiting():
            on.lock_waiting(state, event)
        case ev.LockAcquired():
            on.lock_acquired(state, event)
        case ev.LockRenewed():
            on.lock_renewed(state, event)
        case ev.LockReleased():
            on.lock_released(state, event)
        case ev.LockExpired():
            on.lock_expired(state, event)
        case ev.LockBroken():
            on.lock_broken(state, event)
        case ev.LockWaitAbandoned():
            on.lock_wait_abandoned(state, event)
        case ev.ConflictPredicted():
            on.conflict_predicted(state, event)
        case ev.ConflictCleared():
            on.conflict_cleared(state, event)
        case ev.MergeStarted():
            on.merge_started(state, event)
        case ev.BranchMerged():
            on.branch_merged(state, event)
        case ev.BranchLeftOut():
            on.branch_left_out(state, event)
        case ev.VerificationFinished():
            on.verification_finished(state, event)
        case ev.FindingsRejected():
            on.findings_rejected(state, event)
        case ev.ReportWritten():
            on.report_written(state, event)
        case ev.ReportApproved():
            on.report_approved(state, event)
        case ev.ReportRejected():
            on.report_rejected(state, event)
        case ev.FindingsSuppressed():
            on.findings_suppressed(state, event)
        case ev.IntegrityRecorded():
            on.integrity_recorded(state, event)
        case ev.RepoTampered():
            on.repo_tampered(state, event)
        case ev.TamperingAcknowledged():
            on.tampering_acknowledged(state, event)
        case ev.HumanAsked():
            on.human_asked(state, event)
        case ev.HumanAnswered():
            on.human_answered(state, event)
        case ev.HumanUnanswered():
            on.human_unanswered(state, event)
        case ev.AgentPaused():
            on.agent_paused(state, event)
        case ev.AgentResumed():
            on.agent_resumed(state, event)
        case ev.NetworkRefused() | ev.AgentInputSent() | ev.AgentResized() | ev.LateResultRefused():
            pass  # a fact for people (the tail, the report's log), no state of its own
