"""One attempt of one agent: workspace, setup, process, liveness, timeouts, and its end.

Separate limits (docs/reliability.md S1): `start_timeout` covers the workspace and setup commands,
`heartbeat_timeout` the silence of a running agent, `timeout` the whole attempt, and
`kill_grace` the time between SIGTERM and SIGKILL. An agent is alive while it beats, writes
output or uses CPU; each sign of life is logged with the signal it came from.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from corral.core.engine.workspaces import WorkspaceFactory
from corral.core.locks.shared_files import shared_dir
from corral.core.log import events as ev
from corral.core.plan.model import AgentSpec, Plan, env_references, resolve_env
from corral.core.runs.environment import BaseEnvironment
from corral.core.runs.rundir import RunDir, ensure_private_dir
from corral.core.runtime.proctree import (
    CpuSampler,
    Marks,
    Spawned,
    SpawnError,
    spawn,
    terminate_attempt,
    terminate_tree,
    wait_exit,
)
from corral.core.trust.redact import Redactor
from corral.worktrees.errors import GitError
from corral.worktrees.workspace import (
    copy_untracked,
    unlock_workspace,
    workspace_path,
)

Emit = Callable[[ev.EventBase], Awaitable[ev.Event]]
LIVENESS_LOG_INTERVAL = 1.0
"""Output and CPU activity are logged at most this often per attempt (heartbeats always)."""


@dataclass
class AttemptResult:
    outcome: ev.AttemptOutcome
    exit_code: int | None = None
    signal: int | None = None
    reason: str = ""
    requeue: bool = False


@dataclass
class AttemptControl:
    """The engine's handle on a running attempt: requests in, signs of life in."""

    agent: str
    attempt: int
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    kill_reason: str | None = None
    stop_signal: int | None = None
    last_activity: float = field(default_factory=time.monotonic)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    redactor: Redactor = field(default_factory=lambda: Redactor({}))
    """The known secrets of the attempt's environment, set when it is built."""
    process: Spawned | None = None
    """The agent's process, once it is spawned."""

    def request_kill(self, reason: str) -> None:
        self.kill_reason = reason
        self.changed.set()

    def request_stop(self, signum: int) -> None:
        self.stop_signal = signum
        self.changed.set()

    def note_activity(self) -> None:
        self.last_activity = time.monotonic()


@dataclass(frozen=True)
class RunContext:
    """What every attempt of a run shares."""

    run_id: str
    rundir: RunDir
    plan: Plan
    repo_top: Path
    snapshot: str
    worktree_root: Path
    environment: BaseEnvironment = field(default_factory=lambda: BaseEnvironment(os.environ.copy()))
    """What every attempt's environment starts from: the one the run started with
    (core/runs/environment.py), not the one of the shell that resumed the engine."""


def agent_environment(
    ctx: RunContext, spec: AgentSpec, control: AttemptControl, workspace: Path
) -> dict[str, str]:
    """The agent's environment: the engine's as the run started, the plan's `env`, then corral's
    own variables. Secrets (the plan's `from_env` and those of the start) are read now.

    Also gives `control` the redactor of this environment's secrets (core/trust/redact.py)."""
    problem = ctx.environment.problem(ctx.run_id)
    if problem is not None:
        raise ValueError(problem)
    env = {k: v for k, v in ctx.environment.values.items() if not k.startswith("CORRAL_")}
    own, missing = resolve_env(spec.env, os.environ)
    if missing:
        raise ValueError(
            f"{', '.join(missing.values())} (taken by `from_env` in agent {spec.id}'s env) is not "
            "set in the engine's environment; export it and retry the agent"
        )
    env.update(own)
    bin_dir = str(Path(sys.executable).parent)
    path = env.get("PATH", os.defpath)
    if bin_dir not in path.split(os.pathsep):
        env["PATH"] = bin_dir + os.pathsep + path  # so `corral heartbeat` works in any agent
    trace_id = ctx.run_id.encode().hex()[-32:].rjust(32, "0")
    span_id = secrets.token_hex(8)
    env.update(attempt_marks(ctx, control).environment())
    env.update(
        {
            "CORRAL_AGENT_TOKEN": control.token,
            "CORRAL_WORKSPACE": str(workspace),
            "CORRAL_OUTPUT": str(ctx.rundir.output_dir(spec.id, control.attempt)),
            "CORRAL_SOCKET": str(ctx.rundir.socket),
            "CORRAL_SHARED": str(shared_dir(ctx.rundir.path)),
            "TRACEPARENT": f"00-{trace_id}-{span_id}-01",
        }
    )
    control.redactor = environment_redactor(spec, env)
    return env


