"""corral's MCP server given to an agent CLI, each CLI its own way (a preset's `[mcp]` table).

The server is `corral mcp agent` (core/mcp/agent_server.py), started by the CLI over stdio
inside the attempt: the engine's own interpreter running this very corral, so it has its
dependencies (the MCP SDK, pydantic) and works in the `sandbox` runtime too, where the host's
filesystem is seen read-only. An image (the `container` runtime) has none of them: no MCP there.

What the server needs of the attempt (CORRAL_SOCKET, CORRAL_AGENT_TOKEN, the marks, ...) is
passed on by name, never as a value on a command line (/proc/PID/cmdline is world-readable)
nor written into a file: measured, Claude Code and opencode give their MCP servers their whole
environment, Gemini CLI all of it but variables named like secrets (the token: its settings
then name it as `$CORRAL_AGENT_TOKEN`, which it expands), Codex only a few basics of its own
and the names listed in `env_vars`. Pure: `wire` returns what to add to the attempt's launch.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from corral.core.presets.schema import McpTemplate

SERVER_NAME = "corral"
"""The server's name in every CLI's configuration: its tools are `mcp__corral__NAME` (Claude
Code), `mcp__corral.NAME` (Codex's namespace), `mcp_corral_NAME` (Gemini CLI), `corral_NAME`
(opencode); the stream adapters record each as `corral.NAME` (core/streams/)."""
FORWARDED = (
    "CORRAL_SOCKET",
    "CORRAL_RUN_ID",
    "CORRAL_AGENT_ID",
    "CORRAL_ATTEMPT",
    "CORRAL_AGENT_TOKEN",
    "CORRAL_OUTPUT",
    "CORRAL_SHARED",
    "CORRAL_WORKSPACE",
)
"""The attempt's variables the server reads (core/agent/client.py, core/mcp/relay.py)."""
NO_MCP_RUNTIMES = frozenset({"container", "ssh"})
"""Runtimes whose agents cannot start corral's server: an image, or a remote host, has corral's
agent side but not its dependencies (pydantic, the MCP SDK)."""


@dataclass(frozen=True)
class Server:
    """How to start `corral mcp agent`: a command and the non-secret variables it needs."""

    command: list[str]
    env: dict[str, str] = field(default_factory=dict)


def engine_server() -> Server:
    """This interpreter running this corral: `-P` keeps the agent's working directory (a
    repository that may hold a `corral/` of its own) off the import path, and PYTHONPATH names
    where this corral is (a checkout, or site-packages), whatever the CLI passes on."""
    import corral

    root = Path(corral.__file__).resolve().parent.parent
    return Server(
        command=[sys.executable, "-P", "-m", "corral.core.entry", "mcp", "agent"],
        env={"PYTHONPATH": str(root)},
    )


@dataclass(frozen=True)
class Wiring:
    """What the attempt's launch gets: the values of `[mcp] args`' placeholders, overlay files
    to write or replace, and variables of its environment to replace."""

    values: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)


def _toml(value: object) -> str:
    """An inline TOML value (strings, booleans, lists and tables): JSON strings are TOML's."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ",".join(f"{key}={_toml(item)}" for key, item in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_toml(item) for item in value) + "]"
    return json.dumps(value)


def _merged(text: str, key: str, servers: dict[str, object], where: str) -> str:
    try:
        config = json.loads(text) if text.strip() else {}
    except ValueError:
        raise ValueError(f"{where} is not JSON; corral cannot add its MCP server to it") from None
    if not isinstance(config, dict):
        raise ValueError(f"{where} is not a JSON object; corral cannot add its MCP server")
    existing = config.get(key)
    config[key] = {**(existing if isinstance(existing, dict) else {}), **servers}
    return json.dumps(config, indent=2) + "\n"


def wire(
    template: McpTemplate,
    server: Server,
    *,
    overlay: str,
    files: Mapping[str, str],
    env: Mapping[str, str],
) -> Wiring:
    """How this preset's CLI is given `server`; `overlay` is the overlay directory as the agent
    sees it, `files` the overlay files the attempt writes, `env` its environment so far."""
    forwarded = [name for name in FORWARDED if name in env]
    command, args = server.command[0], server.command[1:]
    values = {"mcp_name": SERVER_NAME}
    if template.config == "claude-json":
        entry: dict[str, object] = {
            "type": "stdio",
            "command": command,
            "args": args,
            "env": server.env,
            # awaited before the first request (up to MCP_CONNECT_TIMEOUT_MS, the preset's env),
            # else under load its first turn goes out with corral's tools still pending
            "alwaysLoad": True,
        }
        content = json.dumps({"mcpServers": {SERVER_NAME: entry}}, indent=2) + "\n"
        values["mcp_config"] = f"{overlay}/{template.target}"
        return Wiring(values=values, files={template.target: content})
    if template.config == "codex-toml":
        table: dict[str, object] = {
            "command": command,
            "args": args,
            "env": server.env,
            "env_vars": forwarded,
            "default_tools_approval_mode": "approve",
            "required": True,  # else its first request goes out before the tools are listed
        }
        values["mcp_config"] = _toml(table)
        return Wiring(values=values)
    if template.config == "gemini-settings":
        by_name = {name: f"${name}" for name in forwarded}
        entry = {
            "command": command,
            "args": args,
            "env": {**server.env, **by_name},
            "trust": True,
        }
        where = f"overlay {template.target}"
        content = _merged(files[template.target], "mcpServers", {SERVER_NAME: entry}, where)
        return Wiring(values=values, files={template.target: content})
    if template.config == "opencode-json":
        entry = {"type": "local", "command": server.command, "environment": server.env}
        where = f"the variable {template.target}"
        content = _merged(env.get(template.target, ""), "mcp", {SERVER_NAME: entry}, where)
        return Wiring(values=values, env={template.target: content.strip()})
    return Wiring()


def supported(template: McpTemplate | None) -> bool:
    """Whether the preset's CLI takes corral's server (a run frozen by an older corral has an
    `[mcp]` table without a `target`: it runs as it did, without)."""
    if template is None or template.config == "none":
        return False
    return template.config == "codex-toml" or bool(template.target)


def enabled(wanted: bool | None, template: McpTemplate | None, runtime: str) -> bool:
    """Whether an attempt gets corral's server: on by default where the preset's CLI has an
    MCP client, unless the agent says `mcp = false` or its runtime cannot start the server."""
    return wanted is not False and supported(template) and runtime not in NO_MCP_RUNTIMES
