"""Start or resume a run: the run directory, the single-engine guard, the log, the socket.

`corral run` and `corral run --resume` both end up in `drive()`, so a resumed run is driven
by exactly the code that drove it before the crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import filelock

from corral.core import events as ev
from corral.core.atomic import write_atomic
from corral.core.control import serve
from corral.core.engine import Engine, engine_info
from corral.core.eventlog import EventWriter, LogFailed
from corral.core.plan import PlanError, load_plan
from corral.core.preflight import Preflight
from corral.core.rundir import RunDir, runs_root
from corral.core.state import RunState, fold
from corral.core.supervisor import RunContext
from corral.worktrees.workspace import default_root

EXIT_PASSED = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_ENGINE_ERROR = 3


class EngineBusy(Exception):
    """Another engine already owns the run."""

    def __init__(self, run_id: str) -> None:
        super().__init__(
            f"run {run_id} already has a live engine; follow it with `corral status {run_id}`"
        )


class View(Protocol):
    """What the engine shows while it runs (a rich live table, plain lines, or nothing)."""

    def attach(self, engine: Engine) -> None: ...
    def hangup(self) -> None: ...
    async def close(self) -> None: ...


@dataclass
class Outcome:
    run_id: str
    state: RunState
    exit_code: int
    message: str = ""


def _lock(rundir: RunDir) -> filelock.BaseFileLock:
    lock = filelock.FileLock(rundir.engine_lock, timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise EngineBusy(rundir.run_id) from None
    return lock


def engine_is_live(rundir: RunDir) -> bool:
    """True while some engine holds the run's lock."""
    lock = filelock.FileLock(rundir.engine_lock, timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        return True
    lock.release()
    return False


def _summaries(pre: Preflight) -> list[ev.AgentSummary]:
    return [
        ev.AgentSummary(
            id=spec.id,
            kind=spec.kind,
            command=list(spec.command),
            depends_on=list(spec.depends_on),
            retries=spec.retries,
            timeout=spec.timeout,
            heartbeat_timeout=spec.heartbeat_timeout,
        )
        for spec in pre.plan.agents
    ]


async def start_run(pre: Preflight, plan_bytes: bytes, run_id: str, view: View | None) -> Outcome:
    """A new run of a checked plan."""
    rundir = RunDir(runs_root(pre.common_dir) / run_id)
    rundir.create()
    lock = _lock(rundir)
    try:
        write_atomic(rundir.plan, plan_bytes)
        writer, _ = await EventWriter.open(rundir.events)
        worktree_root = default_root(pre.repo_top)
        started = ev.RunStarted(
            run_id=run_id,
            name=pre.plan.run.name or run_id,
            repo=str(pre.repo_top),
            base_ref=pre.base_ref,
            snapshot=pre.snapshot,
            plan_sha256=hashlib.sha256(plan_bytes).hexdigest(),
            agents=_summaries(pre),
            max_parallel=pre.plan.run.max_parallel,
            required_successes=pre.plan.required_successes(),
            worktree_root=str(worktree_root),
            engine=engine_info(),
        )
        queued = [ev.AgentQueued(agent=spec.id, attempt=1) for spec in pre.plan.agents]
        state = RunState()
        ctx = RunContext(
            run_id=run_id,
            rundir=rundir,
            plan=pre.plan,
            repo_top=pre.repo_top,
            snapshot=pre.snapshot,
            worktree_root=worktree_root,
        )
        engine = Engine(ctx, writer, state)
        await writer.append_many([started, *queued])
        return await drive(engine, view)
    finally:
        lock.release()


async def resume_run(
    rundir: RunDir, view: View | None, redrive: Sequence[str] = (), by: str = ""
) -> Outcome:
    """Carry on a run whose engine died or was stopped (and optionally retry some agents)."""
    lock = _lock(rundir)
    try:
        writer, contents = await EventWriter.open(rundir.events)
        state = fold(contents.events)
        if not state.run_id:
            await writer.close()
            return Outcome(
                rundir.run_id, state, EXIT_ENGINE_ERROR, "the run's log has no run_started event"
            )
        if state.status == "finished" and not redrive:
            await writer.close()
            code = EXIT_PASSED if state.verdict == "passed" else EXIT_FAILED
            return Outcome(
                rundir.run_id,
                state,
                code,
                f"run {state.run_id} had already finished ({state.verdict})",
            )
        try:
            plan = load_plan(rundir.plan)
        except PlanError as exc:
            await writer.close()
            return Outcome(rundir.run_id, state, EXIT_INVALID, str(exc))
        unknown = [agent for agent in redrive if agent not in state.agents]
        if unknown:
            await writer.close()
            return Outcome(
                rundir.run_id, state, EXIT_INVALID, f"no agent {', '.join(unknown)} in this run"
            )
        ctx = RunContext(
            run_id=state.run_id,
            rundir=rundir,
            plan=plan,
            repo_top=Path(state.repo),
            snapshot=state.snapshot,
            worktree_root=Path(state.worktree_root),
        )
        engine = Engine(ctx, writer, state)
        return await drive(engine, view, recover=True, redrive=redrive, by=by)
    finally:
        lock.release()


async def drive(
    engine: Engine,
    view: View | None,
    *,
    recover: bool = False,
    redrive: Sequence[str] = (),
    by: str = "",
) -> Outcome:
    """Serve the socket, handle signals, run the engine to its end, and close the log."""
    loop = asyncio.get_running_loop()
    server = await serve(engine.ctx.rundir.socket, engine.handle)
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, engine.stop, signum)
    if view is not None:
        view.attach(engine)
        loop.add_signal_handler(signal.SIGHUP, view.hangup)
    try:
        if recover:
            await engine.recover(redrive, by)
        state = await engine.run()
    except LogFailed as exc:
        engine.failure = exc
        state = engine.state
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.remove_signal_handler(signum)
        server.close()
        # a socket left behind (its directory became read-only) is cleared by the next engine
        with contextlib.suppress(OSError):
            engine.ctx.rundir.socket.unlink()
        if view is not None:
            await view.close()
        with contextlib.suppress(LogFailed):
            await engine.log.close()
    run_id = engine.ctx.run_id
    if engine.failure is not None and not isinstance(engine.failure, LogFailed):
        return Outcome(
            run_id,
            state,
            EXIT_ENGINE_ERROR,
            f"the engine stopped on an error ({engine.failure}); nothing is lost, and once that "
            f"is fixed (a run directory made writable again) `corral run --resume {run_id}` "
            "carries on",
        )
    if engine.failure is not None:
        return Outcome(
            run_id,
            state,
            EXIT_ENGINE_ERROR,
            f"the event log failed ({engine.failure}); the run was stopped and nothing further was recorded",
        )
    if engine.stop_signal is not None:
        name = signal.Signals(engine.stop_signal).name
        return Outcome(
            run_id,
            state,
            128 + engine.stop_signal,
            f"stopped by {name}; resume with `corral run --resume {run_id}`",
        )
    code = EXIT_PASSED if state.verdict == "passed" else EXIT_FAILED
    return Outcome(run_id, state, code, state.verdict_reason)