def attempt_marks(ctx: RunContext, control: AttemptControl) -> Marks:
    """What every process of the attempt carries in its environment, and is found by (T2)."""
    return Marks(run_id=ctx.run_id, agent=control.agent, attempt=control.attempt)


def environment_redactor(spec: AgentSpec, env: dict[str, str] | None = None) -> Redactor:
    """The known secrets of an attempt's environment `env`, its control token included.

    Without `env` (a lost attempt, whose environment is gone): the engine's environment with the
    plan's variables, which is all of it but the token."""
    references = env_references(spec.env)
    if env is None:
        own, _ = resolve_env(spec.env, os.environ)
        return Redactor.for_environment({**os.environ, **own}, references)
    return Redactor.for_environment(env, [*references, "CORRAL_AGENT_TOKEN"])


def redact_outputs(redactor: Redactor, log_path: Path, out_dir: Path) -> None:
    """Known secrets out of the attempt's log and every file it left in its output directory."""
    redactor.redact_file(log_path)
    for directory, _, files in os.walk(out_dir):
        for name in files:
            redactor.redact_file(Path(directory) / name)


def _make_attempt_files(out_dir: Path, log_path: Path) -> None:
    ensure_private_dir(out_dir)
    log_path.touch(mode=0o600)


def describe_exit(code: int) -> tuple[str, int | None]:
    """A person's words for a return code, and the signal if one ended the process."""
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}", -code
    return f"exited with status {code}", None


