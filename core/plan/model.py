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
    ValidationInfo,
    field_validator,
    model_validator,
)

from corral.core.plan.durations import parse_duration, positive_duration
from corral.core.plan.graph import RESERVED_IDS as RESERVED_IDS
from corral.core.plan.graph import check_graph
from corral.core.plan.graph import find_cycle as find_cycle
from corral.core.plan.graph import topological_order as topological_order
from corral.core.plan.hosts import HostSpec
from corral.core.plan.problems import PlanError as PlanError
from corral.core.plan.problems import PlanProblem as PlanProblem
from corral.core.plan.problems import describe_validation_error
from corral.core.plan.resources import AgentResources, RaySettings
from corral.core.sandbox.policy import SandboxPolicy

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


ExecArgument = Annotated[str, AfterValidator(_exec_argument)]
Command = Annotated[list[ExecArgument], Field(min_length=1)]
PRESET_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,39}$"
PresetName = Annotated[str, StringConstraints(pattern=PRESET_NAME_PATTERN)]
"""A preset's name (core/presets/): whether one of that name exists is checked at preflight."""
EXPANDED = "expanded"
"""Validation context key: the agent is a preset agent already expanded (core/presets/expand.py),
so it carries both its preset and the command the preset made."""
LOCK_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$"
"""A lock names a shared resource: letters, digits and `._:-`, at most 100 characters."""
LockName = Annotated[str, StringConstraints(pattern=LOCK_NAME_PATTERN)]
RUNTIME_NAME_PATTERN = r"^[a-z][a-z0-9_-]{0,39}$"
RuntimeName = Annotated[str, StringConstraints(pattern=RUNTIME_NAME_PATTERN)]
"""A runtime's name (core/runtime/registry.py): whether it is installed is checked at preflight."""


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
    locks: list[LockName] = Field(default_factory=list)
    """Shared resources (e.g. `["db", "port-8080"]`) the engine acquires before the agent starts
    and releases when the attempt ends. Every agent's set is taken in one global (sorted) order,
    so two agents can never deadlock on them."""
    sandbox: SandboxPolicy | None = None
    """What the agent may reach when it runs in the `sandbox` runtime (`[agent.sandbox]`, or
    `[defaults.sandbox]` for all): core/sandbox/policy.py, docs/reliability.md T6."""
    image: str | None = None
    """The root filesystem directory the agent runs in with `runtime = "container"`: absolute,
    `~/...`, or relative to the repository's top (docs/containers.md says how to build one)."""
    resources: AgentResources | None = None
    """What one attempt takes of its node with `runtime = "ray"` (core/plan/resources.py):
    a `corral_slot` unless it says more (CPUs, memory, GPUs, a labelled node)."""
    max_cost_usd: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """Stop an attempt whose stream reports (or prices) more than this many USD: its outcome
    is `budget_exceeded`, not retried. Needs a `stream`; a retry starts afresh."""
    max_tokens: int | None = Field(default=None, ge=1)
    """Stop an attempt whose stream counts more input and output tokens than this."""
    max_turns: int | None = Field(default=None, ge=1)
    """Stop an attempt whose stream counts more model turns than this."""

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
    command: Command | None = None
    """The program and its arguments, e.g. `["ruff", "check", "."]`; or give a `preset`."""
    preset: PresetName | None = None
    """An agent CLI by name (`claude-code`, `codex`, `gemini`, `opencode`, `aider`, or one of
    the repository's `.corral/presets/`): it makes the command, the environment, the kind and
    the stream adapter (core/presets/)."""
    prompt: str | None = Field(default=None, min_length=1)
    """The task given to the preset's CLI."""
    prompt_file: str | None = Field(default=None, min_length=1)
    """A file holding the prompt, relative to the plan (read when the run starts)."""
    model: str | None = Field(default=None, min_length=1)
    """The model the preset's CLI uses (default: the preset's, else the CLI's own)."""
    preset_args: list[ExecArgument] = Field(default_factory=list)
    """Extra arguments for the preset's CLI, where its command template puts them."""
    stream: str | None = None
    """The event-stream adapter that reads this agent's output (claude, codex, gemini,
    opencode, aider): core/streams."""
    depends_on: list[AgentId] = Field(default_factory=list)
    """Agents that must succeed before this one starts."""
    runtime: RuntimeName | None = None
    """Where this agent runs, when not where the run's agents do (`[run] runtime`)."""
    input_format: Literal["lines", "stream-json"] | None = None
    """The agent takes a person's messages while it runs, on its stdin: `lines` (each message
    one line of text) or `stream-json` (Claude Code's `--input-format stream-json` user
    messages). Unset: its stdin is /dev/null (core/runtime/agent_input.py). A preset agent may
    set it when its preset has an `[input]` table (claude-code)."""
    tty: bool = False
    """The agent runs on a pseudo-terminal the engine owns (an interactive CLI as a person
    would see it): its output, escapes included, goes to its log as written, and a person's
    keystrokes reach it (`corral send`, the console's attach). It implies it takes input.
    `local`, `sandbox` and `container` runtimes: the engine holds the terminal, so the agent
    gets SIGHUP when the engine dies (core/runtime/pty_io.py)."""
    tty_size: tuple[Annotated[int, Field(ge=10, le=1000)], Annotated[int, Field(ge=2, le=1000)]] = (
        120,
        40,
    )
    """The terminal's size as it starts, `[columns, rows]`; a front end may resize it."""
    first_input: str | None = None
    """A message written to its stdin as it starts (with `input_format`); a preset that takes
    its prompt that way sets it."""
    mcp: bool | None = None
    """A preset agent gets corral's tools over MCP (heartbeat, locks, `put`, findings, its
    conflicts, questions to a person: `corral mcp agent`), wired into its CLI's configuration:
    on by default where the preset's CLI has an MCP client and the runtime can start the server
    (not in an image); `false` turns it off (core/presets/mcp.py)."""

    @field_validator("command", mode="before")
    @classmethod
    def _command_is_a_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError(
                f"command must be a list of arguments, e.g. {value.split()!r}; "
                f'for a shell line write ["sh", "-c", {value!r}]'
            )
        return value

    @model_validator(mode="after")
    def _command_or_preset(self, info: ValidationInfo) -> AgentSpec:
        """Either a command or a preset (with its prompt); the preset's fields only with one."""
        if isinstance(info.context, dict) and info.context.get(EXPANDED):
            return self
        if self.command is None and self.preset is None:
            raise ValueError(
                'give a command (e.g. command = ["make", "lint"]) or a preset '
                '(e.g. preset = "claude-code" with a prompt)'
            )
        if self.command is not None and self.preset is not None:
            raise ValueError(
                "give either a command or a preset, not both; "
                "pass extra arguments to a preset's CLI with preset_args"
            )
        if self.preset is None:
            given = [
                name
                for name in ("prompt", "prompt_file", "model")
                if getattr(self, name) is not None
            ] + (["preset_args"] if self.preset_args else [])
            given += ["mcp"] if self.mcp is not None else []
            if given:
                raise ValueError(
                    f"{', '.join(given)}: only for an agent with a preset; add one (e.g. preset "
                    '= "claude-code") or remove them and put everything in command'
                )
            return self
        if (self.prompt is None) == (self.prompt_file is None):
            raise ValueError(
                f'preset {self.preset!r} needs its task: give prompt = "..." or '
                'prompt_file = "task.md" (one of them)'
            )
        return self

    @property
    def argv(self) -> list[str]:
        """The command as started: a preset agent's is made by core/presets/expand.py."""
        if self.command is None:
            raise ValueError(f"agent {self.id!r}: preset {self.preset!r} was not expanded")
        return list(self.command)


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
    notify: Command | None = None
    """A command that hears of each agent that succeeds, fails, is given up on, waits for
    input or exceeds a budget, and of the run's end: the notice as JSON on its stdin, one per
    agent per state change (core/engine/notify.py), e.g. `["ntfy", "publish", "corral"]`."""
    """Longest the `verify` command may run."""
    conflict_interval: PositiveDuration = 3.0
    """How often running coding agents' work is checked for conflicts with each other."""
    runtime: RuntimeName = "local"
    """Where and how agents run (an agent may name its own): `local` is a process tree in a git
    worktree on this machine; other runtimes are installed as plugins (core/runtime/registry.py)."""
    ray: RaySettings = Field(default_factory=RaySettings)
    """`[run.ray]`: the cluster agents with `runtime = "ray"` run on (docs/ray.md)."""
    max_cost_usd: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    """The run's budget over every attempt of every agent: crossing it stops the agents that
    report a stream (`budget_exceeded`) and starts no more."""
    max_tokens: int | None = Field(default=None, ge=1)
    """The run's budget of input and output tokens, as `max_cost_usd`."""
    max_turns: int | None = Field(default=None, ge=1)
    """The run's budget of model turns, as `max_cost_usd`."""

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


