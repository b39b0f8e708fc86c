"""`sandbox`: `local` attempts inside bubblewrap (issue 12; docs/reliability.md T6).

Placement is `local`'s (a worktree of the snapshot on this host); every command of the attempt,
its setup commands and the agent, starts inside `bwrap` (core/sandbox/bwrap.py) with the
agent's policy (`[agent.sandbox]`): the worktree and output directory writable, the attempt's
private git directory over the worktree's record (core/sandbox/gitdir.py), the run's control
socket as `/run/corral/control.sock`, the run's shared-files directory writable, the rest of the
host read-only, the secret stores hidden, and the environment exactly the placement's: the plan's
`env`, corral's variables and a few harmless basics (`PASSED_ON`), never the engine's secrets.

Stopping kills the tree, then the sandbox's pid 1 (which ends its pid namespace, whatever ran in
it), then, as for `local`, every process that still carries the attempt's marks (T2).
Collecting brings the private branch back (`collect_branch`), then commits the leftovers as
`local` does. With `network = "allow"` each attempt has its own allowlist proxy on a Unix socket;
each refusal is reported to the engine as a `network_refused` event. The plan's `verify` is not
an attempt: it runs unsandboxed, as `local` runs it (`place_command`).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from corral.core.log.event_types.agent import NetworkRefused
from corral.core.runtime.base import (
    AttemptRef,
    AttemptRequest,
    CollectFailed,
    Execution,
    Identity,
    Placement,
    PlacementFailed,
    RuntimeSetup,
    StartFailed,
    Stopped,
)
from corral.core.runtime.kill import POLL_FIRST, POLL_MAX, TerminateError
from corral.core.runtime.local import LocalExecution, LocalIdentity, LocalRuntime, _marks
from corral.core.runtime.procfs import process_start_time, read_stat, same_start
from corral.core.runtime.proctree import (
    CpuSampler,
    Marks,
    Spawned,
    SpawnError,
    pause_tree,
    resume_tree,
    spawn,
    terminate_tree,
)
from corral.core.sandbox.bwrap import SandboxCommand, sandbox_command, sandbox_init_pid
from corral.core.sandbox.gitdir import (
    CollectError,
    collect_branch,
    discard_when_collected,
    prepare_private_gitdir,
)
from corral.core.sandbox.paths import INSIDE_SOCKET, AttemptPaths
from corral.core.sandbox.policy import ResolvedPolicy, SandboxPolicy
from corral.core.sandbox.proxy import AllowlistProxy

PASSED_ON = ("PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "LC_CTYPE", "TERM", "TZ")
"""The only variables of the engine's environment a sandboxed agent gets (the plan's `env` may
set others): enough for programs to find themselves and their locale, nothing secret."""
INFO_TIMEOUT = 30.0
"""How long bubblewrap may take to say who the sandbox's pid 1 is (it says so in milliseconds)."""
INIT_GONE_TIMEOUT = 10.0


class SandboxIdentity(LocalIdentity):
    """bubblewrap's process on this host, and the sandbox's pid 1 (its host pid and start)."""

    init_pid: int | None = None
    init_start_time: float | None = None


@dataclass
class _Attempt:
    """What the runtime holds for one placed attempt besides the worktree."""

    gitdir: Path
    admin_dir: Path
    socket: Path
    """The run's control socket on the host (the placement names it as the agent sees it)."""
    policy: SandboxPolicy
    proxy: AllowlistProxy | None = None
    proxy_dir: Path | None = None
    image: Path | None = None
    """The root filesystem (the container runtime's), or None: the host's, read-only."""


def _init_runs(pid: int, start_time: float) -> bool:
    """Whether the sandbox's pid 1 still runs: the same process and not a zombie.

    A pid namespace's init becomes a zombie only once the kernel has killed and reaped every
    other process of its namespace, so a zombie init means nothing of the sandbox runs. It stays
    a zombie until the host's init reaps it (bubblewrap's outer process does not): waiting for
    that cost up to two seconds per attempt where pid 1 reaps slowly, forever where it never does.
    """
    stat = read_stat(pid)
    return stat is not None and same_start(stat.start_time, start_time) and not stat.zombie


async def _kill_init(pid: int | None, start_time: float | None) -> bool:
    """SIGKILL the sandbox's pid 1 (the namespace ends with it) and wait until it has ended;
    True if it still ran. Raises TerminateError if it outlives the kill.

    Through a pidfd where the kernel has them: the signal cannot reach a process that took the
    pid over, and the end is seen the moment it comes (the kernel makes the pidfd readable once
    pid 1, and so its namespace, has ended) instead of at the next poll.
    """
    if pid is None or start_time is None:
        return False
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return False
    except (AttributeError, OSError):
        return await _kill_init_polling(pid, start_time)
    try:
        if not _init_runs(pid, start_time):  # checked once the pidfd pins what it names
            return False
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        if not await _readable(pidfd, INIT_GONE_TIMEOUT) and _init_runs(pid, start_time):
            raise TerminateError(f"the sandbox's pid 1 ({pid}) outlived SIGKILL", [pid])
        return True
    finally:
        os.close(pidfd)


