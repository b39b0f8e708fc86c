"""The runtime seam: where and how an attempt runs, behind one protocol the engine drives.

The engine decides *what* runs and *when* (scheduling, retries, timeouts, liveness, locks, the
event log); a runtime decides *where* and *how*: it places an attempt (a workspace, its output, the
socket and environment as the agent sees them), starts its commands as executions, stops them
with the whole tree confirmed gone, finds them again after an engine crash, collects the work as
a commit on the attempt's branch, and releases the placement. `local` (core/runtime/local.py) is
a process tree in a git worktree on this host; later runtimes (a sandbox, a container, a remote
host over SSH, a Ray actor) implement the same protocol and register under the `corral.runtimes`
entry-point group (core/runtime/registry.py), so the engine does not change for them.

A runtime never writes the event log and never decides policy: it answers the engine's calls
(and hands the engine the few facts no call returns, `RuntimeSetup.report`).
docs/architecture.md ("A runtime") says what each method must guarantee.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict

from corral.core.errors import CorralError
from corral.core.log.events import EventBase, ExecutionIdentity
from corral.core.plan.hosts import HostSpec
from corral.core.plan.resources import AgentResources, RaySettings
from corral.core.sandbox.policy import SandboxPolicy

Identity = ExecutionIdentity
"""Which execution it is: `runtime` plus the runtime's own fields (logged in `agent_started`)."""


class RuntimeFailure(CorralError):
    """An expected failure of a runtime, said so that a person can fix it: the attempt fails
    (and may be retried). Anything else a runtime raises is a bug, an engine fault."""


class PlacementFailed(RuntimeFailure):
    """The workspace (or another part of the placement) could not be made."""


class StartFailed(RuntimeFailure):
    """The command could not be started (not found, not executable, ...)."""


class CollectFailed(RuntimeFailure):
    """The attempt's work could not be committed on its branch."""


@dataclass(frozen=True)
class RuntimeSetup:
    """What every runtime of a run is made with (the entry point is called with this)."""

    run_id: str
    repo_top: Path
    snapshot: str
    """The commit every attempt starts from."""
    worktree_root: Path
    rundir: Path
    """The run directory: a runtime may keep its own files under `rundir/runtime/<name>/`."""
    report: Callable[[EventBase], None] | None = None
    """How a runtime tells the engine a fact worth logging that no call returns (a sandboxed
    agent's refused network request): the engine appends the event; the runtime never writes
    the log itself."""
    image: Path | None = None
    """The run's default root filesystem (`[defaults] image`, resolved): where the `container`
    runtime runs the plan's `verify`, so it sees the agents' toolchain."""
    sandbox: SandboxPolicy | None = None
    """The run's default sandbox policy (`[defaults.sandbox]`): the files that `verify` in the
    image may read and write (never the network)."""
    hosts: tuple[HostSpec, ...] = ()
    """The `ssh` runtime's pool: the plan's `[[host]]` tables (core/remote/config.py adds the
    user's `hosts.toml`)."""
    ray: RaySettings | None = None
    """The run's `[run.ray]`: the cluster of the `ray` runtime (core/runtime/ray_runtime.py)."""


class AttemptRef(BaseModel):
    """One attempt of one agent of one run: what its processes are marked with and found by."""

    model_config = ConfigDict(frozen=True)

    run_id: str
    agent: str
    attempt: int

    @property
    def label(self) -> str:
        return f"{self.agent}#{self.attempt}"


