"""The run and its engine: started, resumed, stopped, finished."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from corral.core.log.event_types.base import LOG_FORMAT, EventBase


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
    input_format: str | None = None
    """How it takes a person's messages while it runs (`input_format`), or None: it does not."""
    tty: bool = False
    """It runs on a terminal the engine holds (`tty`): its log is a screen to replay, and it
    takes keystrokes (`send_keys`) and a size (`resize`)."""
    tty_size: tuple[int, int] | None = None
    """Its terminal's size as it starts, (columns, rows), when `tty`: a screen to replay the
    log on starts this size (each resize since is an `agent_resized`)."""


class RerunOrigin(BaseModel):
    """Where a re-run came from: agents left out of `run`, redone on its integration commit."""

    run: str
    """The run whose left-out agents this run redoes; approve it first, then this one."""
    agents: list[str]
    integration_commit: str
    """That run's integration commit: this run's snapshot, what its approval would land."""


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
    rerun_of: RerunOrigin | None = None
    """Set on a run started by `corral rerun` (core/runs/rerun.py); older logs lack it."""
    log_format: int = LOG_FORMAT
    """The log's format version (event_types/base.py LOG_FORMAT); absent in the first logs,
    which are version 1. A reader refuses a log newer than it knows (log/reader.py)."""


class EngineResumed(EventBase):
    type: Literal["engine_resumed"] = "engine_resumed"
    engine: EngineInfo
    repaired_tail: bool = False
    """True when a torn last line was quarantined before this engine appended."""


class EngineStopped(EventBase):
    type: Literal["engine_stopped"] = "engine_stopped"
    reason: str
    signal: int | None = None
    by: str | None = None
    """The person who stopped the run (`corral stop`, the console); None for a signal, a
    failure or the end of the run."""


class RunFinished(EventBase):
    type: Literal["run_finished"] = "run_finished"
    verdict: Literal["passed", "failed"]
    succeeded: int
    required: int
    reason: str
