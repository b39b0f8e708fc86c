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
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from corral.core.control.protocol import (
    HeartbeatRequest,
    KillRequest,
    LockAcquireRequest,
    LockBreakRequest,
    LockListRequest,
    LockReleaseRequest,
    LockRenewRequest,
    LockRequest,
    OperatorRequest,
    PingRequest,
    PutRequest,
    Request,
    Response,
    RetryRequest,
    StatusRequest,
)
from corral.core.engine.conflict_watch import ConflictWatch
from corral.core.engine.supervisor import (
    AttemptControl,
    AttemptResult,
    RunContext,
    Supervisor,
    environment_redactor,
    redact_outputs,
)
from corral.core.engine.warmup import preload
from corral.core.engine.workspaces import WorkspaceFactory
from corral.core.locks.manager import LockManager
from corral.core.locks.service import answer as answer_lock_request
from corral.core.locks.shared_files import make_shared_dir, shared_dir
from corral.core.log import EventWriter, LogFailed
from corral.core.log import events as ev
from corral.core.log.state import ACTIVE_STATES, TERMINAL_STATES, RunState, apply
from corral.core.plan.model import AgentSpec, Plan, topological_order
from corral.core.runtime.proctree import CpuSampler, Marks, process_start_time, terminate_attempt
from corral.core.trust import authority
from corral.core.trust.integrity import IntegrityWatch
from corral.worktrees.errors import GitError

FAILED_DEPENDENCY_STATES = frozenset({"dead_lettered", "skipped", "cancelled"})
WORKSPACE_PARALLELISM = 2
"""docs/performance.md: worktree checkouts scale to two at a time on two cores, not further."""


def engine_info() -> ev.EngineInfo:
    pid = os.getpid()
    return ev.EngineInfo(
        pid=pid,
        start_time=process_start_time(pid) or time.time(),
        host=socket.gethostname(),
        user=getpass.getuser(),
        inside=authority.enclosing_attempt(),
    )


def backoff_delay(plan: Plan, retries_used: int, rng: random.Random) -> float:
    """Capped exponential backoff with full jitter (uniform between 0 and the cap)."""
    cap = min(plan.run.backoff_max, plan.run.backoff * (2**retries_used))
    return round(rng.uniform(0, cap), 3)