class AttemptRequest(BaseModel):
    """What the engine asks a runtime to place: host paths are corral's, the environment's parts
    are the engine's; the runtime decides how the agent sees them."""

    model_config = ConfigDict(frozen=True)

    ref: AttemptRef
    output_dir: Path
    """The attempt's output directory on the engine's host (made by the engine)."""
    log_path: Path
    """Where the agent's stdout and stderr must end up on the engine's host."""
    socket: Path
    """The engine's control socket on its host."""
    shared_dir: Path
    """The run's shared-files directory on the engine's host (core/locks/shared_files.py)."""
    copy_files: tuple[str, ...] = ()
    """Untracked files copied from the repository into the workspace."""
    base_env: dict[str, str] = {}
    """The run's starting environment (no CORRAL_* in it): a runtime may pass on none of it."""
    plan_env: dict[str, str] = {}
    """The plan's `env` for the agent, secrets resolved."""
    corral_env: dict[str, str] = {}
    """The attempt's token, marks and trace context; the runtime adds the path variables."""
    sandbox: SandboxPolicy | None = None
    """The agent's `[agent.sandbox]` (or `[defaults.sandbox]`) policy, for the `sandbox`
    runtime (core/runtime/sandbox.py); others ignore it."""
    image: Path | None = None
    """The agent's root filesystem (`image`, resolved), for the `container` runtime
    (core/runtime/container.py); others ignore it."""
    resources: AgentResources | None = None
    """The agent's `[agent.resources]`, for the `ray` runtime's placement; others ignore it."""


class Placement(BaseModel):
    """Where an attempt runs: host-side paths for corral, agent-side paths and environment."""

    model_config = ConfigDict(frozen=True)

    ref: AttemptRef
    runtime: str
    branch: str
    """The git branch the work is collected on."""
    host_workspace: Path
    """The workspace on the engine's host, for corral's own use (conflict watch, merge)."""
    output_dir: Path
    log_path: Path
    workspace: str
    """The workspace as the agent sees it: its working directory and CORRAL_WORKSPACE."""
    agent_output_dir: str
    agent_socket: str
    """The control socket as the agent sees it (CORRAL_SOCKET)."""
    host: str = ""
    """The pool's name of the host it runs on (runtime `ssh`); empty on the engine's host,
    where `host_workspace` is its worktree. On another host there is no local worktree:
    `host_workspace` is then not a directory here and the conflict watch leaves it out."""
    env: dict[str, str]
    """The whole environment of the agent and its setup commands."""

    @classmethod
    def for_command(
        cls, ref: AttemptRef, runtime: str, directory: Path, log_path: Path, env: dict[str, str]
    ) -> Placement:
        """A command corral runs itself (`place_command`): in `directory` on this host, seen
        there by the command too, its output beside `log_path`, no branch and no socket."""
        return cls(
            ref=ref,
            runtime=runtime,
            branch="",
            host_workspace=directory,
            output_dir=log_path.parent,
            log_path=log_path,
            workspace=str(directory),
            agent_output_dir=str(log_path.parent),
            agent_socket="",
            env=env,
        )


@dataclass(frozen=True)
class Ended:
    """How an execution ended: it exited with `code`, was killed by `signal`, or was lost
    (the runtime can no longer see it: a node or host gone, or it ended unwatched)."""

    how: Literal["exited", "killed", "lost"]
    code: int | None = None
    signal: int | None = None
    reason: str = ""


@dataclass(frozen=True)
class Stopped:
    """What stopping found: how many of its processes still ran and were stopped."""

    stopped: int = 0
    forced: int = 0
    """Of those, how many outlived the grace period and were killed."""
    details: list[str] = field(default_factory=list)
    deferred: bool = False
    """Its place cannot be reached now (a host that dropped off): what runs there is stopped
    once it is back, and until then the attempt's leases are not handed on early: they run out
    after TTL + grace (docs/reliability.md T7)."""


class Execution(Protocol):
    """One started command (an agent or a setup or verify command) of an attempt."""

    @property
    def identity(self) -> Identity: ...

    async def wait(self, timeout: float | None) -> Ended | None:  # noqa: ASYNC109
        """Its end, or None if it still runs after `timeout` seconds (None: no limit).

        Safe to call from several tasks; once ended, returns the same end at once."""
        ...

    async def terminate(self, grace: float) -> Stopped:
        """Stop its whole tree (polite, then forced after `grace`) and confirm it is gone.

        Raises (TerminateError for local) if it cannot be confirmed: then no retry may start."""
        ...

    def cpu_seconds(self) -> float | None:
        """CPU seconds its tree has used so far; None when nothing of it runs any more."""
        ...

    def output_size(self) -> int | None:
        """Bytes of output that reached the host log so far; None if unknown."""
        ...

    @property
    def input(self) -> AgentInput | None:
        """Its stdin, when started `interactive` and this engine still holds it; else None."""
        ...


