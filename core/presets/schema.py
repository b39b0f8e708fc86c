"""The schema of a preset file: what corral needs to run one agent CLI headless.

Templates hold placeholders in braces. An argv item that is exactly `{model_args}`,
`{endpoint_args}`, `{mcp_args}` or `{preset_args}` is replaced by that list (or by nothing);
inside any
template `{prompt}`, `{model}`, `{model_name}` (the model without its `provider/` prefix),
`{workspace}`, `{overlay}` (the attempt's overlay directory) and `{endpoint}` (the endpoint's
value) are substituted in one pass when the attempt starts, so a prompt holding braces stays as
written. Any other `{word}` is refused when the file is read: a typo never reaches a CLI.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from corral.core.plan.model import (
    ENV_NAME_PATTERN,
    PRESET_NAME_PATTERN,
    EnvValue,
    ExecArgument,
    PositiveDuration,
)

SPLICES = ("{model_args}", "{endpoint_args}", "{mcp_args}", "{preset_args}")
"""Whole argv items replaced by a list."""
PLACEHOLDERS = ("prompt", "model", "model_name", "workspace", "overlay", "endpoint")
"""Substituted inside a template when the attempt starts (attempt.py)."""
MCP_PLACEHOLDERS = ("mcp_config", "mcp_name")
"""Also substituted in `[mcp] args`: the configuration as this CLI takes it (a file's path, an
inline table) and the server's name (`corral`)."""
PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")
EnvName = Annotated[str, StringConstraints(pattern=ENV_NAME_PATTERN)]


def unknown_placeholders(template: str, allowed: tuple[str, ...] = PLACEHOLDERS) -> list[str]:
    return [name for name in PLACEHOLDER.findall(template) if name not in allowed]


def _check_templates(
    values: list[str], *, splices: bool, allowed: tuple[str, ...] = PLACEHOLDERS
) -> list[str]:
    for value in values:
        if value in SPLICES:
            if not splices:
                raise ValueError(f"{value} can only be an item of command")
            continue
        unknown = unknown_placeholders(value, allowed)
        if unknown:
            known = ", ".join("{" + name + "}" for name in allowed)
            raise ValueError(
                f"{value!r} uses {{{unknown[0]}}}, which is not a placeholder; known: {known}"
            )
    return values


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Overlay(_Strict):
    """A file written into the attempt's own overlay directory before the CLI starts (never
    into the user's configuration), for the CLI to read through a flag or a variable."""

    path: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")]
    """Its name inside the overlay directory, e.g. `settings.json`."""
    content: str
    """Its text, a template (e.g. `{endpoint}` for a provider's base URL)."""
    when: Literal["always", "endpoint"] = "always"
    """`endpoint`: only when the endpoint variable is set."""

    @field_validator("content")
    @classmethod
    def _placeholders(cls, value: str) -> str:
        _check_templates([value], splices=False)
        return value


class Endpoint(_Strict):
    """Where the CLI's model API is: a variable the user sets (in the plan's `env`, or in
    corral's environment) to point the CLI at another endpoint, a local server or a proxy.
    Unset, the CLI talks to its own default with the user's own sign-in."""

    variable: EnvName
    """E.g. `ANTHROPIC_BASE_URL`; its value is `{endpoint}` in the templates."""
    args: list[ExecArgument] = Field(default_factory=list)
    """Put at `{endpoint_args}` when the variable is set."""
    env: dict[str, str] = Field(default_factory=dict)
    """Set (templates) when the variable is set, e.g. a config path for an overlay."""

    @field_validator("args")
    @classmethod
    def _args(cls, value: list[str]) -> list[str]:
        return _check_templates(value, splices=False)

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        _check_templates(list(value.values()), splices=False)
        return value


class McpTemplate(_Strict):
    """How the CLI is given corral's MCP server (`corral mcp agent`, core/presets/mcp.py), on
    by default for an agent of this preset unless it sets `mcp = false`."""

    args: list[str] = Field(default_factory=list)
    """Put at `{mcp_args}` when MCP is on, e.g. `["--mcp-config", "{mcp_config}"]`."""
    config: Literal["claude-json", "codex-toml", "gemini-settings", "opencode-json", "none"]
    """Which shape the configuration takes for this CLI (`none`: it has no MCP client)."""
    target: str = ""
    """Where the configuration goes: `claude-json` the overlay file written (`mcp.json`),
    `gemini-settings` the overlay settings file the server is added to, `opencode-json` the
    variable of `env` holding the inline configuration (`OPENCODE_CONFIG_CONTENT`); unused for
    `codex-toml` (inline in `args`)."""
    note: str = ""

    @field_validator("args")
    @classmethod
    def _args(cls, value: list[str]) -> list[str]:
        return _check_templates(value, splices=False, allowed=(*PLACEHOLDERS, *MCP_PLACEHOLDERS))


class InputMode(_Strict):
    """How the CLI takes a person's messages while it runs, for an agent with `input_format`:
    its `command` then (the prompt is not an argument: it is the first message)."""

    format: Literal["stream-json", "lines"]
    command: list[ExecArgument] = Field(min_length=1)
    """The command template when the agent takes input (the same placeholders as `command`)."""
    first_message: str = "{prompt}"
    """Written to its stdin as it starts."""

    @field_validator("command")
    @classmethod
    def _command(cls, value: list[str]) -> list[str]:
        return _check_templates(value, splices=True)