class Engine:
    """Drives a run from its log to the end, or until it is stopped."""

    def __init__(self, ctx: RunContext, log: EventWriter, state: RunState) -> None:
        self.ctx = ctx
        self.plan = ctx.plan
        self.log = log
        self.state = state
        self.order = topological_order(self.plan)
        self.supervisor = Supervisor(
            ctx,
            self.emit,
            workspaces=WorkspaceFactory(
                ctx.repo_top, ctx.worktree_root, ctx.run_id, ctx.snapshot, WORKSPACE_PARALLELISM
            ),
            cpu=CpuSampler(),
            on_all_started=self._preload_once,
        )
        self.controls: dict[str, AttemptControl] = {}
        self.owner = authority.enclosing_attempt()
        """The attempt this engine runs inside, which may operate it (core/trust/authority.py)."""
        self.preloaded = False
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.cancelled_by: dict[str, tuple[str, str]] = {}
        self.stop_signal: int | None = None
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

    async def recover(self, redrive: Sequence[str] = (), by: str = "") -> None:
        """After a resume: stop what the dead engine left running, then settle every agent."""
        await self.emit(
            ev.EngineResumed(engine=engine_info(), repaired_tail=self.log.repaired_tail is not None)
        )
        # Before the running attempts are marked lost: their leases wait out TTL + grace (L6).
        known_dead = LockManager.holders_known_dead(self.state)
        for agent in list(self.state.agents.values()):
            attempt = agent.current
            if agent.state in ACTIVE_STATES and attempt is not None:
                # the same sweep as at every attempt's end: its tree, if logged, and its marks
                found = await terminate_attempt(
                    Marks(run_id=self.ctx.run_id, agent=agent.id, attempt=attempt.number),
                    grace=self.plan.run.kill_grace,
                    pid=attempt.pid,
                    start_time=attempt.proc_start_time,
                )
                await asyncio.to_thread(
                    redact_outputs,
                    environment_redactor(self.plan.agent(agent.id)),
                    self.ctx.rundir.output_log(agent.id, attempt.number),
                    self.ctx.rundir.output_dir(agent.id, attempt.number),
                )
                stopped = (
                    f"; {len(found.signalled)} of its processes were still alive and were stopped"
                    if found.signalled
                    else ""
                )
                await self.emit(
                    ev.AgentFinished(
                        agent=agent.id,
                        attempt=attempt.number,
                        outcome="lost",
                        requeue=True,
                        reason=f"the engine stopped while this attempt ran{stopped}",
                    )
                )
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
        finally:
            if watch is not None and not watch.done():
                watch.cancel()
                await asyncio.gather(watch, return_exceptions=True)
            await self._shutdown()
        return self.state

    def stop(self, signum: int) -> None:
        """SIGINT/SIGTERM: stop every agent tree, record it, and leave the rest for a resume."""
        if self.stop_signal is None:
            self.stop_signal = signum
            for control in self.controls.values():
                control.request_stop(signum)
            self.wake.set()

    async def _shutdown(self) -> None:
        if self.tasks:
            for control in self.controls.values():
                control.request_stop(self.stop_signal or signal.SIGTERM)
            await asyncio.gather(*self.tasks.values(), return_exceptions=True)
        self.supervisor.workspaces.close()
        await self.locks.close()
        if isinstance(self.failure, LogFailed):
            return  # nothing more can be recorded
        try:
            if self.failure is not None:
                await self.emit(ev.EngineStopped(reason=f"failed: {self.failure}"))
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
        """Merge what succeeded (when enough did), write the report, then close the run.

        `run_finished` comes last, so an engine that dies anywhere in here is resumed into
        this step again rather than into a finished run without a report."""
        from corral.core.report.finalize import (
            merge_audit_findings,
            merge_coding_work,
            write_run_report,
        )

        succeeded = self.state.succeeded()
        required = self.state.required_successes
        passed = succeeded >= required
        if passed:
            await merge_coding_work(self.state, self.ctx.rundir, self.plan, self.emit_many)
        # below min_success too: the findings that validated go into a partial report
        findings = await merge_audit_findings(self.state, self.ctx.rundir, self.emit_many)
        await write_run_report(self.state, self.ctx.rundir, findings, self.emit)
        not_ok = [f"{a.id} {a.state}" for a in self.state.agents.values() if a.state != "succeeded"]
        reason = f"{succeeded} of {len(self.state.agents)} agents succeeded; {required} required"
        if not_ok:
            reason += f" ({', '.join(not_ok)})"
        await self.emit(
            ev.RunFinished(
                verdict="passed" if passed else "failed",
                succeeded=succeeded,
                required=required,
                reason=reason,
            )
        )

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
            if await self._declared_locks(spec, control):
                result = await self.supervisor.run_attempt(spec, control)
                if result.outcome == "succeeded" and spec.kind == "audit":
                    result = await self._check_findings(spec, control, result)
                elif result.outcome == "succeeded":
                    result = await self._commit_work(spec, control, result)
            elif control.stop_signal is not None:
                result = self.supervisor.stopped(control)
            else:
                result = AttemptResult("killed", reason=control.kill_reason or "killed")
        except LogFailed as exc:
            self.failure = exc
            result = AttemptResult("lost", reason="the event log failed", requeue=True)
        except Exception as exc:
            result = AttemptResult("failed", reason=f"corral could not run the attempt: {exc!r}")
        try:
            if self.failure is None:
                await self.integrity.attempt_ended(self.state, spec.id, control.attempt)
                await self.locks.end_attempt(spec.id, control.attempt)
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
            self.wake.set()

    async def _commit_work(
        self, spec: AgentSpec, control: AttemptControl, result: AttemptResult
    ) -> AttemptResult:
        """Commit what a coding attempt left uncommitted on its branch, while others still run."""
        from corral.worktrees.integrate import commit_leftovers

        attempt = self.state.agents[spec.id].current
        if attempt is None or not attempt.workspace:
            return result
        try:
            await asyncio.to_thread(
                commit_leftovers,
                Path(attempt.workspace),
                spec.id,
                control.attempt,
                branch=attempt.branch,
            )
        except GitError as exc:
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
        agent = self.state.agents[agent_id]
        attempt = agent.current
        if attempt is None or agent.state in TERMINAL_STATES or attempt.state == "succeeded":
            return
        spec = self.plan.agent(agent_id)
        if agent_id in self.cancelled_by:
            by, reason = self.cancelled_by.pop(agent_id)
            await self.emit(ev.AgentCancelled(agent=agent_id, by=by, reason=reason))
        elif attempt.requeue:
            await self.emit(ev.AgentQueued(agent=agent_id, attempt=attempt.number + 1))
        elif agent.retries_used < spec.retries:
            delay = backoff_delay(self.plan, agent.retries_used, self.rng)
            await self.emit(
                ev.AgentRetried(
                    agent=agent_id,
                    attempt=attempt.number + 1,
                    delay=delay,
                    reason=f"attempt {attempt.number} {attempt.state}: {attempt.reason}",
                )
            )
        else:
            heartbeat = agent.last_heartbeat
            await self.emit(
                ev.AgentDeadLettered(
                    agent=agent_id,
                    attempts=len(agent.attempts),
                    reason=f"attempt {attempt.number} {attempt.state}: {attempt.reason}",
                    last_heartbeat_ts=heartbeat.ts if heartbeat else None,
                    last_message=heartbeat.message if heartbeat else None,
                    log_path=attempt.log_path,
                )
            )

    # -- requests from the control socket --------------------------------------------------

    async def handle(self, request: Request) -> Response:
        match request:
            case PingRequest():
                return Response(ok=True, data={"run_id": self.ctx.run_id, "pid": os.getpid()})
            case StatusRequest():
                return Response(ok=True, data=self.state.model_dump(mode="json"))
            case HeartbeatRequest():
                return await self._heartbeat(request)
            case KillRequest():
                return await self.kill(request.agent, request.by, request.reason)
            case RetryRequest():
                return await self.redrive(request.agent, request.by)
            case LockListRequest() | LockBreakRequest():
                return await self._lock_request(request)
            case LockAcquireRequest() | LockRenewRequest() | LockReleaseRequest() | PutRequest():
                if not self._is_running_attempt(request.agent, request.attempt, request.token):
                    return self._not_running(request.agent, request.attempt)
                return await self._lock_request(request)

    async def refuse_agents(self, request: OperatorRequest, peer: int | None) -> Response | None:
        """docs/reliability.md T1: an operator request sent from inside an attempt is refused and
        logged as that attempt's; None lets a person's request through (control.serve)."""
        run_id, live = self.ctx.run_id, authority.live_attempts(self.state)
        tokens = {c.token: (run_id, c.agent, c.attempt) for c in self.controls.values()}
        caller = await asyncio.to_thread(
            authority.request_caller, request, peer, live, tokens, self.owner
        )
        if caller is None:
            return None
        action, target = authority.describe_request(request)
        try:
            await self.emit(authority.refusal_event(action, target, caller))
        except LogFailed as exc:
            self._log_failed(exc)
        return Response(ok=False, code="denied", error=authority.refusal(action, caller))

    async def _lock_request(self, request: LockRequest) -> Response:
        if isinstance(request, LockAcquireRequest) and request.reason:
            control = self.controls.get(request.agent)
            if control is not None:  # the reason is logged with the grant: no secret goes with it
                reason = control.redactor.redact(request.reason)
                request = request.model_copy(update={"reason": reason})
        try:
            return await answer_lock_request(self.locks, request)
        except LogFailed as exc:
            self._log_failed(exc)  # E3: the engine stops; the agent hears why
            return Response(ok=False, error=f"the engine can no longer record anything: {exc}")

    def _is_running_attempt(self, agent: str, attempt: int, token: str) -> bool:
        control = self.controls.get(agent)
        return control is not None and control.attempt == attempt and control.token == token

    @staticmethod
    def _not_running(agent: str, attempt: int) -> Response:
        return Response(
            ok=False,
            code="denied",
            error=f"no running attempt {agent}#{attempt} with that token",
        )

    async def _heartbeat(self, request: HeartbeatRequest) -> Response:
        control = self.controls.get(request.agent)
        if control is None or not self._is_running_attempt(
            request.agent, request.attempt, request.token
        ):
            return self._not_running(request.agent, request.attempt)
        event = await self.supervisor.agent_beat(control, request.progress, request.message)
        return Response(ok=True, data={"seq": event.seq})

    async def kill(self, agent_id: str, by: str, reason: str) -> Response:
        agent = self.state.agents.get(agent_id)
        if agent is None:
            return Response(ok=False, error=f"no agent {agent_id!r} in this run")
        if agent.state in TERMINAL_STATES:
            return Response(ok=False, error=f"agent {agent_id!r} has already ended ({agent.state})")
        control = self.controls.get(agent_id)
        self.cancelled_by[agent_id] = (by, reason)
        if control is not None:
            control.request_kill(f"killed by {by}" + (f": {reason}" if reason else ""))
        else:
            self.cancelled_by.pop(agent_id)
            await self.emit(ev.AgentCancelled(agent=agent_id, by=by, reason=reason))
            self.wake.set()
        return Response(ok=True, data={"agent": agent_id, "was": agent.state})

    async def redrive(self, agent_id: str, by: str) -> Response:
        agent = self.state.agents.get(agent_id)
        if agent is None:
            return Response(ok=False, error=f"no agent {agent_id!r} in this run")
        if agent.state == "succeeded":
            return Response(ok=False, error=f"agent {agent_id!r} already succeeded")
        if agent_id in self.tasks or agent.state in ACTIVE_STATES:
            return Response(ok=False, error=f"agent {agent_id!r} is running; kill it first")
        if agent.state == "skipped":
            return Response(
                ok=False,
                error=f"agent {agent_id!r} was skipped ({agent.reason}); retry that dependency",
            )
        events: list[ev.EventBase] = [ev.AgentRedriven(agent=agent_id, by=by)]
        events.append(ev.AgentQueued(agent=agent_id, attempt=len(agent.attempts) + 1))
        for dependent in self._skipped_dependents(agent_id):
            events.append(
                ev.AgentQueued(
                    agent=dependent, attempt=len(self.state.agents[dependent].attempts) + 1
                )
            )
        await self.emit_many(events)
        self.wake.set()
        return Response(ok=True, data={"agent": agent_id, "attempt": len(agent.attempts) + 1})

    def _skipped_dependents(self, agent_id: str) -> list[str]:
        """Agents skipped because of `agent_id`, directly or through another skipped agent."""
        found: list[str] = []
        frontier = {agent_id}
        for candidate in self.order:
            spec = self.plan.agent(candidate)
            if self.state.agents[candidate].state == "skipped" and frontier & set(spec.depends_on):
                found.append(candidate)
                frontier.add(candidate)
        return found
