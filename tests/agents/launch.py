"""How each agent CLI is started headless against the scripted model: its command line, its
environment and the settings it needs written into the workspace's HOME. What the presets for
real agents start, tried here against the real CLIs (see tests/agents/README.md).

Each function takes the workspace, the server's base URL and optionally an MCP server to
offer the agent, and returns the command to run with `clis.run`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from tests.agents import clis
from tests.agents.clis import Workspace

PROMPT = "Create hello.txt containing a greeting."
"""The task every file-writing test gives; the script, not the prompt, decides what happens."""


@dataclass(frozen=True)
class Mcp:
    """A stdio MCP server to offer the agent, under `name`."""

    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    name: str = "corral"


@dataclass(frozen=True)
class Launch:
    argv: list[str]
    env: dict[str, str]


def claude(space: Workspace, url: str, mcp: Mcp | None = None, prompt: str = PROMPT) -> Launch:
    """Claude Code: an MCP tool is `mcp__<server>__<tool>`."""
    argv = [
        str(clis.require("claude")), "-p", prompt, "--output-format", "stream-json", "--verbose",
        "--model", "claude-sonnet-4-5", "--permission-mode", "bypassPermissions",
    ]  # fmt: skip
    if mcp:
        server = {"command": mcp.command[0], "args": mcp.command[1:], "env": mcp.env}
        config = {"mcpServers": {mcp.name: server}}
        argv += ["--strict-mcp-config", "--mcp-config", json.dumps(config)]
    env = space.env(
        ANTHROPIC_BASE_URL=url,
        ANTHROPIC_API_KEY="sk-ant-scripted",
        IS_SANDBOX="1",  # as root, Claude Code skips permissions only in a declared sandbox
        CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",  # no telemetry, updates, error reports
    )
    return Launch(argv, env)


CODEX_MODEL = "gpt-5.5"
"""A model Codex has metadata for. For an unknown one Codex offers no apply_patch tool, but
offers MCP tools at once (as a `namespace` tool `mcp__<server>`); for a known one it defers
them behind its client-run `tool_search` tool, whose output brings the namespace."""


def codex(
    space: Workspace,
    url: str,
    mcp: Mcp | None = None,
    prompt: str = PROMPT,
    model: str = CODEX_MODEL,
) -> Launch:
    provider = (
        f'model_providers.scripted={{name="scripted",base_url="{url}/v1",'
        'wire_api="responses",env_key="SCRIPTED_API_KEY"}'
    )
    argv = [
        str(clis.require("codex")), "exec", "--json", "--skip-git-repo-check",
        "-s", "workspace-write", "-m", model,
        "-c", "model_provider=scripted", "-c", provider,
    ]  # fmt: skip
    if mcp:
        # `codex exec` never asks, so an MCP tool needing approval fails unless pre-approved.
        server = (
            f"mcp_servers.{mcp.name}={{command={json.dumps(mcp.command[0])},"
            f"args={json.dumps(mcp.command[1:])},env={_toml_table(mcp.env)},"
            'default_tools_approval_mode="approve"}'
        )
        argv += ["-c", server]
    return Launch([*argv, prompt], space.env(SCRIPTED_API_KEY="sk-scripted"))


def _toml_table(values: dict[str, str]) -> str:
    return "{" + ",".join(f"{key}={json.dumps(value)}" for key, value in values.items()) + "}"


def gemini(space: Workspace, url: str, mcp: Mcp | None = None, prompt: str = PROMPT) -> Launch:
    """Gemini CLI: an MCP tool is `mcp_<server>_<tool>`. Without a chosen auth type in its
    settings the CLI stops headless and asks for one."""
    settings: dict[str, object] = {
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "privacy": {"usageStatisticsEnabled": False},
        "general": {"disableAutoUpdate": True},
    }
    if mcp:
        server = {"command": mcp.command[0], "args": mcp.command[1:], "env": mcp.env, "trust": True}
        settings["mcpServers"] = {mcp.name: server}
    (space.home / ".gemini").mkdir(exist_ok=True)
    (space.home / ".gemini" / "settings.json").write_text(json.dumps(settings))
    argv = [
        str(clis.require("gemini")), "-p", prompt, "--output-format", "stream-json",
        "--approval-mode", "yolo", "-m", "gemini-2.5-pro",
    ]  # fmt: skip
    env = space.env(
        GEMINI_API_KEY="scripted",
        GOOGLE_GEMINI_BASE_URL=url,
        GEMINI_CLI_TRUST_WORKSPACE="true",
    )
    return Launch(argv, env)


def opencode(space: Workspace, url: str, mcp: Mcp | None = None, prompt: str = PROMPT) -> Launch:
    """opencode: an OpenAI-compatible provider `scripted` from a config file outside the
    repository; an MCP tool is `<server>_<tool>`."""
    config: dict[str, object] = {
        "$schema": "https://opencode.ai/config.json",
        "provider": {
            "scripted": {
                "npm": "@ai-sdk/openai-compatible",
                "name": "Scripted",
                "options": {"baseURL": f"{url}/v1", "apiKey": "scripted"},
                "models": {"scripted-model": {"name": "Scripted", "tool_call": True}},
            }
        },
    }
    if mcp:
        server = {"type": "local", "command": mcp.command, "environment": mcp.env}
        config["mcp"] = {mcp.name: server}
    path = space.home / "opencode.json"
    path.write_text(json.dumps(config))
    opencode_bin = str(clis.require("opencode"))
    argv = [opencode_bin, "run", "--format", "json", "-m", "scripted/scripted-model", prompt]
    env = space.env(
        OPENCODE_CONFIG=str(path),
        OPENCODE_DISABLE_MODELS_FETCH="1",
        OPENCODE_DISABLE_AUTOUPDATE="1",
        # At start it installs @opencode-ai/plugin into its config dir from the npm registry;
        # the scripted server stands in (404), so the attempt is recorded and nothing leaves.
        npm_config_registry=f"{url}/npm/",
    )
    return Launch(argv, env)


def aider(space: Workspace, url: str, prompt: str = PROMPT) -> Launch:
    """Aider: no tools and no MCP; it edits through its edit format in the reply's text."""
    caches = space.home / ".aider" / "caches"
    caches.mkdir(parents=True, exist_ok=True)
    # Aider fetches litellm's model price list from GitHub unless a fresh copy is cached.
    (caches / "model_prices_and_context_window.json").write_text("{}")
    argv = [
        str(clis.require("aider")), "--model", "openai/scripted-model",
        "--openai-api-base", f"{url}/v1", "--message", prompt, "--edit-format", "whole",
        "--yes-always", "--no-auto-commits", "--no-check-update", "--no-analytics",
        "--no-pretty", "--no-stream", "--no-gitignore", "--no-show-model-warnings",
    ]  # fmt: skip
    env = space.env(OPENAI_API_KEY="sk-scripted", LITELLM_LOCAL_MODEL_COST_MAP="True")
    return Launch(argv, env)
