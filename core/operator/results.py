"""What the operator actions return: typed values, so a front end prints or draws them without
reading the engine's reply dictionaries."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Killed:
    """The engine is stopping `agent`; `was` is the state it was in."""

    agent: str
    was: str


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


@dataclass(frozen=True)
class Answered:
    """The agent heard the person's answer to its question."""

    agent: str
    attempt: int
    question_id: str
