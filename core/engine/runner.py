"""Start or resume a run: the run directory, the single-engine guard, the log, the socket.

`corral run` and `corral run --resume` both end up in `drive()`, so a resumed run is driven
by exactly the code that drove it before the crash.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import filelock

from corral.core.atomic import write_atomic
from corral.core.control.server import serve
from corral.core.engine.context import AttemptFault, RunContext
from corral.core.engine.scheduler import Engine, engine_info
from corral.core.errors import CorralError, InputError
from corral.core.log import EventWriter, FollowState, LogFailed
from corral.core.log import events as ev
from corral.core.log.state import RunState
from corral.core.plan.model import PlanError, load_plan
from corral.core.plan.preflight import Preflight
from corral.core.presets.frozen import freeze, thaw
from corral.core.runs import index
from corral.core.runs.engine_lock import engine_is_live
from corral.core.runs.environment import (
    EnvironmentRecordError,
    base_environment,
    read_record,
    record,
    write_record,
)
from corral.core.runs.rerun import Rerun
from corral.core.runs.rundir import RunDir, runs_root
from corral.core.runtime.registry import UnknownRuntime
from corral.core.trust.integrity import record as record_integrity
from corral.worktrees.workspace import default_root

EXIT_PASSED = 0
EXIT_FAILED = 1
EXIT_INVALID = 2
EXIT_ENGINE_ERROR = 3


class EngineBusy(CorralError):
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


class BackgroundStartFailed(CorralError):
    """An engine started in the background exited at once or never answered; says where to look."""


def start_in_background(
    rundir: RunDir, command: Sequence[str], *, repo: Path | None = None, wait: float = 30.0
) -> int:
    """`corral [--repo REPO] COMMAND` in its own session, its output in the run's engine.log;
    returns the engine's pid once it answers on the run's socket."""
    from corral.core.agent.client import ControlError, request

    rundir.create()
    argv = [sys.executable, "-m", "corral.core.cli"]
    if repo is not None:
        argv += ["--repo", str(repo)]
    argv += command
    with open(rundir.engine_log, "ab") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    # reaped as soon as it ends: a long-lived caller (the console) would otherwise keep a
    # zombie, which still looks like a live engine to anyone checking its pid
    threading.Thread(target=proc.wait, name=f"reap-engine-{proc.pid}", daemon=True).start()
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            if engine_is_live(rundir):  # another engine took the run first
                raise BackgroundStartFailed(str(EngineBusy(rundir.run_id)))
            raise BackgroundStartFailed(
                f"the engine exited at once (status {proc.returncode}); see {rundir.engine_log}"
            )
        try:
            # only the engine started here counts: a live one answers too, then ours refuses
            if request(str(rundir.socket), {"op": "ping"}, timeout=1).get("pid") == proc.pid:
                return proc.pid
        except ControlError:
            pass
        time.sleep(0.05)
    raise BackgroundStartFailed(
        f"the engine did not answer within {wait:.0f}s; see {rundir.engine_log}"
    )


@dataclass(frozen=True)
class Retried:
    """What a retry did: the live engine queued `attempt`, or an engine was resumed for it."""

    agent: str
    attempt: int | None = None
    resumed_pid: int | None = None


CLOSING_WAIT = 10.0
"""How long a retry waits for an engine that is closing (socket gone, lock still held)."""


def retry_agent(rundir: RunDir, agent: str, by: str) -> Retried:
    """Give `agent` another attempt: the one rule for `corral retry` and the console.

    A live engine is asked over the socket. A run whose engine is gone (finished, stopped or
    crashed) is resumed in the background with the retry, like `corral run --resume RUN
    --retry AGENT --detach`; its agents get the environment the run started with
    (core/runs/environment.py), whoever resumes it. An engine caught closing (its socket removed,
    its lock not yet released) is waited for, then resumed.
    """
    from corral.core.agent.client import Unreachable, request
    from corral.core.trust.authority import OperatorRefused, refuse_operator

    payload = {"op": "retry", "agent": agent, "by": by}
    refused = refuse_operator("retry", f"agent {agent}", rundir, request=payload)
    if refused is not None:
        raise OperatorRefused(refused)
    deadline = time.monotonic() + CLOSING_WAIT
    while True:
        if not engine_is_live(rundir):
            command = ["run", "--resume", rundir.run_id, "--quiet", f"--retry={agent}"]
            # the run's own common dir: the caller's working directory may be anywhere
            pid = start_in_background(rundir, command, repo=rundir.path.parent.parent.parent)
            return Retried(agent, resumed_pid=pid)
        try:
            data = request(str(rundir.socket), payload)
        except Unreachable:
            if rundir.socket.exists() or time.monotonic() > deadline:
                raise  # an engine that may have the request: never ask a second one
            time.sleep(0.05)
            continue
        attempt = data.get("attempt")
        return Retried(agent, attempt=attempt if isinstance(attempt, int) else None)


def _summaries(pre: Preflight) -> list[ev.AgentSummary]:
    return [
        ev.AgentSummary(
            id=spec.id,
            kind=spec.kind,
            command=spec.argv,
            depends_on=list(spec.depends_on),
            retries=spec.retries,
            timeout=spec.timeout,
            heartbeat_timeout=spec.heartbeat_timeout,
            input_format=spec.input_format,
            tty=spec.tty,
            tty_size=spec.tty_size if spec.tty else None,
        )
        for spec in pre.plan.agents
    ]


async def start_run(
    pre: Preflight,
    plan_bytes: bytes,
    run_id: str,
    view: View | None,
    rerun_of: ev.RerunOrigin | None = None,
) -> Outcome:
    """A new run of a checked plan (`rerun_of`: of agents an ended run left out)."""
    rundir = RunDir(runs_root(pre.common_dir) / run_id)
    rundir.create()
    lock = _lock(rundir)
    try:
        write_atomic(rundir.plan, plan_bytes)
        freeze(rundir.presets, pre.plan, list(pre.presets))
        recorded = record(os.environ, pre.plan)
        write_record(rundir.environment, recorded)
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
            rerun_of=rerun_of,
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
            environment=base_environment(recorded, os.environ),
            presets={preset.name: preset for preset in pre.presets},
        )
        engine = Engine(ctx, writer, state)
        # before any agent starts: what they must not touch, as it was (docs/reliability.md T3)
        baseline = await asyncio.to_thread(record_integrity, pre.repo_top, pre.common_dir, rundir)
        await writer.append_many([started, baseline, *queued])
        return await drive(engine, view)
    finally:
        lock.release()


async def start_rerun(rerun: Rerun, run_id: str, view: View | None) -> Outcome:
    """A new run of the agents an ended run left out, on its integration commit
    (core/runs/rerun.py): its frozen plan narrowed, not looked up again."""
    from corral.worktrees.git import git_common_dir

    pre = Preflight(
        plan=rerun.plan,
        repo_top=rerun.repo,
        common_dir=git_common_dir(rerun.repo),
        base_ref=rerun.base_ref,
        snapshot=rerun.origin.integration_commit,
        presets=rerun.presets,
    )
    return await start_run(pre, rerun.plan_bytes, run_id, view, rerun_of=rerun.origin)


async def resume_run(
    rundir: RunDir, view: View | None, redrive: Sequence[str] = (), by: str = ""
) -> Outcome:
    """Carry on a run whose engine died or was stopped (and optionally retry some agents)."""
    lock = _lock(rundir)
    try:
        # from the run's checkpoint (verified against the log) and the events after it
        folds: list[index.Folded] = []
        writer, _ = await EventWriter.open(rundir.events, index.log_reader(rundir, folds))
        # (a log the writer had to create is empty: its reader never ran)
        folded = folds[0] if folds else index.Folded(state=RunState(), follow=FollowState())
        state = folded.state
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
            plan, catalog = thaw(rundir.presets, load_plan(rundir.plan))
            # a run from before the record: its agents get the resuming environment, as then
            recorded = read_record(rundir.environment) or record(os.environ, plan)
        except (PlanError, EnvironmentRecordError) as exc:
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
            environment=base_environment(recorded, os.environ),
            presets={name: entry.preset for name, entry in catalog.entries.items()},
        )
        try:
            engine = Engine(ctx, writer, state)
        # the run's runtime was uninstalled since it started, or its cluster does not answer
        except (UnknownRuntime, InputError) as exc:
            await writer.close()
            return Outcome(rundir.run_id, state, EXIT_INVALID, str(exc))
        return await drive(
            engine, view, recover=True, redrive=redrive, by=by, started=folded.started
        )
    finally:
        lock.release()


class Checkpointer:
    """Keeps the run's checkpoint (core/runs/index.py) near the log's end: refreshed in a worker
    thread each CHECKPOINT_EVERY events and once more when the engine stops. It folds from the
    durable log itself, never from the engine's memory, so it holds only verified bytes."""

    def __init__(self, rundir: RunDir, seq: int) -> None:
        self.rundir = rundir
        self.seq = seq
        self.task: asyncio.Task[None] | None = None

    def on_event(self, event: ev.Event) -> None:
        if event.seq - self.seq < index.CHECKPOINT_EVERY or self.task is not None:
            return
        self.seq = event.seq
        self.task = asyncio.get_running_loop().create_task(self._refresh())

    async def _refresh(self) -> None:
        try:
            await asyncio.to_thread(index.refresh, self.rundir)
        except (CorralError, OSError):
            pass  # a log that no longer verifies: the engine's own append path reports it
        finally:
            self.task = None

    async def close(self) -> None:
        if self.task is not None:
            await self.task
        with contextlib.suppress(CorralError, OSError):
            await asyncio.to_thread(index.refresh, self.rundir)


