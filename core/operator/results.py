"""What the operator actions return: typed values, so a front end prints or draws them without
reading the engine's reply dictionaries."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field

from corral.core.sandbox.policy import SandboxPolicy


@dataclass(frozen=True)
class Killed:
    """The engine is stopping `agent`; `was` is the state it was in."""

    agent: str
    was: str


@dataclass(frozen=True)
class Stopped:
    """The engine of `run_id` is stopping the run; `running` are the agents whose trees it
    stops (each attempt is requeued, as after SIGTERM)."""

    run_id: str
    running: tuple[str, ...]


@dataclass(frozen=True)
class Paused:
    """`agent`'s attempt `attempt` is paused (`processes` stopped) or goes on again
    (`paused_for` seconds after it was paused)."""

    agent: str
    attempt: int
    processes: int = 0
    paused_for: float = 0.0


@dataclass(frozen=True)
class InputSent:
    """The message reached `agent`'s attempt `attempt` (its stdin)."""

    agent: str
    attempt: int


@dataclass(frozen=True)
class Resized:
    """`agent`'s terminal (attempt `attempt`) is now `cols` x `rows`."""

    agent: str
    attempt: int
    cols: int
    rows: int


@dataclass(frozen=True)
class LockBroken:
    """The lease taken away: whose it was and its token, now stale."""

    lock: str
    agent: str
    attempt: int | None
    token: int | None


@dataclass(frozen=True)
class Started:
    """An engine runs the run in the background and answers on its socket."""

    run_id: str
    pid: int
    warnings: tuple[str, ...] = ()
    """The plan's preflight warnings (a new run only)."""


@dataclass(frozen=True)
class OutputLog:
    """Where one attempt of an agent writes its output."""

    agent: str
    attempt: int
    path: Path


@dataclass(frozen=True)
class Retried:
    """What a retry did: the live engine queued `attempt`, or an engine was resumed for it
    (`resumed_pid`)."""

    agent: str
    attempt: int | None = None
    resumed_pid: int | None = None


class AgentRuntime(BaseModel):
    """Where an agent runs and, when sandboxed, what it may reach (docs/reliability.md T6): the
    console's agent detail and `corral status` (`runtimes` in `--json`) show it."""

    agent: str
    runtime: str
    """The agent's `runtime` in the plan, else the run's (`local`, `sandbox`, a plugin's)."""
    sandboxed: bool
    policy: SandboxPolicy | None = None
    """The agent's sandbox policy as the plan wrote it (the default when it wrote none); None
    when it is not sandboxed."""
    summary: list[str] = Field(default_factory=list)
    """The policy in a few short facts (core/sandbox/policy.py `summary`)."""


@dataclass(frozen=True)
class Answered:
    """The agent heard the person's answer to its question."""

    agent: str
    attempt: int
    question_id: str
