"""Each packaged preset end to end: `corral run` of a plan with `preset = "..."`, the real CLI
driven by the scripted model through one file-writing tool call, its work committed on the
agent's branch and merged into the run's integration branch.

The plan points the preset at the scripted server through its endpoint variable in the
agent's `env` (what a user does to point it at a proxy or a local model), and gives the CLI a
HOME and TMPDIR of its own, so nothing of this machine's sign-in or configuration is read.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from corral.core.log import read_log
from tests.agents import checks, clis
from tests.agents.model_server import ModelServer
from tests.agents.script import Script, Turn
from tests.conftest import git, make_repo
from tests.core.engine_helpers import corral, only_run, start_corral, state_of

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
Server = Callable[[Script], ModelServer]
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


def _toml_table(values: dict[str, str]) -> str:
    return "{ " + ", ".join(f"{key} = {json.dumps(value)}" for key, value in values.items()) + " }"


def _plan(path: Path, case: Case, env: dict[str, str]) -> Path:
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
            f"env = {_toml_table(env)}",
        ]
    )
    path.write_text(body + "\n")
    # a Markdown list: a prompt starting with `-` must not be taken for an option
    (path.parent / "task.md").write_text("- Create hello.txt containing a greeting.\n")
    return path


@pytest.fixture
def private_dir() -> Iterator[Path]:
    """A directory no ancestor of which others may write (unlike anything under /tmp)."""
    root = Path.home() / ".cache" / "corral-tests"
    root.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(dir=root))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_preset_agent_writes_a_file_that_corral_merges(
    name: str, tmp_path: Path, model_server: Server, private_dir: Path
) -> None:
    case = CASES[name]
    binary = clis.require(case.cli)
    where = private_dir if case.private_parents else tmp_path
    repo = make_repo(where / "repo", {"README.md": "# sample\n"}).resolve()
    base = git(repo, "rev-parse", "HEAD").strip()
    home, tmp = tmp_path / "home", tmp_path / "tmp"  # TMPDIR beside HOME: Codex's sandbox
    home.mkdir()
    tmp.mkdir()
    if case.cli == "aider":  # Aider fetches litellm's price list unless a copy is cached
        caches = home / ".aider" / "caches"
        caches.mkdir(parents=True)
        (caches / "model_prices_and_context_window.json").write_text("{}")
    run_id = f"presets-{name}"
    target = repo / ".git" / "corral" / "worktrees" / run_id / "agent-1" / "hello.txt"
    server = model_server(case.script(target))
    path = os.pathsep.join(
        [str(binary.parent), str(clis.BINARIES["claude"].parent), os.environ["PATH"]]
    )
    env = {
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "PATH": path,
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "NO_COLOR": "1",
        **case.env(server.url),
    }
    plan = _plan(tmp_path / "plan.toml", case, env)

    done = corral(repo, "run", str(plan), "--run-id", run_id, "--quiet", timeout=280)

    rundir = only_run(repo)
    output = rundir.output_log("agent", 1)
    explain = f"{done.stdout}\n{done.stderr}\n--- output.log\n{output.read_text()[-6000:]}"
    assert done.returncode == 0, explain
    state = state_of(rundir)
    assert state.agents["agent"].state == "succeeded", explain
    assert [merged.agent for merged in state.merge.merged] == ["agent"], explain
    integration = f"corral/{run_id}/integration"
    assert git(repo, "show", f"{integration}:hello.txt") == checks.CONTENT.strip()
    changed = git(repo, "diff", "--name-only", base, integration).split()
    assert changed == ["hello.txt"], f"only the agent's file is merged: {changed}"
    prompts = [json.dumps(call.body) for call in server.model_calls(case.api)]
    assert any("- Create hello.txt" in body for body in prompts), "the prompt file's task"
    if case.tool:
        checks.assert_round_trip(server, case.api, case.tool)
    else:
        assert [call.turn for call in server.model_calls(case.api)] == [0]
    started = read_log(rundir.events)
    assert started.events[0].type == "run_started"
    # the CLI's stream became corral's: its tool call, its tokens, (where it says) its cost
    usage = state.agents["agent"].stream
    assert usage is not None, explain
    if case.tool:
        assert usage.last_tool is not None
        assert usage.last_tool.name == (case.stream_tool or case.tool), usage
        assert usage.tool_calls >= 1
    assert usage.tokens_in + usage.tokens_out > 0, usage
    assert usage.malformed == 0, usage
    shown = corral(repo, "status", run_id).stdout
    assert "tok" in shown, shown
    assert corral(repo, "verify", run_id).returncode == 0
    # nothing of corral's was written where the CLI keeps its own configuration
    assert not (home / ".gemini" / "settings.json").exists()
    assert not (home / ".config" / "opencode" / "opencode.json").exists()


def test_a_message_sent_to_claude_reaches_its_next_turn(
    tmp_path: Path, model_server: Server
) -> None:
    """`corral send` (the console's `i`) to a Claude Code agent with `input_format =
    "stream-json"`: the scripted model holds its second turn until the message was sent; the
    next request Claude makes carries it, and Claude exits when its turn's result arrives."""
    case = CASES["claude-code"]
    binary = clis.require(case.cli)
    repo = make_repo(tmp_path / "repo", {"README.md": "# sample\n"}).resolve()
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    run_id = "presets-claude-input"
    target = repo / ".git" / "corral" / "worktrees" / run_id / "agent-1" / "hello.txt"
    script = checks.write_file_script("Write", {"file_path": str(target), "content": "hi\n"})
    script = script.model_copy(
        update={"turns": [script.turns[0], script.turns[1].model_copy(update={"hold": True})]}
    )
    server = model_server(script)
    env = {
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "PATH": os.pathsep.join([str(binary.parent), os.environ["PATH"]]),
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        **case.env(server.url),
    }
    plan = _plan(tmp_path / "plan.toml", case, env)
    plan.write_text(plan.read_text() + 'input_format = "stream-json"\n')
    engine = start_corral(repo, "run", str(plan), "--run-id", run_id, "--quiet")
    try:
        assert server.holding.wait(120), "Claude never reached its second turn"
        sent = corral(repo, "send", run_id, "agent", "Please ALSO add a test.")
        assert sent.returncode == 0, sent.stderr
        server.release()
        assert engine.wait(timeout=200) == 0
    finally:
        server.release()
        if engine.poll() is None:
            engine.kill()
    rundir = only_run(repo)
    explain = rundir.output_log("agent", 1).read_text()[-4000:]
    state = state_of(rundir)
    assert state.agents["agent"].state == "succeeded", explain
    bodies = [json.dumps(call.body) for call in server.model_calls("anthropic")]
    assert any("Please ALSO add a test." in body for body in bodies), explain
    assert any("- Create hello.txt" in body for body in bodies), "the prompt, its first message"
    inputs = [e for e in read_log(rundir.events).events if e.type == "agent_input_sent"]
    assert len(inputs) == 1
    integration = f"corral/{run_id}/integration"
    assert git(repo, "show", f"{integration}:hello.txt") == "hi"
