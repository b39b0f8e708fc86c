"""`local`: attempts as process trees in git worktrees on the engine's host (today's behaviour).

Placement is a worktree of the snapshot (made in batches, core/runtime/workspaces.py); the agent
sees host paths as they are. A command runs in its own session (core/runtime/proctree.py), its
output appended straight to the host log, marked with its attempt (T2), identified by pid and
kernel start time (S2). Stopping an attempt stops its tree and every marked process, confirmed
(core/runtime/kill.py `terminate_attempt`); after a crash the same sweep finds what is left.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from pathlib import Path

from corral.core.runs.rundir import RunDir
from corral.core.runtime.agent_input import PipeInput
from corral.core.runtime.base import (
    AttemptRef,
    AttemptRequest,
    CollectFailed,
    Ended,
    Execution,
    Identity,
    Placement,
    PlacementFailed,
    RuntimeSetup,
    StartFailed,
    Stopped,
)
from corral.core.runtime.kill import POLL_FIRST, POLL_MAX, TerminateResult
from corral.core.runtime.proctree import (
    CpuSampler,
    Marks,
    Spawned,
    SpawnError,
    is_same_process,
    pause_tree,
    resume_tree,
    spawn,
    terminate_attempt,
    terminate_tree,
    wait_exit,
)
from corral.core.runtime.pty_io import PtyInput
from corral.core.runtime.workspaces import WorkspaceFactory
from corral.worktrees.errors import GitError
from corral.worktrees.workspace import (
    copy_untracked,
    unlock_workspace,
    workspace_path,
)

WORKSPACE_PARALLELISM = 2
"""docs/performance.md: worktree checkouts scale to two at a time on two cores, not further."""


class LocalIdentity(Identity):
    """A process on this host: its pid and the kernel's start time, so a reused pid is not it."""

    pid: int
    start_time: float


def _marks(ref: AttemptRef) -> Marks:
    return Marks(run_id=ref.run_id, agent=ref.agent, attempt=ref.attempt)


def _stopped(result: TerminateResult) -> Stopped:
    return Stopped(stopped=len(result.signalled), forced=len(result.forced))


