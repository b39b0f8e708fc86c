"""The plan: what a run does, read from TOML and validated before anything starts.

Every problem is reported at once, each naming the agent, the field and the fix, so a user
fixes a plan in one pass instead of one error per attempt.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from corral.core.errors import InputError
from corral.core.plan.durations import parse_duration, positive_duration

Duration = Annotated[float, BeforeValidator(parse_duration)]
"""Finite seconds, 0 to durations.MAX_DURATION."""
PositiveDuration = Annotated[float, BeforeValidator(positive_duration)]
"""A limit a zero would end at once: more than 0, finite, at most durations.MAX_DURATION."""
AGENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$"
AgentId = Annotated[str, StringConstraints(pattern=AGENT_ID_PATTERN)]


def _exec_argument(value: str) -> str:
    if "\0" in value:
        raise ValueError(f"{value!r} holds a NUL byte, which exec cannot pass to a program")
    return value


Command = Annotated[list[Annotated[str, AfterValidator(_exec_argument)]], Field(min_length=1)]
RESERVED_IDS = frozenset({"integration"})
LOCK_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$"
"""A lock names a shared resource: letters, digits and `._:-`, at most 100 characters."""
LockName = Annotated[str, StringConstraints(pattern=LOCK_NAME_PATTERN)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _relative_path(value: object) -> str:
    """Files copied into a workspace must stay inside it."""
    if not isinstance(value, str):
        raise ValueError(f'{value!r} is not a path; write it as a string, e.g. ".env"')
    path = Path(value)
    if path.is_absolute() or ".." in path.parts or not value.strip():
        raise ValueError(f"{value!r} must be a path relative to the repository, without '..'")
    return value


RelativePath = Annotated[str, BeforeValidator(_relative_path)]
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"


class FromEnv(_Strict):
    """`{ from_env = "NAME" }`: the value of corral's own variable NAME, read when the agent starts.

    A secret passed this way is never written into the plan, the run directory or an event, and
    its value is redacted from what the agent prints (core/trust/redact.py)."""

    from_env: Annotated[str, StringConstraints(pattern=ENV_NAME_PATTERN)]


EnvValue = str | FromEnv


def resolve_env(
    env: Mapping[str, EnvValue], environ: Mapping[str, str]
) -> tuple[dict[str, str], dict[str, str]]:
    """The plan's variables with each `from_env` read from `environ`, and the ones not set there
    (the plan's key to the variable it names)."""
    resolved: dict[str, str] = {}
    missing: dict[str, str] = {}
    for key, value in env.items():
        if isinstance(value, str):
            resolved[key] = value
        elif value.from_env in environ:
            resolved[key] = environ[value.from_env]
        else:
            missing[key] = value.from_env
    return resolved, missing


def env_references(env: Mapping[str, EnvValue]) -> list[str]:
    """The keys whose value is passed by reference: secrets by declaration."""
    return [key for key, value in env.items() if isinstance(value, FromEnv)]


class AgentDefaults(_Strict):
    """Values every `[[agent]]` inherits unless it sets its own."""

    kind: Literal["coding", "audit"] = "coding"
    """`coding` agents change code (their branch is merged); `audit` agents report findings."""
    timeout: PositiveDuration = 3600.0
    """Total wall time of one attempt, setup included."""
    heartbeat_timeout: PositiveDuration = 300.0
    """Silence (no heartbeat, no output, no CPU) after which an attempt is hung and killed."""
    start_timeout: PositiveDuration = 600.0
    """Time allowed for the workspace and the `setup` commands before the agent starts."""
    retries: int = Field(default=0, ge=0, le=50)
    """Further attempts after a failed one (so `retries = 2` means up to three attempts)."""
    env: dict[str, EnvValue] = Field(default_factory=dict)
    """Extra environment variables for the agent and its setup commands: a text, or
    `{ from_env = "NAME" }` to pass a secret by reference (see FromEnv)."""
    setup: list[Command] = Field(default_factory=list)
    """Commands run in the new workspace, in order, before the agent starts."""
    copy_files: list[RelativePath] = Field(default_factory=list, alias="copy")
    """Untracked files (such as `.env`) copied from the repository into the workspace."""
    workspace: Literal["worktree"] = "worktree"
    """Where the agent runs: a git worktree of the snapshot commit."""
    locks: list[LockName] = Field(default_factory=list)
    """Shared resources (e.g. `["db", "port-8080"]`) the engine acquires before the agent starts
    and releases when the attempt ends. Every agent's set is taken in one global (sorted) order,
    so two agents can never deadlock on them."""

    @field_validator("env")
    @classmethod
    def _env_exec_can_take(cls, value: dict[str, EnvValue]) -> dict[str, EnvValue]:
        """The operating system cannot pass a name with `=` or NUL, or a value with NUL."""
        for key, item in value.items():
            if not key or "=" in key or "\0" in key:
                raise ValueError(
                    f"{key!r} cannot be an environment variable name (empty, or holds '=' or "
                    "NUL); use letters, digits and '_'"
                )
            if isinstance(item, str) and "\0" in item:
                raise ValueError(f"the value of {key!r} holds a NUL byte, which exec cannot pass")
        return value

    @field_validator("locks")
    @classmethod
    def _locks_unique(cls, value: list[str]) -> list[str]:
        doubled = sorted({name for name in value if value.count(name) > 1})
        if doubled:
            raise ValueError(f"names {', '.join(doubled)} more than once; list each lock once")
        return value

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class AgentSpec(AgentDefaults):
    """One agent of the plan."""

    id: AgentId
    """Unique name: letters, digits, `-` and `_`; used in branch names and on screen."""
    command: Command
    """The program and its arguments, e.g. `["ruff", "check", "."]`."""
    depends_on: list[AgentId] = Field(default_factory=list)
    """Agents that must succeed before this one starts."""

    @field_validator("command", mode="before")
    @classmethod
    def _command_is_a_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError(
                f"command must be a list of arguments, e.g. {value.split()!r}; "
                f'for a shell line write ["sh", "-c", {value!r}]'
            )
        return value


class RunSettings(_Strict):
    """The `[run]` table."""

    name: str = Field(default="", max_length=80)
    """A label for people; the run id stays unique on its own."""
    repo: Path | None = None
    """The repository, relative to the plan file; default: the repository of the current directory."""
    base: str | None = None
    """Branch or commit every agent starts from; default: the repository's current branch."""
    max_parallel: int = Field(default=4, ge=1, le=1000)
    """At most this many agents run at once."""
    stagger: Duration = 0.0
    """Pause between two agent starts (with jitter of half either way), to spread load."""
    min_success: int | str = "100%"
    """Agents that must succeed for the run to pass: a count or a percentage such as `"80%"`."""
    backoff: Duration = 1.0
    """First retry delay; doubles each attempt, capped by `backoff_max`, with full jitter."""
    backoff_max: Duration = 60.0
    """Longest retry delay."""
    kill_grace: Duration = 5.0
    """Time between SIGTERM and SIGKILL when an agent is stopped."""
    lock_grace: Duration = 2.0
    """How long past its TTL an unrenewed lease is still honoured before the engine reclaims it
    (and, after an engine restart, past the end the log shows): covers clock drift and pauses."""
    require_distinct_reviewer: bool = False
    """Whoever started the run may not approve its report."""
    verify: list[str] | None = None
    """A command (the project's tests) run on the integration result, e.g. `["pytest", "-q"]`."""
    verify_timeout: PositiveDuration = 1800.0
    """Longest the `verify` command may run."""
    conflict_interval: PositiveDuration = 3.0
    """How often running coding agents' work is checked for conflicts with each other."""

    @field_validator("min_success")
    @classmethod
    def _min_success_form(cls, value: int | str) -> int | str:
        if isinstance(value, int):
            if value < 0:
                raise ValueError("min_success must be 0 or more")
            return value
        text = value.strip()
        if not text.endswith("%"):
            raise ValueError(f"{value!r}: write a count such as 3 or a percentage such as '80%'")
        try:
            percent = float(text[:-1])
        except ValueError:
            raise ValueError(f"{value!r}: write a percentage such as '80%'") from None
        if not 0 <= percent <= 100:
            raise ValueError(f"{value!r}: a percentage must be between 0% and 100%")
        return text


class Plan(_Strict):
    """A whole plan: run settings, agent defaults and the agents."""

    run: RunSettings = Field(default_factory=RunSettings)
    defaults: AgentDefaults = Field(default_factory=AgentDefaults)
    agents: list[AgentSpec] = Field(alias="agent", min_length=1)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def agent(self, agent_id: str) -> AgentSpec:
        for spec in self.agents:
            if spec.id == agent_id:
                return spec
        raise KeyError(agent_id)

    def required_successes(self) -> int:
        """`min_success` as a number of agents."""
        value = self.run.min_success
        if isinstance(value, int):
            return value
        return math.ceil(len(self.agents) * float(value[:-1]) / 100 - 1e-9)


class PlanProblem(BaseModel):
    """One thing wrong with a plan, said so that a person can fix it."""

    where: str
    """`run`, `defaults`, `agent 'lint'` or the file itself."""
    field: str = ""
    message: str

    def __str__(self) -> str:
        field = f" {self.field}:" if self.field else ""
        return f"{self.where}:{field} {self.message}"


class PlanError(InputError):
    """A plan that cannot run; carries every problem found."""

    def __init__(self, source: str, problems: list[PlanProblem]) -> None:
        self.source = source
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"{source}: the plan is invalid ({len(problems)} problem(s)):\n{lines}")