async def _readable(fd: int, timeout: float) -> bool:  # noqa: ASYNC109
    """Whether `fd` became readable within `timeout` (the event loop watches it)."""
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def on_ready() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, on_ready)
    try:
        async with asyncio.timeout(timeout):
            await ready
    except TimeoutError:
        return False
    finally:
        loop.remove_reader(fd)
    return True


async def _kill_init_polling(pid: int, start_time: float) -> bool:
    """`_kill_init` without pidfds (old kernels, seccomp filters): signal, then poll /proc."""
    if not _init_runs(pid, start_time):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + INIT_GONE_TIMEOUT
    delay = POLL_FIRST
    while _init_runs(pid, start_time):
        if time.monotonic() >= deadline:
            raise TerminateError(f"the sandbox's pid 1 ({pid}) outlived SIGKILL", [pid])
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, POLL_MAX)
    return True


def _signal_init(pid: int | None, start_time: float | None, sig: signal.Signals) -> bool:
    """Signal the sandbox's pid 1 itself (from the host, where its namespace's shield against
    signals does not apply), through a pidfd so that no later holder of the pid gets it."""
    if pid is None or start_time is None:
        return False
    try:
        pidfd = os.pidfd_open(pid)
    except (ProcessLookupError, AttributeError, OSError):
        return False
    try:
        if not _init_runs(pid, start_time):
            return False
        signal.pidfd_send_signal(pidfd, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False
    finally:
        os.close(pidfd)


class SandboxExecution(LocalExecution):
    """A bubblewrap process tree; stopping it ends the sandbox's pid namespace too."""

    def __init__(
        self,
        identity: SandboxIdentity,
        log_path: Path,
        cpu: CpuSampler,
        marks: Marks,
        spawned: Spawned | None = None,
    ) -> None:
        super().__init__(identity, log_path, cpu, spawned)
        self.marks = marks

    @property
    def identity(self) -> SandboxIdentity:
        identity = self._identity
        assert isinstance(identity, SandboxIdentity)
        return identity

    async def pause(self) -> int:
        """SIGSTOP bubblewrap's tree, whatever carries the attempt's marks, and the sandbox's
        pid 1 (core/runtime/base.py `Pausable`)."""
        identity = self.identity

        def freeze() -> int:
            paused = int(_signal_init(identity.init_pid, identity.init_start_time, signal.SIGSTOP))
            return paused + pause_tree(identity.pid, identity.start_time, marks=self.marks)

        return await asyncio.to_thread(freeze)

    async def resume(self) -> int:
        identity = self.identity

        def thaw() -> int:
            went_on = resume_tree(identity.pid, identity.start_time, marks=self.marks)
            init = _signal_init(identity.init_pid, identity.init_start_time, signal.SIGCONT)
            return went_on + int(init)

        return await asyncio.to_thread(thaw)

    async def terminate(self, grace: float) -> Stopped:
        identity = self.identity
        result = await terminate_tree(
            identity.pid,
            identity.start_time,
            grace=grace,
            popen=self.spawned.popen if self.spawned else None,
            marks=self.marks,
        )
        init_ran = await _kill_init(identity.init_pid, identity.init_start_time)
        return Stopped(
            stopped=len(result.signalled) + int(init_ran),
            forced=len(result.forced) + int(init_ran),
        )


async def _read_info(fd: int, timeout: float) -> bytes:  # noqa: ASYNC109
    """What bubblewrap writes to `--info-fd`, to the end (it closes it once the sandbox runs),
    or what came before `timeout`. The event loop watches the pipe: no worker thread waits on
    it (fifty attempts starting at once used to queue for the few threads). Closes `fd`."""
    loop = asyncio.get_running_loop()
    ended: asyncio.Future[None] = loop.create_future()
    chunks: list[bytes] = []

    def readable() -> None:
        try:
            while chunk := os.read(fd, 4096):
                chunks.append(chunk)
        except BlockingIOError:
            return  # more to come
        except OSError:
            pass
        if not ended.done():
            ended.set_result(None)

    os.set_blocking(fd, False)
    loop.add_reader(fd, readable)
    try:
        async with asyncio.timeout(timeout):
            await ended
    except TimeoutError:
        pass
    finally:
        loop.remove_reader(fd)
        os.close(fd)
    return b"".join(chunks)


class SandboxRuntime(LocalRuntime):
    """`local`'s worktrees, every command of an attempt inside bubblewrap."""

    name = "sandbox"

    def __init__(self, setup: RuntimeSetup, *, bwrap: str = "bwrap") -> None:
        super().__init__(setup)
        self.bwrap = bwrap
        self.attempts: dict[AttemptRef, _Attempt] = {}
        self._resolved: dict[tuple[SandboxPolicy, Path, str | None], ResolvedPolicy] = {}

    def _own_dir(self, ref: AttemptRef) -> Path:
        return self.setup.rundir / "runtime" / self.name / f"{ref.agent}-{ref.attempt}"

    def place(self, request: AttemptRequest) -> Placement:
        plain = {key: request.base_env[key] for key in PASSED_ON if key in request.base_env}
        local = super().place(request.model_copy(update={"base_env": plain}))
        env = {**local.env, "CORRAL_SOCKET": str(INSIDE_SOCKET)}
        return local.model_copy(
            update={"runtime": self.name, "agent_socket": str(INSIDE_SOCKET), "env": env}
        )

    async def prepare(self, request: AttemptRequest, placement: Placement) -> None:
        await super().prepare(request, placement)
        ref = request.ref
        gitdir = self._own_dir(ref) / "git"
        try:
            record = await asyncio.to_thread(self._private_gitdir, gitdir, placement)
        except (OSError, ValueError) as exc:
            raise PlacementFailed(f"the sandbox's private git directory: {exc}") from exc
        self.attempts[ref] = _Attempt(
            gitdir, record, request.socket, request.sandbox or SandboxPolicy()
        )

    def _private_gitdir(self, gitdir: Path, placement: Placement) -> Path:
        """Make the attempt's private git directory (afresh: a prepare may be retried); the
        worktree's record in the shared repository that it stands in for. One worker thread
        for all of it: a hop to a thread costs more than these few small writes."""
        from corral.worktrees.git import admin_dir

        record = admin_dir(placement.host_workspace)
        if record is None:
            raise PlacementFailed(f"{placement.host_workspace} has no git record to sandbox")
        if gitdir.exists():  # a placement made again (the engine's retry of a prepare)
            shutil.rmtree(gitdir)
        prepare_private_gitdir(
            gitdir,
            common_dir=self._common_dir(),
            admin_dir=record,
            branch=placement.branch,
            commit=self.setup.snapshot,
        )
        return record

    def _common_dir(self) -> Path:
        """The shared git directory (asked of git once per process: `git_common_dir` keeps it)."""
        from corral.worktrees.git import git_common_dir

        return git_common_dir(self.setup.repo_top)

    def _resolve(self, policy: SandboxPolicy, home: Path, shared: str | None) -> ResolvedPolicy:
        """The policy against the agent's home, with the run's shared files writable; kept,
        since it depends on nothing else and most attempts of a run share one."""
        key = (policy, home, shared)
        resolved = self._resolved.get(key)
        if resolved is None:
            resolved = policy.resolve(home)
            if shared:  # the run's shared files (core/locks/shared_files.py), as `local` has them
                resolved = dataclasses.replace(resolved, write=(*resolved.write, Path(shared)))
            self._resolved[key] = resolved
        return resolved

    async def _proxy_socket(self, ref: AttemptRef, held: _Attempt) -> Path | None:
        """The attempt's allowlist proxy (started at its first command), or None (no network)."""
        if held.policy.network != "allow":
            return None
        if held.proxy is None or held.proxy_dir is None:
            report = self.setup.report

            def refused(destination: str) -> None:
                if report is not None:
                    event = NetworkRefused(
                        agent=ref.agent, attempt=ref.attempt, destination=destination
                    )
                    report(event)

            # its own short directory: AF_UNIX paths are limited to 108 bytes
            held.proxy_dir = Path(tempfile.mkdtemp(prefix="corral-proxy-"))
            held.proxy = AllowlistProxy(held.policy.destinations(), refused)
            await held.proxy.start_unix(held.proxy_dir / "proxy.sock")
        return held.proxy_dir / "proxy.sock"

    def place_command(
        self, ref: AttemptRef, directory: Path, log_path: Path, env: dict[str, str]
    ) -> Placement:
        """The plan's `verify` is corral's own command on the integration worktree, not an
        agent's: it runs as `local` runs it (named so, for `start`)."""
        placement = super().place_command(ref, directory, log_path, env)
        return placement.model_copy(update={"runtime": LocalRuntime.name})

    async def start(
        self,
        placement: Placement,
        argv: list[str],
        *,
        interactive: bool = False,
        tty: tuple[int, int] | None = None,
    ) -> LocalExecution:
        if placement.runtime != self.name:  # `place_command`'s: unsandboxed
            return await super().start(placement, argv, interactive=interactive, tty=tty)
        ref = placement.ref
        held = self.attempts.get(ref)
        if held is None:
            raise StartFailed(f"{ref.label} was not prepared by the {self.name} runtime")
        paths = await self._attempt_paths(placement, held)
        resolved = self._resolve(held.policy, paths.home, placement.env.get("CORRAL_SHARED"))
        return await self._spawn(placement, resolved, paths, argv, interactive=interactive, tty=tty)

    async def _attempt_paths(self, placement: Placement, held: _Attempt) -> AttemptPaths:
        """Where the attempt's files are, on the host and inside."""
        return AttemptPaths(
            worktree=placement.host_workspace,
            output_dir=placement.output_dir,
            socket=held.socket,
            common_dir=self._common_dir(),
            admin_dir=held.admin_dir,
            private_gitdir=held.gitdir,
            home=Path(placement.env.get("HOME") or Path.home()),
            proxy_socket=await self._proxy_socket(placement.ref, held),
        )

    def _command(
        self,
        policy: ResolvedPolicy,
        paths: AttemptPaths,
        argv: list[str],
        env: dict[str, str],
        info_fd: int,
        terminal: bool = False,
    ) -> SandboxCommand:
        """The bubblewrap command line (the container runtime adds its image's parts)."""
        return sandbox_command(
            policy, paths, argv, env, bwrap=self.bwrap, info_fd=info_fd, terminal=terminal
        )

    async def _spawn(
        self,
        placement: Placement,
        policy: ResolvedPolicy,
        paths: AttemptPaths,
        argv: list[str],
        *,
        interactive: bool = False,
        tty: tuple[int, int] | None = None,
    ) -> SandboxExecution:
        """Start `argv` in a sandbox built from `policy` and `paths`; learn its pid 1."""
        read_end, write_end = os.pipe()
        try:
            command = self._command(
                policy, paths, argv, placement.env, write_end, terminal=tty is not None
            )
            spawned = spawn(
                command.argv,
                cwd=placement.host_workspace,
                env=command.env,
                log_path=placement.log_path,
                pass_fds=(write_end,),
                interactive=interactive,
                tty=tty,
            )
        except (SpawnError, ValueError) as exc:
            os.close(read_end)
            raise StartFailed(str(exc)) from exc
        finally:
            os.close(write_end)
        init = sandbox_init_pid(await _read_info(read_end, INFO_TIMEOUT))
        identity = SandboxIdentity(
            runtime=self.name,
            pid=spawned.pid,
            start_time=spawned.start_time,
            init_pid=init,
            init_start_time=process_start_time(init) if init is not None else None,
        )
        return SandboxExecution(
            identity, placement.log_path, self.cpu, _marks(placement.ref), spawned
        )

    async def reattach(self, ref: AttemptRef, identity: Identity) -> LocalExecution | None:
        found = await super().reattach(ref, identity)
        if found is None:
            return None
        extra = identity.model_extra or {}
        init_pid, init_start = extra.get("init_pid"), extra.get("init_start_time")
        sandboxed = SandboxIdentity(
            runtime=self.name,
            pid=found.identity.pid,
            start_time=found.identity.start_time,
            init_pid=init_pid if isinstance(init_pid, int) else None,
            init_start_time=float(init_start) if isinstance(init_start, int | float) else None,
        )
        return SandboxExecution(sandboxed, found.log_path, self.cpu, _marks(ref))

    async def stop_attempt(
        self, ref: AttemptRef, execution: Execution | None, grace: float
    ) -> Stopped:
        init_ran = False
        if isinstance(execution, SandboxExecution):
            identity = execution.identity
            init_ran = await _kill_init(identity.init_pid, identity.init_start_time)
        swept = await super().stop_attempt(ref, execution, grace)
        return Stopped(
            stopped=swept.stopped + int(init_ran),
            forced=swept.forced + int(init_ran),
            details=swept.details,
        )

    async def collect(self, placement: Placement) -> None:
        held = self.attempts.get(placement.ref)
        if held is not None:
            try:
                await asyncio.to_thread(
                    collect_branch,
                    self.setup.repo_top,
                    gitdir=held.gitdir,
                    scratch=self._own_dir(placement.ref) / "scratch",
                    common_dir=self._common_dir(),
                    admin_dir=held.admin_dir,
                    worktree=placement.host_workspace,
                    branch=placement.branch,
                    start=self.setup.snapshot,
                )
            except (CollectError, OSError) as exc:
                raise CollectFailed(str(exc)) from exc
        await super().collect(placement)

    async def release(self, placement: Placement) -> None:
        held = self.attempts.pop(placement.ref, None)
        if held is not None:
            if held.proxy is not None:
                await held.proxy.close()
            if held.proxy_dir is not None:
                shutil.rmtree(held.proxy_dir, ignore_errors=True)
            await asyncio.to_thread(
                discard_when_collected,
                self._own_dir(placement.ref),
                repo=self.setup.repo_top,
                gitdir=held.gitdir,
                branch=placement.branch,
                start=self.setup.snapshot,
            )
        await super().release(placement)
