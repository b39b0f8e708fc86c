"""One attempt of a preset agent: its argv, its environment and its overlay files.

The overlay directory is the attempt's own (`overlay/` inside its output directory, so every
runtime shows it to the agent as it shows CORRAL_OUTPUT): what corral must set for the CLI (a
settings default, a provider at the endpoint) goes there and is passed by a flag or a variable.
The user's own configuration and sign-in are never written. `render` is pure; every
placeholder of a template is substituted in one pass, so a prompt holding `{overlay}` stays as
written.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from corral.core.plan.model import AgentSpec, resolve_env
from corral.core.presets.mcp import FORWARDED, Server, Wiring, enabled, engine_server, wire
from corral.core.presets.schema import PLACEHOLDER, Preset

OVERLAY_DIR = "overlay"
"""The attempt's overlay directory, inside its output directory."""


@dataclass(frozen=True, kw_only=True)
class Launch:
    argv: list[str]
    env: dict[str, str]
    """The attempt's whole environment, the preset's templates filled in."""
    files: dict[str, str]
    """Overlay files to write (name in the overlay directory: content)."""
    first_input: str | None = None
    """The message to write to its stdin as it starts (`[input] first_message`, filled in)."""


def substitute(template: str, values: Mapping[str, str]) -> str:
    """Each known `{name}` replaced by its value, in one pass; anything else stays."""
    return PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def render(
    spec: AgentSpec,
    preset: Preset,
    *,
    env: Mapping[str, str],
    workspace: str,
    overlay: str,
    mcp: Server | None = None,
) -> Launch:
    """The expanded agent's command and environment for one attempt in `workspace`, its
    overlay directory `overlay` (both as the agent sees them), `env` its environment; `mcp`
    the corral MCP server to give the CLI (core/presets/mcp.py), None for none."""
    endpoint = env.get(preset.endpoint.variable) if preset.endpoint else None
    model = spec.model or ""
    values = {
        "prompt": spec.prompt or "",
        "model": model,
        "model_name": model.split("/", 1)[1] if "/" in model else model,
        "workspace": workspace,
        "overlay": overlay,
        "endpoint": endpoint or "",
    }
    rendered = dict(env)
    templates = {k: v for k, v in preset.env.items() if isinstance(v, str)}
    for key in templates:
        if key in rendered:
            rendered[key] = substitute(rendered[key], values)
    if endpoint and preset.endpoint:
        for key, value in preset.endpoint.env.items():
            rendered.setdefault(key, substitute(value, values))
    files = {
        o.path: substitute(o.content, values)
        for o in preset.overlays
        if o.when == "always" or endpoint
    }
    wiring = Wiring()
    if mcp is not None and preset.mcp is not None:
        wiring = wire(preset.mcp, mcp, overlay=overlay, files=files, env=rendered)
        files.update(wiring.files)
        rendered.update(wiring.env)
    argv: list[str] = []
    for item in spec.argv:
        if item == "{endpoint_args}":
            if endpoint and preset.endpoint:
                argv += [substitute(arg, values) for arg in preset.endpoint.args]
        elif item == "{mcp_args}":
            if wiring.values and preset.mcp is not None:
                argv += [substitute(arg, {**values, **wiring.values}) for arg in preset.mcp.args]
        else:
            argv.append(substitute(item, values))
    first = substitute(spec.first_input, values) if spec.first_input is not None else None
    return Launch(argv=argv, env=rendered, files=files, first_input=first)


def preview(spec: AgentSpec, preset: Preset, runtime: str = "local") -> list[str]:
    """The command an attempt would start, as `corral validate` shows it: the endpoint as
    corral's environment and the plan say now, the prompt and the attempt's paths by name, and
    corral's MCP server as the attempt in `runtime` would get it."""
    env, _ = resolve_env(spec.env, os.environ)
    attempt = {name: f"<{name}>" for name in FORWARDED}
    shown = spec.model_copy(update={"prompt": "{prompt}"})
    launch = render(
        shown,
        preset,
        env={**os.environ, **env, **attempt},
        workspace="<worktree>",
        overlay="<overlay>",
        mcp=engine_server() if enabled(spec.mcp, preset.mcp, runtime) else None,
    )
    return launch.argv


def write_overlays(directory: Path, files: Mapping[str, str]) -> None:
    """The overlay directory (a CLI may keep its history there) and its files, private to the
    user (they may name endpoints and models)."""
    directory.mkdir(mode=0o700, exist_ok=True)
    for name, content in files.items():
        path = directory / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
