"""What the console draws: the folded run state plus the few things derived from the same events
(activity per agent, the event tail, the `@` command log), and which parts changed since a screen
last drew them. Everything here is rebuilt from the log; nothing else is kept.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from corral.core.log import events as ev
from corral.core.log.notices import Notice, NoticeWatch
from corral.core.log.state import RunState, apply
from corral.core.operator.describe import command_line, tail_line
from corral.tui.text import inert

ACTIVITY_BUCKET = 5.0
"""Seconds per sparkline cell."""
ACTIVITY_CELLS = 8
TAIL_LINES = 500
COMMAND_LINES = 2000
QUIET_EVENTS = (ev.AgentHeartbeat, ev.LockRenewed, ev.FencedWriteAccepted)
"""Kept out of the event tail: at 100 agents they would drown everything else."""


@dataclass
class TailLine:
    seq: int
    ts: float
    agent: str
    text: str
    kind: str


@dataclass
class RunFeed:
    """A run as the log tells it, and a version number per part for bounded, partial redraws."""

    state: RunState = field(default_factory=RunState)
    version: int = 0
    agent_version: dict[str, int] = field(default_factory=dict)
    locks_version: int = 0
    conflicts_version: int = 0
    run_version: int = 0
    review_version: int = 0
    heartbeat_timeout: dict[str, float] = field(default_factory=dict)
    activity: dict[str, dict[int, int]] = field(default_factory=dict)
    tail: deque[TailLine] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    commands: deque[str] = field(default_factory=lambda: deque(maxlen=COMMAND_LINES))
    agent_events: dict[str, deque[TailLine]] = field(default_factory=dict)
    on_applied: Callable[[list[ev.Event]], None] | None = None
    """Hook for the benchmark: called after each batch is applied."""
    notices: NoticeWatch = field(default_factory=NoticeWatch)
    live_notices: bool = False
    """False while the log is replayed (what already happened is remembered, not news); the
    bridge sets it once the replay is applied."""
    pending_notices: list[Notice] = field(default_factory=list)
    """Notices since the console last took them (`take_notices`)."""

    def apply(self, events: Iterable[ev.Event]) -> None:
        batch = events if isinstance(events, list) else list(events)
        if not batch:
            return
        self.version += 1
        version = self.version
        state = self.state
        notices = self.notices
        quiet = not self.live_notices
        for event in batch:
            apply(state, event)
            self._derive(event, version)
            if type(event) is not ev.AgentHeartbeat:  # never news: skip the rule
                notice = notices.observe(state, event, quiet=quiet)
                if notice is not None:
                    self.pending_notices.append(notice)
        if self.on_applied is not None:
            self.on_applied(batch)

    def restore(
        self, state: RunState, recent: list[ev.Event], first: ev.Event | None = None
    ) -> None:
        """Start from a state folded elsewhere (the run's checkpoint and the events after it)
        and the log's latest events: these fill the tail, activity and command log only (their
        effect is in `state` already), so the first screen never waits for a whole replay."""
        self.version += 1
        version = self.version
        self.state = state
        if isinstance(first, ev.RunStarted):
            self.heartbeat_timeout = {a.id: a.heartbeat_timeout for a in first.agents}
        for event in recent:
            self._derive(event, version)
        for agent_id in state.agents:
            self.agent_version[agent_id] = version
        self.run_version = self.locks_version = version
        self.conflicts_version = self.review_version = version
        self.notices.seed(state)

    def take_notices(self) -> list[Notice]:
        taken, self.pending_notices = self.pending_notices, []
        return taken

    def _derive(self, event: ev.Event, version: int) -> None:
        if type(event) is ev.AgentHeartbeat:  # nine events in ten: the fast path
            self._beat(event, version)
            return
        agent = getattr(event, "agent", None)
        if isinstance(agent, str) and agent in self.state.agents:
            self.agent_version[agent] = version
        match event:
            case ev.RunStarted():
                self.heartbeat_timeout = {a.id: a.heartbeat_timeout for a in event.agents}
                for agent_id in self.state.agents:
                    self.agent_version[agent_id] = version
                self.run_version = version
                self.locks_version = self.conflicts_version = self.review_version = version
            case ev.RunFinished() | ev.EngineResumed() | ev.EngineStopped():
                self.run_version = version
            case (
                ev.LockWaiting()
                | ev.LockAcquired()
                | ev.LockRenewed()
                | ev.LockReleased()
                | ev.LockExpired()
                | ev.LockBroken()
                | ev.LockWaitAbandoned()
            ):
                self.locks_version = version
            case ev.ConflictPredicted() | ev.ConflictCleared() | ev.BranchLeftOut():
                self.conflicts_version = version
            case _:
                pass
        if isinstance(
            event,
            ev.BranchMerged
            | ev.BranchLeftOut
            | ev.VerificationFinished
            | ev.ReportWritten
            | ev.ReportApproved
            | ev.ReportRejected
            | ev.FindingsRejected
            | ev.RunFinished
            | ev.RepoTampered
            | ev.TamperingAcknowledged,
        ):
            self.review_version = version
        if isinstance(event, ev.AgentStarting | ev.AgentFinished | ev.AgentRedriven):
            self.run_version = version  # the header's counts
        if isinstance(event, QUIET_EVENTS):
            return
        if isinstance(event, ev.OperatorActionRefused) and event.caller_run == self.state.run_id:
            agent = event.caller_agent  # one of this run's agents asked: its events show it too
        text = tail_line(event)
        if text:
            line = TailLine(event.seq, event.ts, agent or "", inert(text, limit=300), event.type)
            self.tail.append(line)
            if isinstance(agent, str):
                self.agent_events.setdefault(agent, deque(maxlen=TAIL_LINES)).append(line)
        command = None
        if isinstance(event, ev.AgentStarting) and event.agent in self.state.agents:
            command = self.state.agents[event.agent].command
        said = command_line(event, command)
        if said:
            self.commands.append(f"#{event.seq:<6} {inert(said, limit=400)}")

    def _beat(self, event: ev.AgentHeartbeat, version: int) -> None:
        agent = event.agent
        self.agent_version[agent] = version
        bucket = int(event.ts // ACTIVITY_BUCKET)
        counts = self.activity.get(agent)
        if counts is None:
            counts = self.activity[agent] = {}
        counts[bucket] = counts.get(bucket, 0) + 1
        if len(counts) > ACTIVITY_CELLS * 2:
            for old in sorted(counts)[: len(counts) - ACTIVITY_CELLS]:
                del counts[old]

    def sparkline_counts(self, agent: str, now: float) -> list[int]:
        counts = self.activity.get(agent, {})
        last = int(now // ACTIVITY_BUCKET)
        return [counts.get(bucket, 0) for bucket in range(last - ACTIVITY_CELLS + 1, last + 1)]

    def active_agents(self) -> list[str]:
        return [
            a.id
            for a in self.state.agents.values()
            if a.state in ("starting", "running", "stalled")
        ]