@runtime_checkable
class Pausable(Protocol):
    """An optional capability of an Execution: freeze its whole tree (SIGSTOP for processes)
    and let it go on. The engine offers `corral pause` only for an execution that has it, and
    keeps its timeouts still while it is paused (core/engine/liveness.py). `terminate` must
    still work on a paused execution."""

    async def pause(self) -> int:
        """Stop everything of it from running; how many processes (or units) were paused."""
        ...

    async def resume(self) -> int:
        """Let what `pause` stopped run on; how many were continued."""
        ...


class AgentInput(Protocol):
    """A running agent's stdin (core/runtime/agent_input.py `PipeInput` for local processes)."""

    @property
    def closed(self) -> bool: ...

    def send(self, data: bytes) -> None:
        """Queue `data` whole for the agent without blocking; InputRefused if it cannot."""
        ...

    def close(self) -> None:
        """End-of-file for the agent once what is queued is written."""
        ...


@runtime_checkable
class TerminalInput(AgentInput, Protocol):
    """The input of an agent started with `tty`: keystrokes as is, and the terminal's size
    (core/runtime/pty_io.py `PtyInput`)."""

    def resize(self, columns: int, rows: int) -> None:
        """The terminal's new size (the agent gets SIGWINCH); InputRefused once it ended."""
        ...


class Runtime(Protocol):
    """Where and how attempts run. One instance per runtime name per engine."""

    name: str

    def place(self, request: AttemptRequest) -> Placement:
        """Where the attempt will run; no side effects, so the engine can log it first."""
        ...

    async def prepare(self, request: AttemptRequest, placement: Placement) -> None:
        """Make the placement (workspace from the snapshot, files copied); PlacementFailed."""
        ...

    async def start(
        self,
        placement: Placement,
        argv: list[str],
        *,
        interactive: bool = False,
        tty: tuple[int, int] | None = None,
    ) -> Execution:
        """Start `argv` in the placement, its output appended to the host log; StartFailed.

        `interactive`: its stdin is a pipe the engine holds (`Execution.input`), for an agent
        that takes a person's messages while it runs; otherwise it reads end-of-file. `tty`
        (columns, rows): it runs on a pseudo-terminal the engine holds instead, its output
        copied to the log, its `Execution.input` a `TerminalInput`; a runtime that cannot
        raises StartFailed (the plan refuses `tty` for it first: core/plan/model.py)."""
        ...

    def place_command(
        self, ref: AttemptRef, directory: Path, log_path: Path, env: dict[str, str]
    ) -> Placement:
        """A placement for a command corral runs itself in `directory` (the plan's `verify`
        on the integration worktree), with the same kill guarantees as an attempt."""
        ...

    async def reattach(self, ref: AttemptRef, identity: Identity) -> Execution | None:
        """After an engine crash: the attempt's execution if it still runs, else None."""
        ...

    async def stop_attempt(
        self, ref: AttemptRef, execution: Execution | None, grace: float
    ) -> Stopped:
        """Nothing of the attempt runs on (docs/reliability.md T2): its execution's tree and any
        leftovers (setup commands' children, escaped processes, what a dead engine left), all
        confirmed gone. Called at every end of an attempt and on recovery; cheap when none."""
        ...

    async def collect(self, placement: Placement) -> None:
        """Commit what the attempt left uncommitted on its branch, in the repository; CollectFailed."""
        ...

    async def release(self, placement: Placement) -> None:
        """The attempt is over: free what the placement holds (the branch is kept for the merge)."""
        ...

    def close(self) -> None:
        """The engine is done: no more placements."""
        ...
