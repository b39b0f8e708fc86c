"""Every fact of a run is one of these events, one JSON object a line in `events.jsonl`.

The union is discriminated by `type`, so a line parses straight into its model
(`EventAdapter.validate_json`), which is the fastest way pydantic has to replay a log.
`seq` and `prev` are set by the log writer, never by the code that emits the event.
The types live by family in `event_types/` (run, agent, stream, human, lock, merge, integrity); this module
keeps the union and every public name (`from corral.core.log import events as ev; ev.AgentStarted`).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, TypeAdapter

from corral.core.log.event_types.agent import (
    AgentCancelled,
    AgentDeadLettered,
    AgentFinished,
    AgentHeartbeat,
    AgentInputSent,
    AgentPaused,
    AgentQueued,
    AgentRedriven,
    AgentResized,
    AgentResumed,
    AgentRetried,
    AgentSkipped,
    AgentStalled,
    AgentStarted,
    AgentStarting,
    AgentWaiting,
    AttemptOutcome,
    ExecutionIdentity,
    HeartbeatSource,
    LateResultRefused,
    NetworkRefused,
)
from corral.core.log.event_types.base import (
    GENESIS_HASH,
    LOG_FORMAT,
    EventBase,
)
from corral.core.log.event_types.human import HumanAnswered, HumanAsked, HumanUnanswered
from corral.core.log.event_types.integrity import (
    IntegrityRecorded,
    RepoChange,
    RepoChangeKind,
    RepoTampered,
    TamperingAcknowledged,
    TamperingSeen,
)
from corral.core.log.event_types.lock import (
    FencedWriteAccepted,
    FencedWriteRefused,
    LockAcquired,
    LockBroken,
    LockExpired,
    LockReleased,
    LockRenewed,
    LockWaitAbandoned,
    LockWaiting,
)
from corral.core.log.event_types.merge import (
    BranchLeftOut,
    BranchMerged,
    ConflictCleared,
    ConflictFile,
    ConflictKind,
    ConflictPredicted,
    FindingsRejected,
    FindingsSuppressed,
    MergeStarted,
    OperatorActionRefused,
    ReportApproved,
    ReportRejected,
    ReportWritten,
    VerificationFinished,
)
from corral.core.log.event_types.run import (
    AgentSummary,
    EngineInfo,
    EngineResumed,
    EngineStopped,
    RerunOrigin,
    RunFinished,
    RunStarted,
)
from corral.core.log.event_types.stream import AgentActivity, CostSource, ToolUse

__all__ = [
    "GENESIS_HASH",
    "LOG_FORMAT",
    "AgentActivity",
    "AgentCancelled",
    "AgentDeadLettered",
    "AgentFinished",
    "AgentHeartbeat",
    "AgentInputSent",
    "AgentPaused",
    "AgentQueued",
    "AgentRedriven",
    "AgentResized",
    "AgentResumed",
    "AgentRetried",
    "AgentSkipped",
    "AgentStalled",
    "AgentStarted",
    "AgentStarting",
    "AgentSummary",
    "AgentWaiting",
    "AttemptOutcome",
    "BranchLeftOut",
    "BranchMerged",
    "ConflictCleared",
    "ConflictFile",
    "ConflictKind",
    "ConflictPredicted",
    "CostSource",
    "EngineInfo",
    "EngineResumed",
    "EngineStopped",
    "Event",
    "EventAdapter",
    "EventBase",
    "ExecutionIdentity",
    "FencedWriteAccepted",
    "FencedWriteRefused",
    "FindingsRejected",
    "FindingsSuppressed",
    "HeartbeatSource",
    "HumanAnswered",
    "HumanAsked",
    "HumanUnanswered",
    "IntegrityRecorded",
    "LateResultRefused",
    "LockAcquired",
    "LockBroken",
    "LockExpired",
    "LockReleased",
    "LockRenewed",
    "LockWaitAbandoned",
    "LockWaiting",
    "MergeStarted",
    "NetworkRefused",
    "OperatorActionRefused",
    "RepoChange",
    "RepoChangeKind",
    "RepoTampered",
    "ReportApproved",
    "ReportRejected",
    "ReportWritten",
    "RerunOrigin",
    "RunFinished",
    "RunStarted",
    "TamperingAcknowledged",
    "TamperingSeen",
    "ToolUse",
    "VerificationFinished",
]

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
    | AgentActivity
    | AgentFinished
    | AgentRetried
    | AgentDeadLettered
    | AgentCancelled
    | AgentRedriven
    | NetworkRefused
    | LateResultRefused
    | AgentInputSent
    | AgentResized
    | AgentPaused
    | AgentResumed
    | HumanAsked
    | HumanAnswered
    | HumanUnanswered
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
    | FindingsSuppressed
    | OperatorActionRefused
    | IntegrityRecorded
    | RepoTampered
    | TamperingAcknowledged,
    Field(discriminator="type"),
]
EventAdapter: TypeAdapter[Event] = TypeAdapter(Event)
