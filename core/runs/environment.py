"""The environment a run's agents start from, recorded when the run starts, for every resume.

An agent's environment is the engine's own, the plan's `env`, then corral's variables
(supervisor.agent_environment). A resumed engine runs in whatever shell resumed it (a console,
`corral retry` from another terminal), so without a record its agents would get that shell's
environment: `corral demo` sets `DEMO_TOOLS` in its engine, and an agent retried from a shell
without it failed. So the engine's environment at run start is written to `environment.json` in
the run directory (0600, in the 0700 run directory), and every attempt, resumed or not, starts
from it.

Invariants:
- No secret value is ever written. A variable is a secret when core/trust/redact.py says so (its name,
  or credentials in a URL value) or when a plan agent takes it `from_env`; the record keeps only
  its name, and its value is read again from the resuming engine's environment. An attempt whose
  secret is not set there fails naming the variable, the same way a missing `from_env` does.
- Variables of the login session (SESSION_VARIABLES: the ssh agent's socket, the display) point
  at live resources of the session that runs the engine, so they are never recorded: each resume
  takes them from its own environment, when it has them.
- `CORRAL_*` is corral's own namespace for the agent: never recorded.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from corral.core.atomic import write_atomic
from corral.core.errors import InputError
from corral.core.plan.model import FromEnv, Plan
from corral.core.trust.redact import is_secret

SESSION_VARIABLES = frozenset(
    {
        "SSH_AUTH_SOCK",
        "SSH_AGENT_PID",
        "SSH_CONNECTION",
        "SSH_CLIENT",
        "SSH_TTY",
        "DISPLAY",
        "WAYLAND_DISPLAY",
        "XAUTHORITY",
        "DBUS_SESSION_BUS_ADDRESS",
        "XDG_RUNTIME_DIR",
        "XDG_SESSION_ID",
        "TMUX",
        "TMUX_PANE",
        "WINDOWID",
    }
)
"""Variables that name the current login session's resources, taken afresh on every resume."""
RECORD_LIMIT = 8 << 20
"""A record larger than this is not an environment corral wrote."""


class RecordedEnvironment(BaseModel):
    """`environment.json`: the engine's environment at run start, secrets by name only."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    format: Literal["corral-environment"] = "corral-environment"
    version: Literal[1] = 1
    values: dict[str, str]
    """Every variable that is not a secret, a session variable or corral's own, with its value."""
    secrets: list[str]
    """Names of the secrets the engine had: their values are read again on resume."""


class EnvironmentRecordError(InputError):
    """`environment.json` of a run cannot be read or is not one corral wrote."""


@dataclass(frozen=True)
class BaseEnvironment:
    """What an attempt's environment starts from: the record, its secrets re-read now."""

    values: Mapping[str, str]
    missing: tuple[str, ...] = ()
    """Secrets of the record that the engine's environment lacks now (after a resume)."""

    def problem(self, run_id: str) -> str | None:
        """Why no attempt can start, naming each missing variable; None when nothing is missing."""
        if not self.missing:
            return None
        names = ", ".join(self.missing)
        return (
            f"{names} (set when run {run_id} started; corral keeps secrets by name only) "
            f"{'is' if len(self.missing) == 1 else 'are'} not set in the environment the engine "
            "was resumed from; export it and retry the agent"
        )


def plan_references(plan: Plan) -> set[str]:
    """The variables any agent of `plan` takes `from_env`: secrets by declaration."""
    return {
        value.from_env
        for spec in plan.agents
        for value in spec.env.values()
        if isinstance(value, FromEnv)
    }


def record(environ: Mapping[str, str], plan: Plan) -> RecordedEnvironment:
    """The record of `environ` as the engine's environment for `plan`'s agents."""
    declared = plan_references(plan)
    values: dict[str, str] = {}
    secrets: list[str] = []
    for name, value in sorted(environ.items()):
        if name.startswith("CORRAL_") or name in SESSION_VARIABLES:
            continue
        if name in declared or is_secret(name, value):
            secrets.append(name)
        else:
            values[name] = value
    return RecordedEnvironment(values=values, secrets=secrets)


def write_record(path: Path, recorded: RecordedEnvironment) -> None:
    write_atomic(path, recorded.model_dump_json(indent=1).encode(), mode=0o600)


def read_record(path: Path) -> RecordedEnvironment | None:
    """The record at `path`; None when there is none (a run started by an older corral).

    Never follows a symlink: the run directory is inside `.git`, which agents can write.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise EnvironmentRecordError(
            f"{path} cannot be read ({exc.strerror}); it must be a plain file corral wrote"
        ) from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > RECORD_LIMIT:
            raise EnvironmentRecordError(f"{path} is not a file corral wrote; remove it to resume")
        data = b""
        while chunk := os.read(fd, 1 << 20):
            data += chunk
    finally:
        os.close(fd)
    try:
        return RecordedEnvironment.model_validate_json(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "the file"
        raise EnvironmentRecordError(
            f"{path} is not a valid corral environment record ({where}: {first['msg']}); "
            "restore it, or remove it to resume with the current environment"
        ) from None


def base_environment(recorded: RecordedEnvironment, environ: Mapping[str, str]) -> BaseEnvironment:
    """The record's values, its secrets read from `environ`, and `environ`'s session variables."""
    values = dict(recorded.values)
    missing = []
    for name in recorded.secrets:
        if name in environ:
            values[name] = environ[name]
        else:
            missing.append(name)
    values.update({name: environ[name] for name in SESSION_VARIABLES if name in environ})
    return BaseEnvironment(values=values, missing=tuple(missing))