AGENT_INDEXES_KEPT = 16
_AGENT_INDEXES: dict[int, tuple[list[AgentSpec], dict[str, AgentSpec]]] = {}
"""`Plan.agent`'s indexes by the id of the agents list they index, each holding that list (so
its id cannot be reused while it is here): outside the frozen model, so a copy with other
agents (`model_copy(update=...)`) gets its own and equality stays the fields'."""


class Plan(_Strict):
    """A whole plan: run settings, agent defaults and the agents."""

    run: RunSettings = Field(default_factory=RunSettings)
    defaults: AgentDefaults = Field(default_factory=AgentDefaults)
    agents: list[AgentSpec] = Field(alias="agent", min_length=1)
    hosts: list[HostSpec] = Field(default_factory=list, alias="host")
    """`[[host]]`: the pool of the `ssh` runtime (core/plan/hosts.py), besides the user's
    `~/.config/corral/hosts.toml`."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def agent(self, agent_id: str) -> AgentSpec:
        """The agent of that id (KeyError if none), from an index made once per agents list:
        the scheduler asks for each agent on every pass, and a scan per ask made a pass
        quadratic (10,000 agents took minutes; bench/bench_ray.py fake)."""
        found = _AGENT_INDEXES.get(id(self.agents))
        if found is None or found[0] is not self.agents:
            if len(_AGENT_INDEXES) >= AGENT_INDEXES_KEPT:
                _AGENT_INDEXES.pop(next(iter(_AGENT_INDEXES)))
            found = (self.agents, {spec.id: spec for spec in self.agents})
            _AGENT_INDEXES[id(self.agents)] = found
        return found[1][agent_id]

    def runtime_of(self, spec: AgentSpec) -> str:
        """Where `spec` runs: its own `runtime`, else the run's."""
        return spec.runtime or self.run.runtime

    def required_successes(self) -> int:
        """`min_success` as a number of agents."""
        value = self.run.min_success
        if isinstance(value, int):
            return value
        return math.ceil(len(self.agents) * float(value[:-1]) / 100 - 1e-9)