class Supervisor:
    """Runs attempts; the scheduler decides which and when."""

    def __init__(
        self,
        ctx: RunContext,
        emit: Emit,
        *,
        workspaces: WorkspaceFactory,
        cpu: CpuSampler,
        on_all_started: Callable[[], None] | None = None,
    ) -> None:
        self.ctx = ctx
        self.emit = emit
        self.workspaces = workspaces
        self.cpu = cpu
        self.on_all_started = on_all_started
        """Called whenever no attempt is between its start and its spawn any more."""
        self.starting = 0

    async def run_attempt(self, spec: AgentSpec, control: AttemptControl) -> AttemptResult:
        """Run the attempt to its end; its worktree is unlocked afterwards (kept for the merge)."""
        try:
            return await self._run(spec, control)
        finally:
            try:
                await self._end_processes(control)
            finally:  # also when a process outlived SIGKILL (TerminateError): no retry, but tidy
                await self._tidy(spec, control)

    async def _tidy(self, spec: AgentSpec, control: AttemptControl) -> None:
        """Known secrets out of what the attempt left, and its worktree unlocked."""
        if control.redactor:  # every process of the attempt is gone by now
            await asyncio.to_thread(
                redact_outputs,
                control.redactor,
                self.ctx.rundir.output_log(spec.id, control.attempt),
                self.ctx.rundir.output_dir(spec.id, control.attempt),
            )
        path = workspace_path(self.ctx.worktree_root, self.ctx.run_id, spec.id, control.attempt)
        if path.is_dir():
            with contextlib.suppress(GitError):
                await asyncio.to_thread(unlock_workspace, path)

    async def _end_processes(self, control: AttemptControl) -> None:
        """Whatever ended the attempt, nothing of it runs on (T2): its agent's tree and every
        process that carries its marks (setup commands' children included) are stopped, and the
        stop confirmed, before its end is reported and its leases are released."""
        process = control.process
        await terminate_attempt(
            attempt_marks(self.ctx, control),
            grace=self.ctx.plan.run.kill_grace,
            pid=process.pid if process else None,
            start_time=process.start_time if process else None,
            popen=process.popen if process else None,
        )

    async def _run(self, spec: AgentSpec, control: AttemptControl) -> AttemptResult:
        ctx, n = self.ctx, control.attempt
        path = workspace_path(ctx.worktree_root, ctx.run_id, spec.id, n)
        log_path = ctx.rundir.output_log(spec.id, n)
        out_dir = ctx.rundir.output_dir(spec.id, n)
        started = time.monotonic()
        with self._starting():
            await self.emit(
                ev.AgentStarting(
                    agent=spec.id,
                    attempt=n,
                    workspace=str(path),
                    branch=f"corral/{ctx.run_id}/{spec.id}/{n}",
                    output_dir=str(out_dir),
                    log_path=str(log_path),
                )
            )
            spawned_or_result = await self._start(spec, control, out_dir, log_path)
        if isinstance(spawned_or_result, AttemptResult):
            return spawned_or_result
        spawned = control.process = spawned_or_result
        await self.emit(
            ev.AgentStarted(
                agent=spec.id, attempt=n, pid=spawned.pid, proc_start_time=spawned.start_time
            )
        )
        remaining = spec.timeout - (time.monotonic() - started)
        return await self._watch(spec, control, spawned, log_path, remaining)

    @contextlib.contextmanager
    def _starting(self) -> Iterator[None]:
        self.starting += 1
        try:
            yield
        finally:
            self.starting -= 1
            if self.starting == 0 and self.on_all_started is not None:
                self.on_all_started()

    async def _start(
        self, spec: AgentSpec, control: AttemptControl, out_dir: Path, log_path: Path
    ) -> Spawned | AttemptResult:
        """Workspace, setup commands and the agent's process; a result when it cannot start."""
        n = control.attempt
        try:
            async with asyncio.timeout(spec.start_timeout):
                workspace = await self._prepare(spec, n, out_dir, log_path)
                env = agent_environment(self.ctx, spec, control, workspace)
                for command in spec.setup:
                    result = await self._run_setup(spec, control, command, workspace, env, log_path)
                    if result is not None:
                        return result
        except TimeoutError:
            return AttemptResult(
                "timed_out", reason=f"workspace and setup took over {spec.start_timeout:.0f}s"
            )
        except (OSError, GitError, ValueError) as exc:
            return AttemptResult("failed", reason=f"could not prepare the workspace: {exc}")
        if control.stop_signal is not None:
            return self.stopped(control)
        if control.kill_reason is not None:
            return AttemptResult("killed", reason=control.kill_reason)
        try:
            return spawn(list(spec.command), cwd=workspace, env=env, log_path=log_path)
        except SpawnError as exc:
            return AttemptResult("failed", reason=str(exc))

    async def _prepare(self, spec: AgentSpec, attempt: int, out_dir: Path, log_path: Path) -> Path:
        ctx = self.ctx
        await asyncio.to_thread(_make_attempt_files, out_dir, log_path)
        workspace = await self.workspaces.create(spec.id, attempt)
        if spec.copy_files:
            await asyncio.to_thread(
                copy_untracked, ctx.repo_top, workspace.path, list(spec.copy_files)
            )
        return workspace.path

    async def _run_setup(
        self,
        spec: AgentSpec,
        control: AttemptControl,
        command: list[str],
        workspace: Path,
        env: dict[str, str],
        log_path: Path,
    ) -> AttemptResult | None:
        """Run one setup command to completion; a result means the attempt ends here."""
        with log_path.open("a") as log:
            log.write(f"[corral] setup: {' '.join(command)}\n")
        try:
            proc = spawn(list(command), cwd=workspace, env=env, log_path=log_path)
        except SpawnError as exc:
            return AttemptResult("failed", reason=f"setup: {exc}")
        try:
            while True:
                code = await wait_exit(proc, 0.25)
                if code is not None:
                    break
                if control.stop_signal is not None or control.kill_reason is not None:
                    await terminate_tree(
                        proc.pid,
                        proc.start_time,
                        grace=self.ctx.plan.run.kill_grace,
                        popen=proc.popen,
                    )
                    return (
                        self.stopped(control)
                        if control.stop_signal
                        else AttemptResult("killed", reason=control.kill_reason or "killed")
                    )
        except BaseException:
            await terminate_tree(
                proc.pid, proc.start_time, grace=self.ctx.plan.run.kill_grace, popen=proc.popen
            )
            raise
        if code != 0:
            words, _ = describe_exit(code)
            return AttemptResult(
                "failed", exit_code=code, reason=f"setup command {command[0]!r} {words}"
            )
        return None

    async def _watch(
        self,
        spec: AgentSpec,
        control: AttemptControl,
        spawned: Spawned,
        log_path: Path,
        time_left: float,
    ) -> AttemptResult:
        """Wait for the agent to end, watching liveness and the limits; say why the attempt ends.

        Stopping what runs is left to `run_attempt`, which does it however the attempt ended."""
        n = control.attempt
        deadline = time.monotonic() + max(time_left, 0.0)
        tick = max(0.05, min(0.5, spec.heartbeat_timeout / 4, spec.timeout / 4))
        exit_task = asyncio.ensure_future(wait_exit(spawned, None))
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
                    code = exit_task.result()
                    assert code is not None
                    if code == 0:
                        return AttemptResult("succeeded", exit_code=0)
                    words, signum = describe_exit(code)
                    return AttemptResult(
                        "failed", exit_code=code if code >= 0 else None, signal=signum, reason=words
                    )
                if control.stop_signal is not None:
                    return self.stopped(control)
                if control.kill_reason is not None:
                    return AttemptResult("killed", reason=control.kill_reason)
                now = time.monotonic()
                if now >= deadline:
                    return AttemptResult(
                        "timed_out", reason=f"ran past its timeout of {spec.timeout:.0f}s"
                    )
                source: ev.HeartbeatSource | None = None
                try:
                    size = log_path.stat().st_size  # noqa: ASYNC240 - one cached stat per tick
                except OSError:
                    size = output_size
                if size != output_size:
                    output_size = size
                    source = "output"
                silent = now - control.last_activity
                if source is None and silent > spec.heartbeat_timeout / 3:
                    cpu = self.cpu.cpu_seconds(spawned.pid, spawned.start_time)
                    if cpu is not None and cpu_seen is not None and cpu > cpu_seen + 0.01:
                        source = "cpu"
                    cpu_seen = cpu
                if source is not None:
                    control.note_activity()
                    if stalled or now - last_logged >= LIVENESS_LOG_INTERVAL:
                        last_logged = now
                        stalled = False
                        await self.emit(ev.AgentHeartbeat(agent=spec.id, attempt=n, source=source))
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
                    await self.emit(
                        ev.AgentStalled(agent=spec.id, attempt=n, silent_for=round(silent, 3))
                    )
        finally:
            exit_task.cancel()

    @staticmethod
    def stopped(control: AttemptControl) -> AttemptResult:
        name = signal.Signals(control.stop_signal).name if control.stop_signal else "request"
        return AttemptResult("killed", reason=f"the engine was stopped ({name})", requeue=True)

    async def agent_beat(
        self, control: AttemptControl, progress: float | None, message: str | None
    ) -> ev.Event:
        """An explicit heartbeat from the agent: durable before the agent hears back."""
        control.note_activity()
        if message is not None:
            message = control.redactor.redact(message)
        return await self.emit(
            ev.AgentHeartbeat(
                agent=control.agent,
                attempt=control.attempt,
                source="beat",
                progress=progress,
                message=message,
            )
        )