def parse_plan(data: dict[str, Any], source: str = "plan") -> Plan:
    """Validate plan data (already read from TOML): schema first, then the agent graph."""
    merged = _apply_defaults(data)
    try:
        plan = Plan.model_validate(merged)
    except ValidationError as exc:
        raise PlanError(source, _describe(exc, merged)) from None
    problems = list(check_graph(plan))
    if problems:
        raise PlanError(source, problems)
    return plan


def load_plan(path: Path) -> Plan:
    """Read and validate a plan file."""
    source = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise PlanError(source, [PlanProblem(where=source, message="no such file")]) from None
    except OSError as exc:
        raise PlanError(
            source, [PlanProblem(where=source, message=exc.strerror or str(exc))]
        ) from None
    too_deep = PlanProblem(
        where=source,
        message="nests arrays or tables too deeply to be read; a plan needs a few levels at most",
    )
    try:
        text = raw.decode("utf-8")
        if _DEEP_KEY.search(text):
            raise PlanError(source, [too_deep])  # before the reader: it is quadratic in this
        data = tomllib.loads(text)
    except UnicodeDecodeError:
        problem = PlanProblem(where=source, message="is not UTF-8 text; save it as UTF-8")
        raise PlanError(source, [problem]) from None
    except tomllib.TOMLDecodeError as exc:
        problem = PlanProblem(
            where=source, message=f"is not valid TOML ({exc}); fix the syntax there"
        )
        raise PlanError(source, [problem]) from None
    except RecursionError:  # the reader recurses once per nested array or inline table
        raise PlanError(source, [too_deep]) from None
    return parse_plan(data, source)