def parse_plan(data: dict[str, Any], source: str = "plan") -> Plan:
    """Validate plan data (already read from TOML): schema first, then the agent graph."""
    merged = _apply_defaults(_without_retired_fields(data))
    try:
        plan = Plan.model_validate(merged)
    except ValidationError as exc:
        raise PlanError(source, describe_validation_error(exc, merged)) from None
    problems = [*check_graph(plan), *_tty_problems(plan), *_host_problems(plan)]
    if problems:
        raise PlanError(source, problems)
    return plan


TTY_RUNTIMES = frozenset({"local", "sandbox", "container"})
"""Runtimes that can give an agent a terminal (`tty = true`): the engine's host, bubblewrap
or not (a remote runtime would have to carry the terminal's bytes)."""


def _tty_problems(plan: Plan) -> Iterable[PlanProblem]:
    """`tty = true` only where the runtime can hold a terminal for the agent."""
    for spec in plan.agents:
        runtime = plan.runtime_of(spec)
        if spec.tty and runtime not in TTY_RUNTIMES:
            yield PlanProblem(
                where=f"agent {spec.id!r}",
                field="tty",
                message=f"a terminal is not available with runtime {runtime!r} yet; run this "
                'agent with runtime = "local", or remove tty',
            )


def _host_problems(plan: Plan) -> Iterable[PlanProblem]:
    """Each `[[host]]` named once."""
    seen: set[str] = set()
    for host in plan.hosts:
        if host.name in seen:
            yield PlanProblem(
                where=f"host {host.name!r}",
                field="name",
                message="two [[host]] tables have this name; give each host its own",
            )
        seen.add(host.name)


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


def _without_retired_fields(data: dict[str, Any]) -> dict[str, Any]:
    """`workspace = "worktree"`, the one value the retired field ever took, is dropped, so the
    plans saved in older run directories still load (to resume them); any other value stays,
    and is reported as the unknown field it is."""

    def drop(table: Any) -> Any:
        if isinstance(table, dict) and table.get("workspace") == "worktree":
            return {key: value for key, value in table.items() if key != "workspace"}
        return table

    cleaned = {**data}
    if "defaults" in cleaned:
        cleaned["defaults"] = drop(cleaned["defaults"])
    if isinstance(cleaned.get("agent"), list):
        cleaned["agent"] = [drop(agent) for agent in cleaned["agent"]]
    return cleaned


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
