"""The engine: owns one run, schedules its agents, answers the control socket.

It is the only writer of the run's event log, and it acts only on what the log already holds:
its own state is `fold` of the durable events, so a resumed engine and a fresh one see the
same world.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import os
import random
import signal
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence

from corral.core.engine.budget import run_budget_spent
from corral.core.engine.conflict_watch import ConflictWatch
from corral.core.engine.context import (
    AttemptControl,
    AttemptFault,
    AttemptResult,
    RunContext,
    make_runtimes,
    reporter,
)
from corral.core.engine.liveness import stopped
from corral.core.engine.notify import NotifyHook
from corral.core.engine.policy import after_attempt
from corral.core.engine.recovery import stop_leftovers
from corral.core.engine.requests import ControlRequests
from corral.core.engine.supervisor import Supervisor
from corral.core.engine.warmup import preload
from corral.core.locks.manager import LockManager
from corral.core.locks.shared_files import make_shared_dir, shared_dir
from corral.core.log import EventWriter, LogFailed
from corral.core.log import events as ev
from corral.core.log.state import ACTIVE_STATES, TERMINAL_STATES, RunState, apply
from corral.core.plan.model import AgentSpec, topological_order
from corral.core.runtime.base import CollectFailed, Placement, Runtime
from corral.core.runtime.procfs import process_start_time
from corral.core.trust import authority
from corral.core.trust.integrity import IntegrityWatch

FAILED_DEPENDENCY_STATES = frozenset({"dead_lettered", "skipped", "cancelled"})


def engine_info() -> ev.EngineInfo:
    pid = os.getpid()
    return ev.EngineInfo(
        pid=pid,
        start_time=process_start_time(pid) or time.time(),
        host=socket.gethostname(),
        user=getpass.getuser(),
        inside=authority.enclosing_attempt(),
    )


class Engine(ControlRequests):
    """Drives a run from its log to the end, or until it is stopped."""

    def __init__(
        self,
        ctx: RunContext,
        log: EventWriter,
        state: RunState,
        runtimes: Mapping[str, Runtime] | None = None,
    ) -> None:
        self.ctx = ctx
        self.plan = ctx.plan
        self.log = log
        self.state = state
        self.order = topological_order(self.plan)
        self.passes_only_launch = not any(spec.depends_on for spec in self.plan.agents) and all(
            limit is None
            for limit in (
                self.plan.run.max_tokens,
                self.plan.run.max_turns,
                self.plan.run.max_cost_usd,
            )
        )
        """No agent waits on another and the run has no budget: a scheduling pass can only
        launch, so a pass with no free slot has nothing to do (and skips the walk over every
        agent, which made 10,000 queued agents cost minutes: bench/bench_ray.py fake)."""
        self.runtimes = (
            dict(runtimes)
            if runtimes is not None
            else make_runtimes(ctx, reporter(self.emit, self._log_failed))
        )
        """By name: where the agents run (core/runtime/base.py); the run's own for `verify`."""
        self.supervisor = Supervisor(
            ctx,
            self.emit,
            self.runtimes,
            on_all_started=self._preload_once,
            run_usage=lambda: self.state.usage,
        )
        self.controls: dict[str, AttemptControl] = {}
        self.ended_tokens: dict[tuple[str, int], str] = {}
        """The tokens of this engine's attempts that are over: a late fenced write that carries
        one reaches the lock manager, which refuses it and records the refusal (T7)."""
        self.owner = authority.enclosing_attempt()
        """The attempt this engine runs inside, which may operate it (core/trust/authority.py)."""
        self.preloaded = False
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.cancelled_by: dict[str, tuple[str, str]] = {}
        self.stop_signal: int | None = None
        self.stopped_by: tuple[str, str] | None = None
        """(who, why) when a person stopped the run (`corral stop`), not a signal."""
        self.failure: BaseException | None = None
        self.wake = asyncio.Event()
        self.next_start = 0.0
        self.rng = random.Random()
        self.listeners: list[Callable[[ev.Event], None]] = []
        log.add_listener(self._on_durable)
        make_shared_dir(ctx.rundir.path)
        self.locks = LockManager(
            self.emit_many,
            state,
            grace=self.plan.run.lock_grace,
            shared_root=shared_dir(ctx.rundir.path),
            on_failure=self._log_failed,
        )
        self.locks.start()
        self.conflicts = ConflictWatch(
            ctx.repo_top,
            ctx.snapshot,
            self.plan.run.conflict_interval,
            self.emit_many,
        )
        self.integrity = IntegrityWatch(ctx.repo_top, ctx.rundir, self.emit_many, state)
        self.listeners.append(self.integrity.observe)
        self.notifier: NotifyHook | None = None
        if self.plan.run.notify:
            self.notifier = NotifyHook(self.plan.run.notify, state, ctx.rundir.path / "notify.log")
            self.listeners.append(self.notifier.observe)

    def _preload_once(self) -> None:
        """The first start burst is over: load the modules the end of the run needs (warmup)."""
        if not self.preloaded:
            self.preloaded = True
            preload()

    def _log_failed(self, exc: BaseException) -> None:
        self.failure = exc
        self.wake.set()

    def _on_durable(self, event: ev.Event) -> None:
        apply(self.state, event)
        for listener in self.listeners:
            listener(event)

    async def emit(self, event: ev.EventBase) -> ev.Event:
        return await self.log.append(event)

    async def emit_many(self, events: Sequence[ev.EventBase]) -> None:
        if events:
            await self.log.append_many(events)

    # -- lifecycle -------------------------------------------------------------------------

    async def recover(
        self,
        redrive: Sequence[str] = (),
        by: str = "",
        started: Mapping[tuple[str, int], ev.AgentStarted] | None = None,
    ) -> None:
        """After a resume: stop what the dead engine left running, then settle every agent.

        `started` holds the log's `agent_started` events, by which the runtimes find the
        executions again (their identities)."""
        await self.emit(
            ev.EngineResumed(engine=engine_info(), repaired_tail=self.log.repaired_tail is not None)
        )
        # Before the running attempts are marked lost: their leases wait out TTL + grace (L6).
        known_dead = LockManager.holders_known_dead(self.state)
        await stop_leftovers(self.ctx, self.state, self.runtimes, started or {}, self.emit)
        await self.integrity.resumed(self.state)
        await self.locks.restore(self.state, known_dead)
        for agent_id in redrive:
            await self.redrive(agent_id, by)
        for agent in list(self.state.agents.values()):
            if agent.state not in TERMINAL_STATES | {"queued", "waiting"}:
                await self._settle(agent.id)

    async def run(self) -> RunState:
        """Schedule until every agent has ended or the engine is stopped."""
        watch = None
        if any(spec.kind == "coding" for spec in self.plan.agents):
            watch = asyncio.create_task(self.conflicts.run(self.state), name="conflict-watch")
        try:
            while self.stop_signal is None and self.failure is None:
                self.wake.clear()  # before the pass, so a wake-up set during it is not lost
                await self._start_ready()
                if not self.tasks and all(
                    a.state in TERMINAL_STATES for a in self.state.agents.values()
                ):
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), timeout=self._next_timer())
            if watch is not None:
                watch.cancel()
                await asyncio.gather(watch, return_exceptions=True)
            if self.failure is None and self.stop_signal is None:
                await self._finish()
        except (LogFailed, OSError) as exc:
            # E3: a log that fails, or a run directory that takes no more files (report, verify
            # log: full, read-only, immutable), stops the engine; it does not finish the run
            self.failure = exc
        except Exception as exc:  # a bug while finishing: the engine's fault, with its traceback
            self.failure = AttemptFault("the end of the run", exc)
        finally:
            if watch is not None and not watch.done():
                watch.cancel()
                await asyncio.gather(watch, return_exceptions=True)
            await self._shutdown()
            if self.notifier is not None:
                await self.notifier.close()  # after `engine_stopped`: its notice is sent too
        return self.state

    def stop(self, signum: int) -> None:
        """SIGINT/SIGTERM: stop every agent tree, record it, and leave the rest for a resume."""
        if self.stop_signal is None:
            self.stop_signal = signum
            for control in self.controls.values():
                control.request_stop(signum, self._stop_reason())
            self.wake.set()

    def _stop_reason(self) -> str:
        """What an attempt stopped with the run says (a signal's default when '')."""
        if self.stopped_by is None:
            return ""
        return f"the run was stopped by {self.stopped_by[0]}"

    def stop_by(self, by: str, reason: str) -> bool:
        """A person's stop (`corral stop`): what SIGTERM does, recorded with who asked. False
        when the engine is already stopping."""
        if self.stop_signal is not None:
            return False
        self.stopped_by = (by, reason)
        self.stop(signal.SIGTERM)
        return True

    async def _shutdown(self) -> None:
        if self.tasks:
            for control in self.controls.values():
                control.request_stop(self.stop_signal or signal.SIGTERM, self._stop_reason())
            await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        for runtime in self.runtimes.values():
            runtime.close()
        await self.locks.close()
        if isinstance(self.failure, LogFailed):
            return  # nothing more can be recorded
        try:
            if isinstance(self.failure, AttemptFault):
                print(f"corral: {self.failure}\n{self.failure.traceback}", file=sys.stderr)
                reason = f"failed: {self.failure}\n{self.failure.traceback}"
                await self.emit(ev.EngineStopped(reason=reason))
            elif self.failure is not None:
                await self.emit(ev.EngineStopped(reason=f"failed: {self.failure}"))
            elif self.stopped_by is not None:
                by, why = self.stopped_by
                await self.emit(
                    ev.EngineStopped(
                        reason=f"stopped by {by}" + (f": {why}" if why else ""),
                        signal=self.stop_signal,
                        by=by,
                    )
                )
            elif self.stop_signal is not None:
                name = signal.Signals(self.stop_signal).name
                await self.emit(
                    ev.EngineStopped(reason=f"stopped by {name}", signal=self.stop_signal)
                )
            else:
                await self.emit(ev.EngineStopped(reason="finished"))
        except LogFailed as exc:
            self.failure = exc

    async def _finish(self) -> None:
        """Merge, verify, report, then `run_finished` (core/engine/finish.py)."""
        from corral.core.engine.finish import finish_run

        runtime = self.runtimes[self.plan.run.runtime]
        await finish_run(self.state, self.ctx.rundir, self.plan, runtime, self.emit, self.emit_many)

    # -- scheduling ------------------------------------------------------------------------

    def _next_timer(self) -> float | None:
        """How long the loop may sleep before a backoff or stagger delay ends."""
        delays = [self.next_start - time.monotonic()]
        now = time.time()
        delays += [
            agent.not_before - now
            for agent in self.state.agents.values()
            if agent.state == "queued" and agent.not_before is not None
        ]
        future = [delay for delay in delays if delay > 0]
        return min(future) if future else None

    async def _start_ready(self) -> None:
        if self.passes_only_launch and (
            len(self.tasks) >= self.plan.run.max_parallel or time.monotonic() < self.next_start
        ):
            return
        batch: list[ev.EventBase] = []
        now = time.time()
        for agent_id in self.order:
            agent = self.state.agents[agent_id]
            if (
                agent.state in TERMINAL_STATES
                or agent_id in self.tasks
                or agent.state in ACTIVE_STATES
            ):
                continue
            deps = [self.state.agents[dep] for dep in self.plan.agent(agent_id).depends_on]
            failed = [dep for dep in deps if dep.state in FAILED_DEPENDENCY_STATES]
            if failed:
                reasons = ", ".join(f"{dep.id} {dep.state}" for dep in failed)
                batch.append(
                    ev.AgentSkipped(agent=agent_id, reason=f"dependency failed: {reasons}")
                )
                continue
            spent = run_budget_spent(self.plan.run, self.state.usage)
            if spent is not None:
                batch.append(ev.AgentSkipped(agent=agent_id, reason=f"budget spent: {spent}"))
                continue
            unmet = [dep.id for dep in deps if dep.state != "succeeded"]
            next_attempt = len(agent.attempts) + 1
            if unmet:
                if agent.state != "waiting" or agent.waiting_on != unmet:
                    batch.append(
                        ev.AgentWaiting(
                            agent=agent_id,
                            attempt=next_attempt,
                            reason=f"waiting for {', '.join(unmet)}",
                            on=unmet,
                        )
                    )
                continue
            if agent.not_before is not None and agent.not_before > now:
                continue
            if len(self.tasks) >= self.plan.run.max_parallel or time.monotonic() < self.next_start:
                continue
            self._launch(self.plan.agent(agent_id), next_attempt)
        await self.emit_many(batch)
        if any(isinstance(event, ev.AgentSkipped) for event in batch):
            self.wake.set()  # dependents of a skipped agent are settled on the next pass

    def _launch(self, spec: AgentSpec, attempt: int) -> None:
        control = AttemptControl(agent=spec.id, attempt=attempt)
        self.controls[spec.id] = control
        self.tasks[spec.id] = asyncio.create_task(
            self._attempt(spec, control), name=f"{spec.id}#{attempt}"
        )
        stagger = self.plan.run.stagger
        self.next_start = time.monotonic() + (
            stagger * self.rng.uniform(0.5, 1.5) if stagger else 0.0
        )

    async def _attempt(self, spec: AgentSpec, control: AttemptControl) -> None:
        started = time.monotonic()
        try:
            result = await self._run_attempt(spec, control)
        except LogFailed as exc:
            self.failure = exc
            result = AttemptResult("lost", reason="the event log failed", requeue=True)
        except OSError as exc:  # E3: the run directory takes no more files; stop, not retry
            self.failure = exc
            result = AttemptResult("lost", reason=f"the run directory failed: {exc}", requeue=True)
        except Exception as exc:
            # not the agent's failure: a bug in corral or a runtime (or a tree that outlived
            # SIGKILL, after which S2 forbids a retry). Stop the engine; a resume requeues it.
            self.failure = AttemptFault(f"{spec.id}#{control.attempt}", exc)
            result = AttemptResult("lost", reason=str(self.failure), requeue=True)
        control.close_question()
        try:
            if self.failure is None:
                await self.log_resize(control)  # a burst still open ends with the attempt
                await self.integrity.attempt_ended(self.state, spec.id, control.attempt)
                await self.locks.end_attempt(
                    spec.id, control.attempt, keep_leases=control.stop_deferred
                )
                await self.emit(
                    ev.AgentFinished(
                        agent=spec.id,
                        attempt=control.attempt,
                        outcome=result.outcome,
                        exit_code=result.exit_code,
                        signal=result.signal,
                        reason=result.reason,
                        duration=round(time.monotonic() - started, 3),
                        requeue=result.requeue,
                    )
                )
                if self.stop_signal is None:
                    await self._settle(spec.id)
        except LogFailed as exc:
            self.failure = exc
        finally:
            self.tasks.pop(spec.id, None)
            self.controls.pop(spec.id, None)
            self.ended_tokens[(spec.id, control.attempt)] = control.token
            self.wake.set()

    async def _run_attempt(self, spec: AgentSpec, control: AttemptControl) -> AttemptResult:
        """Locks, the attempt through its runtime, then its output checked or its work collected;
        the placement is released however it ended."""
        if not await self._declared_locks(spec, control):
            if control.stop_signal is not None:
                return stopped(control)
            return AttemptResult("killed", reason=control.kill_reason or "killed")
        result, placement = await self.supervisor.run_attempt(spec, control)
        try:
            if result.outcome == "succeeded" and spec.kind == "audit":
                result = await self._check_findings(spec, control, result)
            elif result.outcome == "succeeded":
                result = await self._collect(spec, placement, result)
        finally:
            await self.supervisor.runtime(spec).release(placement)
        return result

    async def _collect(
        self, spec: AgentSpec, placement: Placement, result: AttemptResult
    ) -> AttemptResult:
        """Commit what a coding attempt left uncommitted on its branch, while others still run."""
        try:
            await self.supervisor.runtime(spec).collect(placement)
        except CollectFailed as exc:
            return AttemptResult(
                "failed",
                exit_code=result.exit_code,
                reason=f"its work could not be committed: {exc}",
            )
        return result

    async def _check_findings(
        self, spec: AgentSpec, control: AttemptControl, result: AttemptResult
    ) -> AttemptResult:
        """An audit agent succeeds only if its output validates; bad output is never merged."""
        from corral.core.report.finalize import validate_output

        out_dir = self.ctx.rundir.output_dir(spec.id, control.attempt)
        problem = await asyncio.to_thread(validate_output, out_dir, spec.id, control.attempt)
        if problem is None:
            return result
        await self.emit(ev.FindingsRejected(agent=spec.id, attempt=control.attempt, reason=problem))
        return AttemptResult("failed", exit_code=result.exit_code, reason=problem)

    async def _declared_locks(self, spec: AgentSpec, control: AttemptControl) -> bool:
        """Take the plan's locks before the workspace is made; False if stopped meanwhile.

        Waiting for a lock is not starting, so it counts against no timeout."""
        if not spec.locks:
            return True
        return await self.locks.acquire_declared(
            spec.id,
            control.attempt,
            spec.locks,
            control.changed,
            lambda: control.stop_signal is not None or control.kill_reason is not None,
        )

    async def _settle(self, agent_id: str) -> None:
        """Decide what follows an ended attempt: nothing, a retry, a dead letter or a cancel."""
        cancelled = self.cancelled_by.pop(agent_id, None)
        event = after_attempt(self.state, self.plan, agent_id, cancelled, self.rng)
        if event is not None:
            await self.emit(event)