MAX_KEY_DEPTH = 64
_KEY_PART = r"""(?:[A-Za-z0-9_-]++|"[^"\n]*+"|'[^'\n]*+')[ \t]*+\.[ \t]*+"""
_DEEP_KEY = re.compile(rf"""(?<![\w"'-])(?:{_KEY_PART}){{{MAX_KEY_DEPTH}}}""")
"""A dotted key of more than MAX_KEY_DEPTH parts (`a.a.a...`): tomllib takes time and memory
quadratic in its depth (1.5 GB for 20,000 parts). Possessive, and anchored at the start of a
part, so that the search stays linear in the plan's length."""


def _apply_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """Fill each agent table from `[defaults]` so that the agent model sees complete tables."""
    defaults = data.get("defaults")
    agents = data.get("agent")
    if not isinstance(defaults, dict) or not isinstance(agents, list):
        return data
    merged_agents = [
        {**defaults, **agent} if isinstance(agent, dict) else agent for agent in agents
    ]
    return {**data, "agent": merged_agents}


def check_graph(plan: Plan) -> Iterable[PlanProblem]:
    """Ids unique and not reserved, dependencies known, no cycle, `min_success` reachable."""
    seen: set[str] = set()
    for spec in plan.agents:
        where = f"agent {spec.id!r}"
        if spec.id in seen:
            yield PlanProblem(
                where=where, field="id", message="is used twice; give each agent its own id"
            )
        if spec.id in RESERVED_IDS:
            yield PlanProblem(
                where=where, field="id", message="is reserved by corral; choose another id"
            )
        seen.add(spec.id)
    for spec in plan.agents:
        for dep in spec.depends_on:
            if dep == spec.id:
                yield PlanProblem(
                    where=f"agent {spec.id!r}",
                    field="depends_on",
                    message="an agent cannot depend on itself",
                )
            elif dep not in seen:
                yield PlanProblem(
                    where=f"agent {spec.id!r}",
                    field="depends_on",
                    message=f"names {dep!r}, which is not an agent of this plan; "
                    f"use one of: {', '.join(sorted(seen))}",
                )
    cycle = find_cycle({spec.id: [d for d in spec.depends_on if d in seen] for spec in plan.agents})
    if cycle:
        yield PlanProblem(
            where=f"agent {cycle[0]!r}",
            field="depends_on",
            message=f"forms a cycle {' -> '.join(cycle)}; remove one of these dependencies",
        )
    required = plan.required_successes()
    if required > len(plan.agents):
        yield PlanProblem(
            where="run",
            field="min_success",
            message=f"asks for {required} successes but the plan has {len(plan.agents)} agents",
        )