class LocalExecution:
    """A process tree started here (with its Popen), or found again after a crash (without)."""

    def __init__(
        self,
        identity: LocalIdentity,
        log_path: Path,
        cpu: CpuSampler,
        spawned: Spawned | None = None,
    ) -> None:
        self._identity = identity
        self.log_path = log_path
        self.cpu = cpu
        self.spawned = spawned
        self._ended: Ended | None = None
        self._input: PipeInput | PtyInput | None = None
        if spawned is not None and spawned.pty_fd is not None:
            self._input = PtyInput(spawned.pty_fd, log_path)
        elif spawned is not None and spawned.stdin_fd is not None:
            self._input = PipeInput(spawned.stdin_fd)

    @property
    def identity(self) -> LocalIdentity:
        return self._identity

    @property
    def input(self) -> PipeInput | PtyInput | None:
        return self._input

    async def wait(self, timeout: float | None) -> Ended | None:  # noqa: ASYNC109
        if self._ended is not None:
            return self._ended
        if self.spawned is None:
            return await self._wait_unowned(timeout)
        code = await wait_exit(self.spawned, timeout)
        if code is None:
            return None
        if self._input is not None:
            self._input.abandon()
        self._ended = (
            Ended("killed", signal=-code, code=code) if code < 0 else Ended("exited", code=code)
        )
        return self._ended

    async def _wait_unowned(self, timeout: float | None) -> Ended | None:  # noqa: ASYNC109
        """Not our child (found after a crash): its status is not ours to read, only its end."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = POLL_FIRST
        while is_same_process(self._identity.pid, self._identity.start_time):
            if deadline is not None and time.monotonic() >= deadline:
                return None
            await asyncio.sleep(delay)
            delay = min(delay * 1.5, POLL_MAX)
        self._ended = Ended("lost", reason="it ended while no engine watched it")
        return self._ended

    async def terminate(self, grace: float) -> Stopped:
        result = await terminate_tree(
            self._identity.pid,
            self._identity.start_time,
            grace=grace,
            popen=self.spawned.popen if self.spawned else None,
        )
        return _stopped(result)

    async def pause(self) -> int:
        """SIGSTOP its whole tree (core/runtime/base.py `Pausable`)."""
        return await asyncio.to_thread(pause_tree, self._identity.pid, self._identity.start_time)

    async def resume(self) -> int:
        return await asyncio.to_thread(resume_tree, self._identity.pid, self._identity.start_time)

    def cpu_seconds(self) -> float | None:
        return self.cpu.cpu_seconds(self._identity.pid, self._identity.start_time)

    def output_size(self) -> int | None:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return None


class LocalRuntime:
    """Today's runtime: a worktree and a process tree on the engine's host."""

    name = "local"

    def __init__(self, setup: RuntimeSetup) -> None:
        self.setup = setup
        self.workspaces = WorkspaceFactory(
            setup.repo_top,
            setup.worktree_root,
            setup.run_id,
            setup.snapshot,
            WORKSPACE_PARALLELISM,
        )
        self.cpu = CpuSampler()

    def place(self, request: AttemptRequest) -> Placement:
        ref = request.ref
        path = workspace_path(self.setup.worktree_root, ref.run_id, ref.agent, ref.attempt)
        env = {**request.base_env, **request.plan_env}
        bin_dir = str(Path(sys.executable).parent)
        search = env.get("PATH", os.defpath)
        if bin_dir not in search.split(os.pathsep):
            env["PATH"] = bin_dir + os.pathsep + search  # so `corral heartbeat` works in any agent
        env.update(request.corral_env)
        env.update(
            {
                "CORRAL_WORKSPACE": str(path),
                "CORRAL_OUTPUT": str(request.output_dir),
                "CORRAL_SOCKET": str(request.socket),
                "CORRAL_SHARED": str(request.shared_dir),
            }
        )
        return Placement(
            ref=ref,
            runtime=self.name,
            branch=f"corral/{ref.run_id}/{ref.agent}/{ref.attempt}",
            host_workspace=path,
            output_dir=request.output_dir,
            log_path=request.log_path,
            workspace=str(path),
            agent_output_dir=str(request.output_dir),
            agent_socket=str(request.socket),
            env=env,
        )

    async def prepare(self, request: AttemptRequest, placement: Placement) -> None:
        try:
            workspace = await self.workspaces.create(request.ref.agent, request.ref.attempt)
            if request.copy_files:
                await asyncio.to_thread(
                    copy_untracked, self.setup.repo_top, workspace.path, list(request.copy_files)
                )
        except (OSError, GitError, ValueError) as exc:
            raise PlacementFailed(str(exc)) from exc

    async def start(
        self,
        placement: Placement,
        argv: list[str],
        *,
        interactive: bool = False,
        tty: tuple[int, int] | None = None,
    ) -> LocalExecution:
        try:
            spawned = spawn(
                list(argv),
                cwd=Path(placement.workspace),
                env=placement.env,
                log_path=placement.log_path,
                interactive=interactive,
                tty=tty,
            )
        except SpawnError as exc:
            raise StartFailed(str(exc)) from exc
        identity = LocalIdentity(runtime=self.name, pid=spawned.pid, start_time=spawned.start_time)
        return LocalExecution(identity, placement.log_path, self.cpu, spawned)

    def place_command(
        self, ref: AttemptRef, directory: Path, log_path: Path, env: dict[str, str]
    ) -> Placement:
        return Placement.for_command(
            ref, self.name, directory, log_path, {**env, **_marks(ref).environment()}
        )

    async def reattach(self, ref: AttemptRef, identity: Identity) -> LocalExecution | None:
        if identity.pid is None or identity.start_time is None:
            return None
        local = LocalIdentity(runtime=self.name, pid=identity.pid, start_time=identity.start_time)
        if not is_same_process(local.pid, local.start_time):
            return None
        log_path = RunDir(self.setup.rundir).output_log(ref.agent, ref.attempt)
        return LocalExecution(local, log_path, self.cpu)

    async def stop_attempt(
        self, ref: AttemptRef, execution: Execution | None, grace: float
    ) -> Stopped:
        local = execution if isinstance(execution, LocalExecution) else None
        result = await terminate_attempt(
            _marks(ref),
            grace=grace,
            pid=local.identity.pid if local else None,
            start_time=local.identity.start_time if local else None,
            popen=local.spawned.popen if local and local.spawned else None,
        )
        return _stopped(result)

    async def collect(self, placement: Placement) -> None:
        from corral.worktrees.integrate import commit_leftovers

        try:
            await asyncio.to_thread(
                commit_leftovers,
                placement.host_workspace,
                placement.ref.agent,
                placement.ref.attempt,
                branch=placement.branch,
            )
        except GitError as exc:
            raise CollectFailed(str(exc)) from exc

    async def release(self, placement: Placement) -> None:
        path = placement.host_workspace
        if path.is_dir():
            with contextlib.suppress(GitError):
                await asyncio.to_thread(unlock_workspace, path)

    def close(self) -> None:
        self.workspaces.close()