class Preset(_Strict):
    """One agent CLI, as a packaged `data/*.toml` file or a repository's `.corral/presets/*.toml`."""

    name: Annotated[str, StringConstraints(pattern=PRESET_NAME_PATTERN)]
    """What a plan's `preset = "..."` names."""
    description: str
    program: Annotated[str, StringConstraints(min_length=1)]
    """The executable looked up on PATH (preflight refuses the plan when it is missing)."""
    command: list[ExecArgument] = Field(min_length=1)
    """The argv template; its first item is the program."""
    model_args: list[ExecArgument] = Field(default_factory=list)
    """Put at `{model_args}` when the agent (or `default_model`) names a model."""
    default_model: str | None = None
    env: dict[EnvName, EnvValue] = Field(default_factory=dict)
    """Set for every attempt (text templates, or `{ from_env = "NAME" }`); the plan's own `env`
    wins over it."""
    pass_env: list[EnvName] = Field(default_factory=list)
    """Variables of corral's environment passed on by reference when they are set (API keys,
    base URLs), so that they reach the CLI in a sandbox too, and are redacted from its output."""
    kind: Literal["coding", "audit"] = "coding"
    timeout: PositiveDuration | None = None
    heartbeat_timeout: PositiveDuration | None = None
    start_timeout: PositiveDuration | None = None
    install: str
    """The command that installs the CLI, printed when preflight finds it missing."""
    version_args: list[str] = Field(default_factory=lambda: ["--version"])
    """How `corral presets` asks an installed CLI for its version."""
    stream: str | None = None
    """The event-stream adapter that reads the CLI's output (core/streams)."""
    homepage: str = ""
    docs: str = ""
    endpoint: Endpoint | None = None
    overlays: list[Overlay] = Field(default_factory=list)
    mcp: McpTemplate | None = None
    input: InputMode | None = None
    """How it reads a person's messages while it runs (`input_format` on the agent), if it can."""

    @field_validator("command")
    @classmethod
    def _command(cls, value: list[str]) -> list[str]:
        return _check_templates(value, splices=True)

    @field_validator("model_args")
    @classmethod
    def _model_args(cls, value: list[str]) -> list[str]:
        return _check_templates(value, splices=False)

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, EnvValue]) -> dict[str, EnvValue]:
        _check_templates([v for v in value.values() if isinstance(v, str)], splices=False)
        return value

    @model_validator(mode="after")
    def _program_first(self) -> Preset:
        if self.command[0] != self.program:
            raise ValueError(
                f"command starts with {self.command[0]!r}, not the program {self.program!r}; "
                "the program is what preflight looks for on PATH"
            )
        splices_endpoint = "{endpoint_args}" in self.command
        if self.endpoint is None and (
            splices_endpoint or any(o.when == "endpoint" for o in self.overlays)
        ):
            raise ValueError(
                '{endpoint_args} or an overlay `when = "endpoint"` needs an [endpoint] table '
                "naming its variable"
            )
        if self.endpoint is not None and self.endpoint.args and not splices_endpoint:
            raise ValueError(
                "endpoint.args are given but command has no {endpoint_args} item to put them at"
            )
        if self.model_args and "{model_args}" not in self.command:
            raise ValueError("model_args are given but command has no {model_args} item")
        if self.input is not None and self.input.command[0] != self.program:
            raise ValueError(
                f"input.command starts with {self.input.command[0]!r}, not the program "
                f"{self.program!r}"
            )
        paths = [overlay.path for overlay in self.overlays]
        doubled = sorted({path for path in paths if paths.count(path) > 1})
        if doubled:
            raise ValueError(f"overlays: {', '.join(doubled)} written twice; name each once")
        return self

    def mcp_problem(self) -> str | None:
        """Why the `[mcp]` table does not fit the rest of the file, None when it does. Checked
        when a preset file is read (catalog.py), not on a run's frozen copy: a run started by
        an older corral resumes as it was, without corral's MCP server."""
        mcp = self.mcp
        if mcp is None:
            return None
        commands = [self.command, *([self.input.command] if self.input else [])]
        if mcp.args and any("{mcp_args}" not in command for command in commands):
            return "mcp.args are given but a command has no {mcp_args} item to put them at"
        always = [o.path for o in self.overlays if o.when == "always"]
        if mcp.config == "gemini-settings" and mcp.target not in always:
            return (
                "mcp.target must name an overlay written always (a JSON settings file) for "
                f"config gemini-settings; overlays: {', '.join(always) or 'none'}"
            )
        if mcp.config == "opencode-json" and not isinstance(self.env.get(mcp.target), str):
            return (
                "mcp.target must name a variable of env holding inline JSON configuration "
                "(OPENCODE_CONFIG_CONTENT) for config opencode-json"
            )
        if mcp.config == "claude-json" and not mcp.target:
            return "mcp.target must name the overlay file to write (e.g. mcp.json)"
        return None