def find_cycle(graph: dict[str, list[str]]) -> list[str]:
    """One dependency cycle as a path that ends where it starts, or [] when there is none."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for dep in graph.get(node, []):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[node] = 2
        return []

    for node in graph:
        if node not in state and (found := visit(node)):
            return found
    return []


def topological_order(plan: Plan) -> list[str]:
    """Agent ids with every dependency before its dependents, plan order otherwise."""
    done: set[str] = set()
    order: list[str] = []
    pending = [spec.id for spec in plan.agents]
    deps = {spec.id: set(spec.depends_on) for spec in plan.agents}
    while pending:
        ready = [agent for agent in pending if deps[agent] <= done]
        if not ready:  # pragma: no cover - check_graph rejects cycles first
            raise PlanError("plan", [PlanProblem(where="plan", message="dependency cycle")])
        for agent in ready:
            done.add(agent)
            order.append(agent)
        pending = [agent for agent in pending if agent not in done]
    return order


_ERROR_HINTS = {
    "missing": "is required; add it",
    "extra_forbidden": "is not a known field; check its spelling",
    "too_short": "must not be empty",
    "string_pattern_mismatch": "must use only letters, digits, '-' and '_' (at most 63 characters)",
}


def _describe(exc: ValidationError, data: dict[str, Any]) -> list[PlanProblem]:
    problems = []
    raw_agents = data.get("agent")
    agents: list[Any] = raw_agents if isinstance(raw_agents, list) else []
    for error in exc.errors():
        loc = list(error["loc"])
        where = "plan"
        if loc and loc[0] == "agent" and len(loc) > 1 and isinstance(loc[1], int):
            index = loc[1]
            agent = agents[index] if index < len(agents) else None
            agent_id = agent.get("id") if isinstance(agent, dict) else None
            where = f"agent {agent_id!r}" if agent_id else f"[[agent]] number {index + 1}"
            loc = loc[2:]
        elif loc and loc[0] in ("run", "defaults"):
            where = str(loc[0])
            loc = loc[1:]
        elif loc == ["agent"]:
            where = "plan"
        field = ".".join(str(part) for part in loc)
        message = _ERROR_HINTS.get(error["type"]) or error["msg"].removeprefix("Value error, ")
        if error["type"] == "string_pattern_mismatch" and field.startswith("locks"):
            message = "a lock name uses only letters, digits and '._:-' (at most 100 characters)"
        if where == "plan" and field == "agent":
            message = "has no [[agent]] table; add at least one agent"
        problems.append(PlanProblem(where=where, field=field, message=message))
    return problems
