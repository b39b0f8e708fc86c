"""What a front end reads of a run: its folded state, the runs of a repository, where an
agent's output is, and the run's events as they are appended."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from corral.core.log import LogFollower
from corral.core.log import events as ev
from corral.core.log.state import RunState
from corral.core.operator.errors import NoSuchAgent
from corral.core.operator.results import AgentRuntime, OutputLog
from corral.core.runs.listing import RunSummary
from corral.core.runs.rundir import RunDir

FOLLOW_POLL = 0.05
RECENT_BYTES = 2 << 20
"""How far back before a checkpoint the console reads for its event tail: ~10,000 events, since
the tail keeps 500 lines and nine events in ten are heartbeats it skips."""


def status(rundir: RunDir) -> RunState:
    """The run's state, folded from its checkpoint and the events after it, both verified
    against the log (core/runs/index.py): what `corral status --json` prints."""
    from corral.core.runs.index import run_state

    return run_state(rundir, trust_unchanged=False)


@dataclass
class OpenedRun:
    """A run opened to be watched: its state, a window of its latest events, and a follower
    positioned after the last one (the console's first screen and what it follows)."""

    state: RunState
    follower: LogFollower
    recent: list[ev.Event] = field(default_factory=list)
    """The latest events, in order, enough for an event tail (not the whole log)."""
    first: ev.Event | None = None
    """seq 1 (`run_started`), which says what every agent was started with."""


def open_run(rundir: RunDir) -> OpenedRun:
    """Fold the run through its checkpoint, read the last RECENT_BYTES of events from the end,
    and keep the log open to follow it. Raises LogCorrupted or OSError as a replay would."""
    from corral.core.log.reader import open_log_fd
    from corral.core.runs.index import fold_fd, recent_events

    try:
        fd = open_log_fd(rundir.events)
    except FileNotFoundError:
        return OpenedRun(state=RunState(), follower=LogFollower(rundir.events))
    try:
        folded = fold_fd(fd, rundir)
        recent, first = recent_events(fd, folded, RECENT_BYTES)
    except BaseException:
        os.close(fd)
        raise
    follower = LogFollower.on(rundir.events, fd, folded.follow)
    return OpenedRun(state=folded.state, follower=follower, recent=recent, first=first)


def list_runs(common_dir: Path) -> list[RunSummary]:
    """Every run of the repository, newest first, as `corral runs` lists them."""
    from corral.core.runs.listing import summarize_runs

    return summarize_runs(common_dir)


def agent_runtimes(rundir: RunDir) -> dict[str, AgentRuntime]:
    """Where each agent of the run runs and, sandboxed, its policy, from the plan the run
    keeps (the log holds neither); {} when that plan cannot be read."""
    from corral.core.plan.model import PlanError, load_plan
    from corral.core.plan.sandbox_checks import CONTAINER_RUNTIME, SANDBOXED_RUNTIMES, policy_of
    from corral.core.sandbox.policy import summary

    try:
        plan = load_plan(rundir.plan)
    except (PlanError, OSError):
        return {}
    found: dict[str, AgentRuntime] = {}
    for spec in plan.agents:
        runtime = plan.runtime_of(spec)
        sandboxed = runtime in SANDBOXED_RUNTIMES
        policy = policy_of(spec) if sandboxed else None
        image = (spec.image or plan.defaults.image) if runtime == CONTAINER_RUNTIME else None
        found[spec.id] = AgentRuntime(
            agent=spec.id,
            runtime=runtime,
            sandboxed=sandboxed,
            policy=policy,
            summary=summary(policy, image) if policy is not None else [],
        )
    return found


def cluster_line(rundir: RunDir) -> str | None:
    """The cluster a Ray run's engine last saw (nodes, free slots, how long ago); None when
    the run does not use Ray."""
    from corral.core.ray.cluster import read_summary

    seen = read_summary(rundir.path)
    if seen is None:
        return None
    age = max(0.0, time.time() - seen.at)
    return f"{seen.line} ({age:.0f} s ago)"


def output_log(
    state: RunState, rundir: RunDir, agent: str, attempt: int | None = None
) -> OutputLog:
    """Where `agent`'s output is: of `attempt`, or of its latest attempt."""
    found = state.agents.get(agent)
    if found is None:
        raise NoSuchAgent(
            f"no agent {agent!r} in run {rundir.run_id}; agents: {', '.join(state.agents)}"
        )
    number = attempt or found.attempt
    if number < 1:
        raise NoSuchAgent(f"agent {agent!r} has not started yet")
    return OutputLog(agent, number, rundir.output_log(agent, number))


def follow(
    rundir: RunDir, stopped: Callable[[], bool], *, poll: float = FOLLOW_POLL
) -> Iterator[list[ev.Event]]:
    """The run's events: first the whole log, then each batch appended since (verified against
    the hash chain; an empty batch when nothing came within `poll`), until `stopped()`.
    Raises LogCorrupted or OSError when the log cannot be trusted or read."""
    from corral.core.log import LogFollower

    follower, contents = LogFollower.replay(rundir.events)
    with follower:  # one open file: an idle poll is one fstat
        yield contents.events
        while not stopped():
            yield follower.poll()
            if follower.caught_up:
                time.sleep(poll)
