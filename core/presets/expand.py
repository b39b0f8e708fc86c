"""A preset agent becomes a concrete agent: its command, environment, kind, timeouts and stream.

`expand` is pure: the agent as the plan gives it (`preset`, `prompt`, `model`, `preset_args`)
and the preset make the agent the engine runs. What the agent sets itself wins over the preset:
its `env` over the preset's, its `kind` and timeouts (or `[defaults]`'s) over the preset's
defaults. What only an attempt knows (its workspace, its overlay directory, whether the endpoint
variable is set) stays a placeholder for attempt.py. `expand_plan` does it for a whole plan,
reading each `prompt_file` relative to the plan, and reports every problem at once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from corral.core.plan.model import AgentSpec, EnvValue, FromEnv, Plan, PlanProblem
from corral.core.presets import mcp
from corral.core.presets.catalog import Catalog
from corral.core.presets.schema import Preset

OVERRIDABLE = ("kind", "timeout", "heartbeat_timeout", "start_timeout")
"""Fields a preset gives a default for, unless the agent or `[defaults]` set them."""


def preset_model(spec: AgentSpec, preset: Preset) -> str | None:
    return spec.model or preset.default_model


def uses_model(preset: Preset) -> bool:
    """Whether the preset needs a model outside `model_args` (which it just leaves out)."""
    templates = [*preset.command, *[o.content for o in preset.overlays]]
    if preset.endpoint:
        templates += [*preset.endpoint.args, *preset.endpoint.env.values()]
    templates += [value for value in preset.env.values() if isinstance(value, str)]
    return any("{model}" in t or "{model_name}" in t for t in templates)


def expand(spec: AgentSpec, preset: Preset, prompt: str, environ: Mapping[str, str]) -> AgentSpec:
    """The agent the engine runs for this preset agent; `prompt` is its task (from `prompt` or
    `prompt_file`), `environ` corral's environment (which `pass_env` variables are set)."""
    model = preset_model(spec, preset)
    template = preset.input.command if spec.input_format and preset.input else preset.command
    command: list[str] = []
    for item in template:
        if item == "{model_args}":
            command += preset.model_args if model else []
        elif item == "{preset_args}":
            command += spec.preset_args
        else:
            command.append(item)  # {endpoint_args} is the attempt's to fill
    env: dict[str, EnvValue] = dict(preset.env)
    for name in preset.pass_env:
        if name in environ and name not in env:
            env[name] = FromEnv(from_env=name)
    env.update(spec.env)
    update: dict[str, object] = {
        "command": command,
        "env": env,
        "prompt": prompt,
        "model": model,
        "stream": spec.stream or preset.stream,
    }
    if spec.input_format and preset.input:
        update["first_input"] = preset.input.first_message  # its placeholders: per attempt
    for name in OVERRIDABLE:
        value = getattr(preset, name)
        if name not in spec.model_fields_set and value is not None:
            update[name] = value
    return spec.model_copy(update=update)


def mcp_problem(spec: AgentSpec, preset: Preset, runtime: str) -> str | None:
    """Why `mcp = true` cannot be kept for this agent (its CLI or runtime cannot have it)."""
    if spec.mcp is not True:
        return None
    if not mcp.supported(preset.mcp):
        note = f" ({preset.mcp.note})" if preset.mcp and preset.mcp.note else ""
        return f"preset {preset.name!r} has no MCP client{note}; remove mcp = true"
    if runtime in mcp.NO_MCP_RUNTIMES:
        return (
            f"the {runtime} runtime cannot start corral's MCP server: the image has no corral "
            "with its dependencies; remove mcp = true (the agent can still run `corral "
            "heartbeat`, `corral lock` and `corral put`)"
        )
    return None


def read_prompt(plan_dir: Path) -> Callable[[str], str]:
    """How `prompt_file` is read: relative to the plan's directory."""

    def read(name: str) -> str:
        path = Path(name) if Path(name).is_absolute() else plan_dir / name
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ValueError(
                f"{path} does not exist; write the task there or fix the path"
            ) from None
        except UnicodeDecodeError:
            raise ValueError(f"{path} is not UTF-8 text; save it as UTF-8") from None
        except OSError as exc:
            raise ValueError(f"{path} cannot be read ({exc.strerror or exc})") from None
        if not text.strip():
            raise ValueError(f"{path} is empty; write the agent's task in it")
        return text

    return read


def expand_plan(
    plan: Plan,
    catalog: Catalog,
    read: Callable[[str], str],
    environ: Mapping[str, str],
) -> tuple[Plan, list[PlanProblem]]:
    """The plan with every preset agent expanded, and what stops that (all of it at once)."""
    problems: list[PlanProblem] = []
    agents: list[AgentSpec] = []
    for spec in plan.agents:
        if spec.preset is None:
            agents.append(spec)
            continue
        where = f"agent {spec.id!r}"
        preset = catalog.get(spec.preset)
        if preset is None:
            known = ", ".join(catalog.names()) or "none"
            problems.append(
                PlanProblem(
                    where=where,
                    field="preset",
                    message=f"{spec.preset!r} is not a known preset; known: {known} (add your "
                    "own as .corral/presets/NAME.toml in the repository)",
                )
            )
            agents.append(spec)
            continue
        if not preset_model(spec, preset) and uses_model(preset):
            problems.append(
                PlanProblem(
                    where=where,
                    field="model",
                    message=f'preset {preset.name!r} needs a model; add model = "..."',
                )
            )
        if spec.input_format and (preset.input is None or preset.input.format != spec.input_format):
            takes = f"takes input as {preset.input.format!r}" if preset.input else "takes no input"
            problems.append(
                PlanProblem(
                    where=where,
                    field="input_format",
                    message=f"preset {preset.name!r} {takes} while it runs; "
                    + (
                        f'set input_format = "{preset.input.format}"'
                        if preset.input
                        else "remove input_format"
                    ),
                )
            )
        problem = mcp_problem(spec, preset, spec.runtime or plan.run.runtime)
        if problem is not None:
            problems.append(PlanProblem(where=where, field="mcp", message=problem))
        if spec.preset_args and "{preset_args}" not in preset.command:
            problems.append(
                PlanProblem(
                    where=where,
                    field="preset_args",
                    message=f"preset {preset.name!r} takes no preset_args (its command has no "
                    "{preset_args} item); remove them or add the item to the preset",
                )
            )
        prompt = spec.prompt
        if prompt is None and spec.prompt_file is not None:
            try:
                prompt = read(spec.prompt_file)
            except ValueError as exc:
                problems.append(PlanProblem(where=where, field="prompt_file", message=str(exc)))
        agents.append(expand(spec, preset, prompt or "", environ))
    return plan.model_copy(update={"agents": agents}), problems


def used_presets(plan: Plan, catalog: Catalog) -> list[Preset]:
    """The presets the plan's agents name (for the run directory's frozen copy)."""
    names = sorted({spec.preset for spec in plan.agents if spec.preset})
    return [preset for name in names if (preset := catalog.get(name)) is not None]
