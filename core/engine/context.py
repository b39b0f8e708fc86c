"""What the engine's parts share: the run's context, an attempt's control handle and its result."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from corral.core.engine.resizes import ResizeLog
from corral.core.errors import EngineFault
from corral.core.log import events as ev
from corral.core.plan.model import AgentSpec, Plan
from corral.core.presets.schema import Preset
from corral.core.runs.environment import BaseEnvironment
from corral.core.runs.rundir import RunDir
from corral.core.runtime import registry
from corral.core.runtime.base import Execution, Runtime, RuntimeSetup
from corral.core.trust.redact import Redactor

Emit = Callable[[ev.EventBase], Awaitable[ev.Event]]


@dataclass
class AttemptResult:
    outcome: ev.AttemptOutcome
    exit_code: int | None = None
    signal: int | None = None
    reason: str = ""
    requeue: bool = False


@dataclass
class PendingQuestion:
    """A question the attempt asked a person (`ask_human`), until it is answered or closed."""

    question_id: str
    choices: list[str]
    answered: asyncio.Future[tuple[str, str] | None]
    """(answer, who answered), or None when the question closed unanswered."""


@dataclass
class AttemptControl:
    """The engine's handle on a running attempt: requests in, signs of life in."""

    agent: str
    attempt: int
    token: str = field(default_factory=lambda: secrets.token_hex(16))
    stop_deferred: bool = False
    """Its runtime could not reach where it ran to stop it (`Stopped.deferred`): its leases
    are left to run out, not released at its end."""
    kill_reason: str | None = None
    stop_signal: int | None = None
    stop_reason: str = ""
    """Why the engine stopped it, when a person stopped the run (`corral stop`)."""
    last_activity: float = field(default_factory=time.monotonic)
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    redactor: Redactor = field(default_factory=lambda: Redactor({}))
    """The known secrets of the attempt's environment, set when it is built."""
    execution: Execution | None = None
    """The agent's execution, once it is started."""
    resizes: ResizeLog = field(default_factory=ResizeLog)
    """Its terminal's resizes not logged yet (core/engine/resizes.py)."""
    typist: tuple[str, str, float] | None = None
    """Who types into its terminal now: (viewer, person, monotonic time of the last key)."""
    refusals_reported: int = 0
    """Refused operator actions the attempt reported itself (`RefusalReport`), to cap them."""
    output_offset: int = 0
    """Bytes in output.log before the agent started (its setup commands' output): the agent's
    own stream begins there (core/engine/stream_watch.py)."""
    question: PendingQuestion | None = None
    """The question the agent waits on a person for; the liveness watch counts the wait as
    activity, since an agent waiting for a person is rightly silent."""

    paused_since: float | None = None
    """When a person paused it (monotonic), while it is paused."""
    paused_total: float = 0.0
    """Seconds it was paused before, which count against none of its timeouts."""

    def pause(self) -> None:
        self.paused_since = time.monotonic()

    def unpause(self) -> float:
        """It goes on: how long this pause lasted. Its silence starts again from now."""
        since, self.paused_since = self.paused_since, None
        lasted = time.monotonic() - since if since is not None else 0.0
        self.paused_total += lasted
        self.note_activity()
        self.changed.set()
        return lasted

    @property
    def paused(self) -> bool:
        return self.paused_since is not None

    def paused_for(self, now: float) -> float:
        """Seconds paused so far in this attempt, the current pause included."""
        current = now - self.paused_since if self.paused_since is not None else 0.0
        return self.paused_total + current

    def request_kill(self, reason: str) -> None:
        self.kill_reason = reason
        self.changed.set()

    def request_stop(self, signum: int, reason: str = "") -> None:
        self.stop_signal = signum
        self.stop_reason = reason
        self.changed.set()

    def close_question(self) -> None:
        """The attempt ended: whoever waits on its question hears it closed unanswered."""
        pending, self.question = self.question, None
        if pending is not None and not pending.answered.done():
            pending.answered.set_result(None)

    def note_activity(self) -> None:
        self.last_activity = time.monotonic()

    @property
    def interrupted(self) -> bool:
        """Stopped with the engine, or killed: the attempt ends without waiting any longer."""
        return self.stop_signal is not None or self.kill_reason is not None


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
    presets: dict[str, Preset] = field(default_factory=dict)
    """The presets the plan's agents name (their agents are expanded in `plan`)."""

    def runtime_setup(self) -> RuntimeSetup:
        return RuntimeSetup(
            run_id=self.run_id,
            repo_top=self.repo_top,
            snapshot=self.snapshot,
            worktree_root=self.worktree_root,
            rundir=self.rundir.path,
            image=self.image(self.plan.defaults.image),
            sandbox=self.plan.defaults.sandbox,
            hosts=tuple(self.plan.hosts),
            ray=self.plan.run.ray,
        )

    def image(self, text: str | None) -> Path | None:
        """The plan's `image` (an agent's or `[defaults]`) as the directory it names."""
        from corral.core.sandbox.image import resolve_image

        return None if text is None else resolve_image(text, self.repo_top, Path.home())

    def runtime_name(self, spec: AgentSpec) -> str:
        """The agent's own `runtime`, else the run's."""
        return self.plan.runtime_of(spec)


class AttemptFault(EngineFault):
    """An unexpected exception while the engine ran an attempt: a bug in corral (or in a
    runtime), not the agent's failure. The engine stops; the attempt is not retried."""

    def __init__(self, where: str, exc: BaseException) -> None:
        super().__init__(f"engine fault in {where}: {exc!r}")
        self.traceback = "".join(traceback.format_exception(exc)).rstrip()


def reporter(
    emit: Emit, on_failure: Callable[[BaseException], None]
) -> Callable[[ev.EventBase], None]:
    """What a runtime calls, in the engine's loop, to have a fact logged (`RuntimeSetup.report`):
    the event is appended by a task of its own; a failure to append stops the engine."""
    pending: set[asyncio.Task[ev.Event]] = set()

    def done(task: asyncio.Task[ev.Event]) -> None:
        pending.discard(task)
        if not task.cancelled() and task.exception() is not None:
            on_failure(task.exception() or RuntimeError("report failed"))

    async def append(event: ev.EventBase) -> ev.Event:
        return await emit(event)

    def report(event: ev.EventBase) -> None:
        task = asyncio.get_running_loop().create_task(append(event), name="runtime-report")
        pending.add(task)
        task.add_done_callback(done)

    return report


def make_runtimes(
    ctx: RunContext, report: Callable[[ev.EventBase], None] | None = None
) -> dict[str, Runtime]:
    """One instance of every runtime the plan names; raises registry.UnknownRuntime."""
    names = {ctx.plan.run.runtime, *(ctx.runtime_name(spec) for spec in ctx.plan.agents)}
    setup = dataclasses.replace(ctx.runtime_setup(), report=report)
    return {name: registry.make(name, setup) for name in sorted(names)}