async def drive(
    engine: Engine,
    view: View | None,
    *,
    recover: bool = False,
    redrive: Sequence[str] = (),
    by: str = "",
    started: Mapping[tuple[str, int], ev.AgentStarted] | None = None,
) -> Outcome:
    """Serve the socket, handle signals, run the engine to its end, and close the log."""
    loop = asyncio.get_running_loop()
    server = await serve(engine.ctx.rundir.socket, engine.handle, engine.refuse_agents)
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, engine.stop, signum)
    if view is not None:
        view.attach(engine)
        loop.add_signal_handler(signal.SIGHUP, view.hangup)
    checkpoints = Checkpointer(engine.ctx.rundir, engine.log.last_seq)
    engine.log.add_listener(checkpoints.on_event)
    try:
        if recover:
            await engine.recover(redrive, by, started)
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
        await checkpoints.close()
    run_id = engine.ctx.run_id
    if isinstance(engine.failure, AttemptFault):
        return Outcome(
            run_id,
            state,
            EXIT_ENGINE_ERROR,
            f"corral itself failed ({engine.failure}); the engine stopped every agent and logged "
            f"the traceback (engine_stopped). This is a bug in corral: please report it. "
            f"`corral run --resume {run_id}` carries on",
        )
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
    if engine.stopped_by is not None:
        return Outcome(
            run_id,
            state,
            128 + signal.SIGTERM,  # as if SIGTERM had stopped it: the same resume follows
            f"stopped by {engine.stopped_by[0]}; resume with `corral run --resume {run_id}`",
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
