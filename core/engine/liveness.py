"""Watching a running agent: its end, the limits, and its signs of life (docs/reliability.md S1).

An agent is alive while it beats (over the socket), writes output or uses CPU; each sign is
logged with the signal it came from, at most every LIVENESS_LOG_INTERVAL. It is asked of the
execution (core/runtime/base.py `Execution`), never of /proc, so any runtime is watched alike.
An agent with a `stream` adapter has its new output read on the same tick that saw it grow
(core/engine/stream_watch.py): its `agent_activity` events are its signs of life then, and
its budgets are checked on every tick.
"""

from __future__ import annotations

import asyncio
import signal
import time

from corral.core.engine.context import AttemptControl, AttemptResult, Emit
from corral.core.engine.stream_watch import StreamWatch
from corral.core.log import events as ev
from corral.core.plan.model import AgentSpec
from corral.core.runtime.base import Ended, Execution

LIVENESS_LOG_INTERVAL = 1.0
"""Output and CPU activity are logged at most this often per attempt (heartbeats always)."""


def describe_end(ended: Ended) -> tuple[str, int | None]:
    """A person's words for how an execution ended, and the signal if one ended it."""
    if ended.how == "lost":
        return f"lost: {ended.reason}" if ended.reason else "lost", None
    if ended.how == "killed" or (ended.code is not None and ended.code < 0):
        signum = ended.signal if ended.signal is not None else -(ended.code or 0)
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        return f"killed by {name}", signum
    return f"exited with status {ended.code}", None


def ended_result(ended: Ended) -> AttemptResult:
    """The attempt's result from how its agent ended by itself."""
    if ended.how == "exited" and ended.code == 0:
        return AttemptResult("succeeded", exit_code=0)
    words, signum = describe_end(ended)
    if ended.how == "lost":
        return AttemptResult("lost", reason=words)
    code = ended.code if ended.how == "exited" else None
    return AttemptResult("failed", exit_code=code, signal=signum, reason=words)


def stopped(control: AttemptControl) -> AttemptResult:
    """The engine stopped: the attempt is given again, not counted (requeue)."""
    name = signal.Signals(control.stop_signal).name if control.stop_signal else "request"
    reason = control.stop_reason or f"the engine was stopped ({name})"
    return AttemptResult("killed", reason=reason, requeue=True)


def interrupted(control: AttemptControl) -> AttemptResult:
    if control.stop_signal is not None:
        return stopped(control)
    return AttemptResult("killed", reason=control.kill_reason or "killed")


async def watch(
    spec: AgentSpec,
    control: AttemptControl,
    execution: Execution,
    time_left: float,
    emit: Emit,
    stream: StreamWatch | None = None,
) -> AttemptResult:
    """Wait for the agent to end, watching liveness and the limits; say why the attempt ends.

    Stopping what runs is left to the supervisor, which does it however the attempt ended."""
    result = await _watch(spec, control, execution, time_left, emit, stream)
    if stream is not None:
        stream.finish()  # what it wrote last: its result, its final totals
        event = stream.due(time.monotonic(), force=True)
        if event is not None:
            await emit(event)
    return result


async def _watch(
    spec: AgentSpec,
    control: AttemptControl,
    execution: Execution,
    time_left: float,
    emit: Emit,
    stream: StreamWatch | None,
) -> AttemptResult:
    n = control.attempt
    deadline = time.monotonic() + max(time_left, 0.0)
    tick = max(0.05, min(0.5, spec.heartbeat_timeout / 4, spec.timeout / 4))
    exit_task = asyncio.ensure_future(execution.wait(None))
    control.note_activity()
    output_size = 0
    last_logged = 0.0
    cpu_seen: float | None = None
    stalled = False
    try:
        while True:
            control.changed.clear()
            change_task = asyncio.ensure_future(control.changed.wait())
            await asyncio.wait(
                {exit_task, change_task}, timeout=tick, return_when=asyncio.FIRST_COMPLETED
            )
            change_task.cancel()
            if exit_task.done():
                ended = exit_task.result()  # an exception here is the runtime's bug: a fault
                assert ended is not None
                return ended_result(ended)
            if control.interrupted:
                return interrupted(control)
            now = time.monotonic()
            if control.paused:  # frozen by a person: neither timeout runs meanwhile
                control.note_activity()
                stalled = False
                continue
            if now - control.paused_for(now) >= deadline:
                return AttemptResult(
                    "timed_out", reason=f"ran past its timeout of {spec.timeout:.0f}s"
                )
            source: ev.HeartbeatSource | None = None
            size = execution.output_size()
            if size is not None and size != output_size:
                output_size = size
                source = "output"
            if control.question is not None:  # waiting for a person: silence is expected
                control.note_activity()
            if stream is not None:
                if source == "output" or stream.behind:
                    stream.read()
                activity = stream.due(now)
                if activity is not None:
                    last_logged = now  # the activity is the sign of life of this tick
                    stalled = False
                    control.note_activity()
                    await emit(activity)
                    if activity.result is not None and execution.input is not None:
                        # its turn is over: end-of-file, so a CLI that reads messages exits
                        execution.input.close()
                over = stream.over_budget()
                if over is not None:
                    return AttemptResult("budget_exceeded", reason=over)
            silent = now - control.last_activity
            if source is None and silent > spec.heartbeat_timeout / 3:
                cpu = execution.cpu_seconds()
                if cpu is not None and cpu_seen is not None and cpu > cpu_seen + 0.01:
                    source = "cpu"
                cpu_seen = cpu
            if source is not None:
                control.note_activity()
                if stalled or now - last_logged >= LIVENESS_LOG_INTERVAL:
                    last_logged = now
                    stalled = False
                    await emit(ev.AgentHeartbeat(agent=spec.id, attempt=n, source=source))
                continue
            if silent <= spec.heartbeat_timeout / 2:
                stalled = False  # an explicit heartbeat arrived in between
            elif silent > spec.heartbeat_timeout:
                return AttemptResult(
                    "killed",
                    reason=f"hung: no heartbeat, output or CPU use for {silent:.0f}s "
                    f"(heartbeat_timeout {spec.heartbeat_timeout:.0f}s)",
                )
            elif not stalled:
                stalled = True
                await emit(ev.AgentStalled(agent=spec.id, attempt=n, silent_for=round(silent, 3)))
    finally:
        exit_task.cancel()
        if exit_task.done() and not exit_task.cancelled():
            exit_task.exception()  # retrieved: a fault is raised above, not warned about here
