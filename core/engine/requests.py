"""The engine's answers to its control socket: status, heartbeats, kill, retry and locks.

A mixin of the Engine (core/engine/scheduler.py), kept apart because it is the engine's other
face: what agents and operators ask, each answered from the folded state the log holds.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Sequence

from corral.core.control.protocol import (
    AnswerRequest,
    AskHumanRequest,
    HeartbeatRequest,
    InputRequest,
    KillRequest,
    LockAcquireRequest,
    LockBreakRequest,
    LockListRequest,
    LockReleaseRequest,
    LockRenewRequest,
    LockRequest,
    OperatorRequest,
    PauseRequest,
    PingRequest,
    PutRequest,
    RefusalReport,
    Request,
    ResizeRequest,
    Response,
    RetryRequest,
    StatusRequest,
    StopRequest,
    UnpauseRequest,
)
from corral.core.engine.context import AttemptControl, PendingQuestion, RunContext
from corral.core.engine.supervisor import Supervisor
from corral.core.locks.manager import LockManager
from corral.core.locks.service import answer as answer_lock_request
from corral.core.log import LogFailed
from corral.core.log import events as ev
from corral.core.log.state import ACTIVE_STATES, TERMINAL_STATES, RunState
from corral.core.plan.model import AgentSpec, Plan
from corral.core.runtime.agent_input import InputRefused, encode_input
from corral.core.runtime.base import AgentInput, Pausable, TerminalInput
from corral.core.runtime.pty_io import typed_line
from corral.core.trust import authority

TYPIST_HOLD = 5.0
"""Seconds after a viewer's last key during which a terminal agent takes keys from it alone."""
MAX_LOGGED_INPUT = 4000
"""Characters of a sent input the log keeps: events stay small (a paste may be 16000)."""

PAUSABLE_STATES = ACTIVE_STATES - {"starting"}
"""An agent can be paused once its command runs (not while its workspace is made)."""
MAX_REPORTED_REFUSALS = 20
"""Refusals an attempt may report itself (`RefusalReport`) before the engine stops logging
them: enough to see what it tried, too few to flood the log."""


