"""One attempt of one agent through its runtime: placement, setup, the agent, liveness, its end.

Separate limits (docs/reliability.md S1): `start_timeout` covers the placement and setup commands,
`heartbeat_timeout` the silence of a running agent (core/engine/liveness.py), `timeout` the
whole attempt, and `kill_grace` the time between the polite stop and the forced one. Whatever
ends the attempt, the runtime stops everything of it, confirmed, before its end is reported
(T2): setup commands and the agent are executions alike, with the same guarantees.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from corral.core.engine.context import AttemptControl, AttemptResult, Emit, RunContext
from corral.core.engine.environment import (
    attempt_ref,
    attempt_request,
    environment_problem,
    environment_redactor,
    redact_outputs,
)
from corral.core.engine.liveness import describe_end, interrupted, watch
from corral.core.engine.stream_watch import StreamWatch
from corral.core.errors import InputError
from corral.core.log import events as ev
from corral.core.log.state import Usage
from corral.core.plan.model import AgentSpec
from corral.core.presets import mcp
from corral.core.presets.attempt import OVERLAY_DIR, render, write_overlays
from corral.core.runs.rundir import ensure_private_dir
from corral.core.runtime.agent_input import InputRefused, encode_input
from corral.core.runtime.base import (
    AttemptRequest,
    Execution,
    Placement,
    Runtime,
    RuntimeFailure,
)
from corral.core.runtime.pty_io import typed_line
from corral.core.streams import PriceTable, load_prices
from corral.core.streams.prices import packaged_prices

SETUP_POLL = 0.25
"""How often a running setup command is checked for a stop or kill request."""


def _make_attempt_files(out_dir: Path, log_path: Path) -> None:
    ensure_private_dir(out_dir)
    log_path.touch(mode=0o600)


async def run_step(
    execution: Execution, control: AttemptControl, grace: float
) -> AttemptResult | None:
    """Wait for a setup command; None when it exited 0, else why the attempt ends here.

    A stop or kill request stops its tree at once (confirmed), as for the agent."""
    try:
        while (ended := await execution.wait(SETUP_POLL)) is None:
            if control.interrupted:
                await execution.terminate(grace)
                return interrupted(control)
    except BaseException:
        await execution.terminate(grace)
        raise
    if ended.how == "exited" and ended.code == 0:
        return None
    words, _ = describe_end(ended)
    return AttemptResult(
        "failed", exit_code=ended.code if ended.how == "exited" else None, reason=words
    )


def _model_of(spec: AgentSpec) -> str | None:
    """The model the plan names for the agent (a preset's `model`), for pricing a stream that
    never names its own (Codex, opencode); None for an agent without one."""
    model = getattr(spec, "model", None)
    return model if isinstance(model, str) and model else None


class Supervisor:
    """Runs attempts; the scheduler decides which and when, the runtime where and how."""

    def __init__(
        self,
        ctx: RunContext,
        emit: Emit,
        runtimes: Mapping[str, Runtime],
        *,
        on_all_started: Callable[[], None] | None = None,
        run_usage: Callable[[], Usage] = Usage,
    ) -> None:
        self.ctx = ctx
        self.emit = emit
        self.runtimes = runtimes
        self.on_all_started = on_all_started
        """Called whenever no attempt is between its start and its spawn any more."""
        self.run_usage = run_usage
        """The run's tokens, cost and turns as the log holds them (for the run's budgets)."""
        self.starting = 0
        self._prices: PriceTable | None = None

    def prices(self) -> PriceTable:
        """The price table, read once (preflight checked the user's; if it broke since, the
        packaged one: a run is not stopped for a price)."""
        if self._prices is None:
            try:
                self._prices = load_prices(self.ctx.repo_top)
            except InputError:
                self._prices = packaged_prices()
        return self._prices

    def stream_watch(
        self, spec: AgentSpec, control: AttemptControl, placement: Placement
    ) -> StreamWatch | None:
        if spec.stream is None:
            return None
        return StreamWatch(
            spec,
            control.attempt,
            placement.log_path,
            offset=control.output_offset,
            prices=self.prices(),
            redactor=control.redactor,
            run=self.ctx.plan.run,
            run_usage=self.run_usage,
            model=_model_of(spec),
        )

    def runtime(self, spec: AgentSpec) -> Runtime:
        return self.runtimes[self.ctx.runtime_name(spec)]

    async def run_attempt(
        self, spec: AgentSpec, control: AttemptControl
    ) -> tuple[AttemptResult, Placement]:
        """Run the attempt to its end with nothing of it left running; its placement is
        released by the caller once the work is collected."""
        runtime = self.runtime(spec)
        request = attempt_request(self.ctx, spec, control)
        placement = runtime.place(request)
        try:
            return await self._run(spec, control, runtime, request, placement), placement
        finally:
            # also when something of it outlives the forced kill (then it raises): no retry
            stopped = await runtime.stop_attempt(
                attempt_ref(self.ctx, spec.id, control.attempt),
                control.execution,
                self.ctx.plan.run.kill_grace,
            )
            control.stop_deferred = stopped.deferred
            if control.redactor:  # every process of the attempt is gone by now
                await asyncio.to_thread(
                    redact_outputs, control.redactor, placement.log_path, placement.output_dir
                )

    async def _run(
        self,
        spec: AgentSpec,
        control: AttemptControl,
        runtime: Runtime,
        request: AttemptRequest,
        placement: Placement,
    ) -> AttemptResult:
        started = time.monotonic()
        with self._starting():
            await self.emit(
                ev.AgentStarting(
                    agent=spec.id,
                    attempt=control.attempt,
                    workspace=placement.workspace
                    if placement.host
                    else str(placement.host_workspace),
                    host=placement.host,
                    branch=placement.branch,
                    output_dir=str(placement.output_dir),
                    log_path=str(placement.log_path),
                )
            )
            problem = environment_problem(self.ctx, spec)
            if problem is not None:
                return AttemptResult("failed", reason=f"could not prepare the workspace: {problem}")
            control.redactor = environment_redactor(spec, placement.env)
            execution_or_result = await self._start(spec, control, runtime, request, placement)
        if isinstance(execution_or_result, AttemptResult):
            return execution_or_result
        execution = control.execution = execution_or_result
        await self.emit(
            ev.AgentStarted(
                agent=spec.id,
                attempt=control.attempt,
                pid=execution.identity.pid,
                proc_start_time=execution.identity.start_time,
                runtime=runtime.name,
                identity=execution.identity,
            )
        )
        remaining = spec.timeout - (time.monotonic() - started)
        stream = self.stream_watch(spec, control, placement)
        try:
            return await watch(spec, control, execution, remaining, self.emit, stream)
        finally:
            if stream is not None:
                stream.close()

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
        self,
        spec: AgentSpec,
        control: AttemptControl,
        runtime: Runtime,
        request: AttemptRequest,
        placement: Placement,
    ) -> Execution | AttemptResult:
        """Placement, setup commands and the agent; a result when it cannot start."""
        grace = self.ctx.plan.run.kill_grace
        try:
            async with asyncio.timeout(spec.start_timeout):
                await asyncio.to_thread(
                    _make_attempt_files, placement.output_dir, placement.log_path
                )
                await runtime.prepare(request, placement)
                placement, argv, first_input = await asyncio.to_thread(
                    self._launch, spec, placement
                )
                for command in spec.setup:
                    result = await self._setup(runtime, placement, control, command, grace)
                    if result is not None:
                        return result
        except TimeoutError:
            return AttemptResult(
                "timed_out", reason=f"workspace and setup took over {spec.start_timeout:.0f}s"
            )
        except (OSError, RuntimeFailure) as exc:
            return AttemptResult("failed", reason=f"could not prepare the workspace: {exc}")
        if control.interrupted:
            return interrupted(control)
        try:
            control.output_offset = placement.log_path.stat().st_size
        except OSError:
            control.output_offset = 0
        try:
            execution = await runtime.start(
                placement,
                argv,
                interactive=spec.input_format is not None,
                tty=spec.tty_size if spec.tty else None,
            )
        except RuntimeFailure as exc:
            return AttemptResult("failed", reason=str(exc))
        channel = execution.input
        if first_input is not None and channel is not None:
            with contextlib.suppress(InputRefused):  # a fresh pipe takes a prompt at once
                if spec.tty:
                    channel.send(typed_line(first_input))
                elif spec.input_format is not None:
                    channel.send(encode_input(spec.input_format, first_input))
        return execution

    def _launch(
        self, spec: AgentSpec, placement: Placement
    ) -> tuple[Placement, list[str], str | None]:
        """The agent's argv and first message, and for a preset agent the placement with its
        environment filled in and its overlay files written into the attempt's own directory
        (core/presets/)."""
        if spec.preset is None:
            return placement, spec.argv, spec.first_input
        preset = self.ctx.presets[spec.preset]
        wired = mcp.enabled(spec.mcp, preset.mcp, placement.runtime)
        try:
            launch = render(
                spec,
                preset,
                env=placement.env,
                workspace=placement.workspace,
                overlay=f"{placement.agent_output_dir}/{OVERLAY_DIR}",
                mcp=mcp.engine_server() if wired else None,
            )
        except ValueError as exc:  # corral's MCP server could not be added to its configuration
            raise RuntimeFailure(f"preset {preset.name!r}: {exc}") from None
        if mcp.supported(preset.mcp) and spec.mcp is not False and not wired:
            with placement.log_path.open("a") as log:
                log.write(
                    f"[corral] no MCP tools in the {placement.runtime} runtime: where the agent "
                    "runs there is no corral to run `corral mcp agent` (docs/architecture.md, MCP)\n"
                )
        write_overlays(placement.output_dir / OVERLAY_DIR, launch.files)
        return placement.model_copy(update={"env": launch.env}), launch.argv, launch.first_input

    async def _setup(
        self,
        runtime: Runtime,
        placement: Placement,
        control: AttemptControl,
        command: list[str],
        grace: float,
    ) -> AttemptResult | None:
        """Run one setup command to completion; a result means the attempt ends here."""
        with placement.log_path.open("a") as log:
            log.write(f"[corral] setup: {' '.join(command)}\n")
        try:
            execution = await runtime.start(placement, list(command))
        except RuntimeFailure as exc:
            return AttemptResult("failed", reason=f"setup: {exc}")
        result = await run_step(execution, control, grace)
        if result is not None and result.outcome == "failed":
            result.reason = f"setup command {command[0]!r} {result.reason}"
        return result

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
