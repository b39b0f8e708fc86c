"""What the preset tests share (test_presets_e2e.py, test_presets_mcp.py): each packaged
preset's case (its CLI, model, API, a file-writing script, how its env points it at the scripted
server), a plan of one preset agent, and the clean environment the agent runs in."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.agents import checks, clis
from tests.agents.script import Script, Turn

PATCH = (
    "*** Begin Patch\n*** Add File: hello.txt\n"
    + "".join(f"+{line}\n" for line in checks.CONTENT.splitlines())
    + "*** End Patch\n"
)
AIDER_REPLY = f"I'll create the file.\n\nhello.txt\n```\n{checks.CONTENT}```\n"


@dataclass(frozen=True)
class Case:
    cli: str
    """Its name in tests/agents/clis.py BINARIES."""
    preset: str
    model: str
    api: str
    script: Callable[[Path], Script]
    """The script, given the file to write (its absolute path in the agent's worktree)."""
    env: Callable[[str], dict[str, str]]
    """The agent's env, given the server's base URL."""
    preset_args: list[str] = field(default_factory=list)
    tool: str | None = None
    stream_tool: str | None = None
    """How the CLI's own stream names that tool call, when not by the tool's name (Codex
    reports an `apply_patch` as a `file_change` item)."""
    private_parents: bool = False
    """The repository must not lie under a world-writable directory such as /tmp: Gemini CLI
    skips a system settings file there (the attempt's overlay)."""


CASES = {
    "claude-code": Case(
        cli="claude",
        preset="claude-code",
        model="claude-sonnet-4-5",
        api="anthropic",
        tool="Write",
        script=lambda target: checks.write_file_script(
            "Write", {"file_path": str(target), "content": checks.CONTENT}
        ),
        env=lambda url: {"ANTHROPIC_BASE_URL": url, "ANTHROPIC_API_KEY": "sk-ant-scripted"},
    ),
    "codex": Case(
        cli="codex",
        preset="codex",
        model="gpt-5.5",
        api="responses",
        tool="apply_patch",
        stream_tool="file_change",
        script=lambda target: checks.write_file_script("apply_patch", {}, input=PATCH),
        env=lambda url: {"OPENAI_BASE_URL": f"{url}/v1", "OPENAI_API_KEY": "sk-scripted"},
    ),
    "gemini": Case(
        cli="gemini",
        preset="gemini",
        model="gemini-2.5-pro",
        api="gemini",
        tool="write_file",
        script=lambda target: checks.write_file_script(
            "write_file", {"file_path": str(target), "content": checks.CONTENT}
        ),
        env=lambda url: {"GOOGLE_GEMINI_BASE_URL": url, "GEMINI_API_KEY": "scripted"},
        private_parents=True,
    ),
    "opencode": Case(
        cli="opencode",
        preset="opencode",
        model="corral/scripted-model",
        api="chat",
        tool="write",
        script=lambda target: checks.write_file_script(
            "write", {"filePath": str(target), "content": checks.CONTENT}
        ),
        env=lambda url: {
            "OPENAI_BASE_URL": f"{url}/v1",
            "OPENAI_API_KEY": "sk-scripted",
            "OPENCODE_DISABLE_MODELS_FETCH": "1",
            # its start-up plugin install asks the npm registry: the scripted server answers 404
            "npm_config_registry": f"{url}/npm/",
        },
    ),
    "aider": Case(
        cli="aider",
        preset="aider",
        model="openai/scripted-model",
        api="chat",
        script=lambda target: Script(turns=[Turn(text=AIDER_REPLY)]),
        env=lambda url: {"OPENAI_BASE_URL": f"{url}/v1", "OPENAI_API_KEY": "sk-scripted"},
        preset_args=["--edit-format", "whole", "--no-show-model-warnings"],
    ),
}


def toml_table(values: dict[str, str]) -> str:
    return "{ " + ", ".join(f"{key} = {json.dumps(value)}" for key, value in values.items()) + " }"


def write_plan(path: Path, case: Case, env: dict[str, str], extra: str = "") -> Path:
    """A plan of one agent `agent` of the case's preset; `extra`: more lines of its table."""
    body = "\n".join(
        [
            '[run]\nname = "preset"\nkill_grace = "1s"\n',
            "[[agent]]",
            'id = "agent"',
            f"preset = {json.dumps(case.preset)}",
            'prompt_file = "task.md"',
            f"model = {json.dumps(case.model)}",
            f"preset_args = {json.dumps(case.preset_args)}",
            'timeout = "4m"',
            f"env = {toml_table(env)}",
            extra,
        ]
    )
    path.write_text(body + "\n")
    # a Markdown list: a prompt starting with `-` must not be taken for an option
    (path.parent / "task.md").write_text("- Create hello.txt containing a greeting.\n")
    return path


def agent_env(case: Case, home: Path, tmp: Path, url: str) -> dict[str, str]:
    """The agent's whole `env` in the plan: a HOME and TMPDIR of its own, its CLI on PATH,
    nothing of this machine's sign-in or configuration, the endpoint at the scripted server."""
    binary = clis.BINARIES[case.cli]
    path = os.pathsep.join(
        [str(binary.parent), str(clis.BINARIES["claude"].parent), os.environ["PATH"]]
    )
    return {
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "PATH": path,
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "NO_COLOR": "1",
        **case.env(url),
    }