class ControlRequests:
    """What the Engine answers on its socket; the attributes are the Engine's."""

    ctx: RunContext
    plan: Plan
    state: RunState
    order: list[str]
    owner: str | None
    controls: dict[str, AttemptControl]
    ended_tokens: dict[tuple[str, int], str]
    tasks: dict[str, asyncio.Task[None]]
    cancelled_by: dict[str, tuple[str, str]]
    wake: asyncio.Event
    locks: LockManager
    supervisor: Supervisor

    async def emit(self, event: ev.EventBase) -> ev.Event:
        raise NotImplementedError

    async def emit_many(self, events: Sequence[ev.EventBase]) -> None:
        raise NotImplementedError

    def _log_failed(self, exc: BaseException) -> None:
        raise NotImplementedError

    def stop_by(self, by: str, reason: str) -> bool:
        raise NotImplementedError

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
            case StopRequest():
                return self.stop_run(request.by, request.reason)
            case PauseRequest():
                return await self.pause(request.agent, request.by)
            case UnpauseRequest():
                return await self.unpause(request.agent, request.by)
            case RetryRequest():
                return await self.redrive(request.agent, request.by)
            case InputRequest():
                return await self.send_input(
                    request.agent, request.by, request.text, raw=request.raw, client=request.client
                )
            case ResizeRequest():
                return await self.resize(request.agent, request.cols, request.rows, request.by)
            case LockListRequest() | LockBreakRequest():
                return await self._lock_request(request)
            case RefusalReport():
                return await self._refusal_report(request)
            case PutRequest() if self._was_attempt(request.agent, request.attempt, request.token):
                # a late write of an attempt that is over (a host back after a partition): the
                # lock manager refuses it by its fencing token and records the refusal (T7)
                return await self._lock_request(request)
            case LockAcquireRequest() | LockRenewRequest() | LockReleaseRequest() | PutRequest():
                if not self._is_running_attempt(request.agent, request.attempt, request.token):
                    return self._not_running(request.agent, request.attempt)
                return await self._lock_request(request)
            case AskHumanRequest():
                if not self._is_running_attempt(request.agent, request.attempt, request.token):
                    return self._not_running(request.agent, request.attempt)
                return await self._ask_human(self.controls[request.agent], request)
            case AnswerRequest():
                return await self.answer(request)

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

    async def _refusal_report(self, request: RefusalReport) -> Response:
        """docs/reliability.md T1 for a target the attempt cannot see: its own report of the
        refusal, logged as the attempt's. The token says which attempt sent it, so no agent can
        report in another's name; nothing but the event comes of it."""
        control = self.controls.get(request.agent)
        if control is None or not self._is_running_attempt(
            request.agent, request.attempt, request.token
        ):
            return self._not_running(request.agent, request.attempt)
        if control.refusals_reported >= MAX_REPORTED_REFUSALS:
            return Response(ok=True, data={"recorded": False})
        control.refusals_reported += 1
        evidence = (
            "it carries that attempt's token (reported by the attempt, which cannot see the run)"
        )
        caller = authority.Caller(self.ctx.run_id, request.agent, request.attempt, evidence)
        try:
            event = await self.emit(authority.refusal_event(request.action, request.target, caller))
        except LogFailed as exc:
            self._log_failed(exc)
            return Response(ok=False, error=f"the engine can no longer record anything: {exc}")
        return Response(ok=True, data={"recorded": True, "seq": event.seq})

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

    def _was_attempt(self, agent: str, attempt: int, token: str) -> bool:
        return self.ended_tokens.get((agent, attempt)) == token

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

    async def _ask_human(self, control: AttemptControl, request: AskHumanRequest) -> Response:
        """Record the question (the agent is `waiting_for_human`), wait for a person's answer
        up to the request's timeout. Asking again with the same id waits on the same question
        (a client whose connection dropped); a new id replaces an open question."""
        pending = control.question
        if pending is None or pending.question_id != request.question_id:
            if pending is not None:
                await self._unanswered(control, pending, "a newer question replaced it")
            pending = PendingQuestion(
                request.question_id,
                list(request.choices),
                asyncio.get_running_loop().create_future(),
            )
            control.question = pending
            await self.emit(
                ev.HumanAsked(
                    agent=control.agent,
                    attempt=control.attempt,
                    question_id=request.question_id,
                    question=control.redactor.redact(request.question),
                    choices=[control.redactor.redact(choice) for choice in request.choices],
                    timeout=request.timeout,
                )
            )
        try:
            got = await asyncio.wait_for(asyncio.shield(pending.answered), request.timeout)
        except TimeoutError:
            reason = f"no answer within {request.timeout:g}s"
            if control.question is pending:
                await self._unanswered(control, pending, reason)
            return Response(ok=True, data={"answered": False, "reason": reason})
        if got is None:
            return Response(ok=True, data={"answered": False, "reason": "the question was closed"})
        answer, by = got
        return Response(ok=True, data={"answered": True, "answer": answer, "by": by})

    async def _unanswered(
        self, control: AttemptControl, pending: PendingQuestion, reason: str
    ) -> None:
        control.question = None
        if not pending.answered.done():
            pending.answered.set_result(None)
        await self.emit(
            ev.HumanUnanswered(
                agent=control.agent,
                attempt=control.attempt,
                question_id=pending.question_id,
                reason=reason,
            )
        )

    async def answer(self, request: AnswerRequest) -> Response:
        """A person's answer to the question `request.agent` waits on (the guard let it in)."""
        if request.agent not in self.state.agents:
            return Response(ok=False, error=f"no agent {request.agent!r} in this run")
        control = self.controls.get(request.agent)
        pending = control.question if control is not None else None
        if control is None or pending is None:
            return Response(
                ok=False,
                code="invalid",
                error=f"agent {request.agent!r} is not waiting for an answer",
            )
        if request.question_id is not None and request.question_id != pending.question_id:
            return Response(
                ok=False,
                code="invalid",
                error=f"agent {request.agent!r} now waits on another question; read it and answer again",
            )
        if pending.choices and request.text not in pending.choices:
            return Response(
                ok=False,
                code="invalid",
                error=f"answer one of: {', '.join(pending.choices)}",
            )
        control.question = None
        await self.emit(
            ev.HumanAnswered(
                agent=control.agent,
                attempt=control.attempt,
                question_id=pending.question_id,
                answer=control.redactor.redact(request.text),
                by=request.by,
            )
        )
        if not pending.answered.done():
            pending.answered.set_result((request.text, request.by))
        return Response(
            ok=True,
            data={
                "agent": control.agent,
                "attempt": control.attempt,
                "question_id": pending.question_id,
            },
        )

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

    def stop_run(self, by: str, reason: str) -> Response:
        """A person's stop of the whole run: as SIGTERM, with who asked recorded; the answer
        names the agents whose trees are being stopped."""
        running = [a for a in self.order if self.state.agents[a].state in ACTIVE_STATES]
        if not self.stop_by(by, reason):
            return Response(ok=False, code="invalid", error="the run is already stopping")
        return Response(ok=True, data={"run_id": self.ctx.run_id, "running": running})

    def _pausable(self, agent_id: str) -> tuple[AttemptControl, Pausable] | Response:
        """The running attempt of `agent_id` and its pausable execution, or why not."""
        agent = self.state.agents.get(agent_id)
        if agent is None:
            return Response(ok=False, error=f"no agent {agent_id!r} in this run")
        control = self.controls.get(agent_id)
        execution = control.execution if control is not None else None
        if agent.state not in PAUSABLE_STATES or control is None or execution is None:
            return Response(
                ok=False, code="invalid", error=f"agent {agent_id!r} is not running ({agent.state})"
            )
        if not isinstance(execution, Pausable):
            runtime = execution.identity.runtime
            return Response(
                ok=False,
                code="invalid",
                error=f"agent {agent_id!r} runs on the {runtime!r} runtime, which cannot pause",
            )
        return control, execution

    async def pause(self, agent_id: str, by: str) -> Response:
        """SIGSTOP the agent's whole tree; its timeouts stand still until `unpause`."""
        found = self._pausable(agent_id)
        if isinstance(found, Response):
            return found
        control, execution = found
        if control.paused:
            return Response(ok=False, code="invalid", error=f"agent {agent_id!r} is already paused")
        control.pause()  # first: the watch must not count the time the freeze takes
        processes = await execution.pause()
        await self.emit(
            ev.AgentPaused(agent=agent_id, attempt=control.attempt, by=by, processes=processes)
        )
        return Response(
            ok=True, data={"agent": agent_id, "attempt": control.attempt, "processes": processes}
        )

    async def unpause(self, agent_id: str, by: str) -> Response:
        """SIGCONT what `pause` stopped; its timeouts run again from where they stood."""
        found = self._pausable(agent_id)
        if isinstance(found, Response):
            return found
        control, execution = found
        if not control.paused:
            return Response(ok=False, code="invalid", error=f"agent {agent_id!r} is not paused")
        await execution.resume()
        lasted = control.unpause()
        await self.emit(
            ev.AgentResumed(
                agent=agent_id, attempt=control.attempt, by=by, paused_for=round(lasted, 3)
            )
        )
        return Response(
            ok=True, data={"agent": agent_id, "attempt": control.attempt, "paused_for": lasted}
        )

    async def send_input(
        self, agent_id: str, by: str, text: str, *, raw: bool = False, client: str | None = None
    ) -> Response:
        """A person's message to a running agent's stdin, in its `input_format`, then logged;
        to a `tty` agent it is typed and Enter pressed. `raw`: keystrokes written as is (a
        terminal agent's only)."""
        found = self._input_channel(agent_id)
        if isinstance(found, Response):
            return found
        spec, control, channel = found
        if raw and not spec.tty:
            return Response(
                ok=False,
                code="invalid",
                error=f"agent {agent_id!r} has no terminal (its plan sets no tty): send it a "
                "message instead",
            )
        if raw:
            busy = self._typist_busy(agent_id, control, by, client)
            if busy is not None:
                return busy
        try:
            if raw:
                channel.send(text.encode())
            elif spec.tty or spec.input_format is None:
                channel.send(typed_line(text))
            else:
                channel.send(encode_input(spec.input_format, text))
        except InputRefused as exc:
            return Response(ok=False, code="refused", error=f"agent {agent_id!r}: {exc}")
        control.note_activity()
        logged = text[:MAX_LOGGED_INPUT]
        await self.emit(
            ev.AgentInputSent(
                agent=agent_id,
                attempt=control.attempt,
                by=by,
                text=logged,
                raw=raw,
                truncated=len(logged) < len(text),
            )
        )
        return Response(ok=True, data={"agent": agent_id, "attempt": control.attempt})

    @staticmethod
    def _typist_busy(
        agent_id: str, control: AttemptControl, by: str, client: str | None
    ) -> Response | None:
        """One typist at a time on a terminal: keys from another viewer are refused until the
        one typing has been quiet for TYPIST_HOLD seconds (then the keyboard is the next one's)."""
        me = f"{by}/{client or ''}"
        now = time.monotonic()
        held = control.typist
        if held is not None and held[0] != me and now - held[2] < TYPIST_HOLD:
            return Response(
                ok=False,
                code="busy",
                error=f"{held[1]} is typing into {agent_id}; the keyboard is yours "
                f"{TYPIST_HOLD:g}s after they stop",
            )
        control.typist = (me, by, now)
        return None

    async def resize(self, agent_id: str, cols: int, rows: int, by: str = "") -> Response:
        """A terminal agent's new size (SIGWINCH) at once; logged with who, once per burst
        (core/engine/resizes.py)."""
        found = self._input_channel(agent_id)
        if isinstance(found, Response):
            return found
        spec, control, channel = found
        if not spec.tty or not isinstance(channel, TerminalInput):
            return Response(
                ok=False,
                code="invalid",
                error=f"agent {agent_id!r} has no terminal (its plan sets no tty)",
            )
        try:
            channel.resize(cols, rows)
        except InputRefused as exc:
            return Response(ok=False, code="refused", error=f"agent {agent_id!r}: {exc}")
        log = control.resizes
        if log.size is None and spec.tty_size is not None:
            log.size = (spec.tty_size[0], spec.tty_size[1])
        log.resized(cols, rows, by, lambda: self._burst_over(control))
        return Response(
            ok=True,
            data={"agent": agent_id, "attempt": control.attempt, "cols": cols, "rows": rows},
        )

    def _burst_over(self, control: AttemptControl) -> None:
        control.resizes.task = asyncio.create_task(self.log_resize(control))

    async def log_resize(self, control: AttemptControl) -> None:
        """Log the attempt's last resize of a burst (none when it changed nothing)."""
        pending = control.resizes.take()
        if pending is None:
            return
        event = ev.AgentResized(
            agent=control.agent,
            attempt=control.attempt,
            by=pending.by,
            cols=pending.cols,
            rows=pending.rows,
        )
        try:
            await self.emit(event)
        except LogFailed as exc:
            self._log_failed(exc)

    def _input_channel(
        self, agent_id: str
    ) -> tuple[AgentSpec, AttemptControl, AgentInput] | Response:
        """A running agent's input as this engine holds it, or the refusal that says why not."""
        spec = next((s for s in self.plan.agents if s.id == agent_id), None)
        agent = self.state.agents.get(agent_id)
        if spec is None or agent is None:
            return Response(ok=False, error=f"no agent {agent_id!r} in this run")
        if spec.input_format is None and not spec.tty:
            return Response(
                ok=False,
                error=f"agent {agent_id!r} takes no input while it runs (its plan sets no "
                "input_format and no tty)",
            )
        control = self.controls.get(agent_id)
        execution = control.execution if control is not None else None
        if agent.state not in ACTIVE_STATES or control is None or execution is None:
            return Response(ok=False, error=f"agent {agent_id!r} is not running ({agent.state})")
        channel = execution.input
        if channel is None:
            return Response(
                ok=False,
                error=f"agent {agent_id!r}'s input was lost when the engine restarted; "
                "kill and retry it to talk to it again",
            )
        return spec, control, channel

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
