"""`fake`: scripted executions without processes or git, so engine policy is tested in milliseconds.

Each attempt of an agent follows a `Script`: exit with a code after a delay, stay silent for
ever, ignore the polite stop, show signs of life (output, CPU) at a rate, or raise (a bug in a
runtime, which the engine must treat as its own fault). The scheduling, retry, backoff, hang and
dead-letter rules then run in the real Engine against it (tests/core/test_runtime_policy.py);
the real-process tests stay the integration tier.

Not registered as an entry point: a test registers it (core/runtime/registry.py `register`).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from corral.core.runtime.base import (
    AttemptRef,
    AttemptRequest,
    Ended,
    Execution,
    Identity,
    Placement,
    PlacementFailed,
    RuntimeSetup,
    StartFailed,
    Stopped,
)


@dataclass(frozen=True)
class Script:
    """What one fake execution does."""

    exit_code: int | None = 0
    """Its exit status, or None: it never ends by itself."""
    after: float = 0.0
    """Seconds until it exits."""
    output_every: float | None = None
    """Write a line to its log this often (a sign of life)."""
    output_line: str = "fake output {n}"
    """The line it writes, `{n}` the line's number (a stream line, for an agent's `stream`)."""
    cpu_rate: float = 0.0
    """CPU seconds it uses per second (a busy, silent agent is alive too)."""
    ignores_sigterm: bool = False
    """Only the forced kill after the grace period ends it."""
    fails_to_start: str | None = None
    """Its start fails with this message (StartFailed)."""
    fails_to_place: str | None = None
    """Its placement fails with this message (PlacementFailed)."""
    raises: str | None = None
    """Waiting for it raises RuntimeError(raises): a bug, an engine fault."""
    writes: Mapping[str, str] = field(
        default_factory=lambda: {"findings.json": '{"version": 1, "findings": []}'}
    )
    """Files it leaves in its output directory when it exits 0 (an audit agent's findings)."""


class FakeIdentity(Identity):
    fake_id: str


SILENT = Script(exit_code=None)
"""Never exits, never writes, uses no CPU: hung."""


class FakeExecution:
    def __init__(
        self, script: Script, identity: Identity, log_path: Path, output_dir: Path
    ) -> None:
        self.script = script
        self._identity = identity
        self.log_path = log_path
        self.output_dir = output_dir
        self.started = time.monotonic()
        self.ended: asyncio.Future[Ended] = asyncio.get_running_loop().create_future()
        self.signals: list[int] = []
        self.paused_at: float | None = None
        self.paused_for = 0.0
        self._output = 0
        self._timers: list[asyncio.TimerHandle] = []
        loop = asyncio.get_running_loop()
        if script.exit_code is not None:
            code = script.exit_code
            self._timers.append(
                loop.call_later(script.after, self._end, Ended("exited", code=code))
            )
        if script.output_every is not None:
            self._timers.append(loop.call_later(script.output_every, self._write))

    @property
    def input(self) -> None:
        """A scripted execution takes no input."""
        return None

    @property
    def identity(self) -> Identity:
        return self._identity

    def _end(self, ended: Ended) -> None:
        if self.ended.done():
            return
        if ended.how == "exited" and ended.code == 0:
            for name, text in self.script.writes.items():
                (self.output_dir / name).write_text(text)
        self.ended.set_result(ended)
        for timer in self._timers:
            timer.cancel()

    def _write(self) -> None:
        if self.ended.done():
            return
        with self.log_path.open("a") as log:
            log.write(self.script.output_line.replace("{n}", str(self._output)) + "\n")
        self._output += 1
        assert self.script.output_every is not None
        loop = asyncio.get_running_loop()
        self._timers.append(loop.call_later(self.script.output_every, self._write))

    async def wait(self, timeout: float | None) -> Ended | None:  # noqa: ASYNC109
        if self.script.raises is not None:
            await asyncio.sleep(self.script.after)
            raise RuntimeError(self.script.raises)
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(self.ended)
        except TimeoutError:
            return None

    async def terminate(self, grace: float) -> Stopped:
        if self.ended.done():
            return Stopped()
        self.signals.append(signal.SIGTERM)
        if not self.script.ignores_sigterm:
            self._end(Ended("killed", signal=signal.SIGTERM))
            return Stopped(stopped=1)
        await asyncio.sleep(grace)
        self.signals.append(signal.SIGKILL)
        self._end(Ended("killed", signal=signal.SIGKILL))
        return Stopped(stopped=1, forced=1)

    async def pause(self) -> int:
        """As SIGSTOP: its CPU time stands still until `resume` (core/runtime/base.py)."""
        if self.ended.done() or self.paused_at is not None:
            return 0
        self.signals.append(signal.SIGSTOP)
        self.paused_at = time.monotonic()
        return 1

    async def resume(self) -> int:
        if self.paused_at is None:
            return 0
        self.signals.append(signal.SIGCONT)
        self.paused_for += time.monotonic() - self.paused_at
        self.paused_at = None
        return 1

    def cpu_seconds(self) -> float | None:
        if self.ended.done():
            return None
        now = self.paused_at if self.paused_at is not None else time.monotonic()
        return (now - self.started - self.paused_for) * self.script.cpu_rate

    def output_size(self) -> int | None:
        try:
            return self.log_path.stat().st_size
        except OSError:
            return None


@dataclass
class FakeRuntime:
    """Scripts per agent, one per attempt (the last one repeats); `default` for the rest."""

    setup: RuntimeSetup
    scripts: Mapping[str, Sequence[Script]] = field(default_factory=dict)
    default: Script = field(default_factory=Script)
    name: str = "fake"
    executions: dict[tuple[str, int], list[FakeExecution]] = field(default_factory=dict)
    """Every execution started, by (agent, attempt): setup commands first, then the agent."""
    released: list[AttemptRef] = field(default_factory=list)
    collected: list[AttemptRef] = field(default_factory=list)
    stops: list[AttemptRef] = field(default_factory=list)

    def script(self, ref: AttemptRef) -> Script:
        scripts = self.scripts.get(ref.agent)
        if not scripts:
            return self.default
        return scripts[min(ref.attempt, len(scripts)) - 1]

    def place(self, request: AttemptRequest) -> Placement:
        ref = request.ref
        workspace = self.setup.worktree_root / f"fake-{ref.run_id}-{ref.agent}-{ref.attempt}"
        env = {**request.plan_env, **request.corral_env}
        return Placement(
            ref=ref,
            runtime=self.name,
            branch=f"corral/{ref.run_id}/{ref.agent}/{ref.attempt}",
            host_workspace=workspace,
            output_dir=request.output_dir,
            log_path=request.log_path,
            workspace="/workspace",
            agent_output_dir="/output",
            agent_socket="/run/corral.sock",
            env=env,
        )

    async def prepare(self, request: AttemptRequest, placement: Placement) -> None:
        problem = self.script(request.ref).fails_to_place
        if problem is not None:
            raise PlacementFailed(problem)

    async def start(
        self,
        placement: Placement,
        argv: list[str],
        *,
        interactive: bool = False,
        tty: tuple[int, int] | None = None,
    ) -> Execution:
        script = self.script(placement.ref)
        if script.fails_to_start is not None:
            raise StartFailed(script.fails_to_start)
        ref = placement.ref
        started = self.executions.setdefault((ref.agent, ref.attempt), [])
        identity = FakeIdentity(runtime=self.name, fake_id=f"{ref.label}.{len(started)}")
        execution = FakeExecution(script, identity, placement.log_path, placement.output_dir)
        started.append(execution)
        return execution

    def place_command(
        self, ref: AttemptRef, directory: Path, log_path: Path, env: dict[str, str]
    ) -> Placement:
        return Placement.for_command(ref, self.name, directory, log_path, env)

    async def reattach(self, ref: AttemptRef, identity: Identity) -> Execution | None:
        return None  # a fake execution does not outlive its engine

    async def stop_attempt(
        self, ref: AttemptRef, execution: Execution | None, grace: float
    ) -> Stopped:
        self.stops.append(ref)
        stopped = Stopped()
        for running in self.executions.get((ref.agent, ref.attempt), []):
            found = await running.terminate(grace)
            stopped = Stopped(stopped.stopped + found.stopped, stopped.forced + found.forced)
        return stopped

    async def collect(self, placement: Placement) -> None:
        self.collected.append(placement.ref)

    async def release(self, placement: Placement) -> None:
        self.released.append(placement.ref)

    def close(self) -> None:
        pass
