"""corral's MCP server wired into each MCP-capable preset (core/presets/mcp.py): each CLI's own
configuration, the attempt's token never on a command line or in a file, on by default and off
with `mcp = false`, none in an image; and the server command itself starting as a CLI starts
it (the real CLIs: tests/agents/test_presets_mcp.py)."""

from __future__ import annotations

import importlib.resources
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from corral.core.log import events as ev
from corral.core.log import read_log
from corral.core.plan.model import AgentSpec, PlanError, parse_plan, resolve_env
from corral.core.presets import mcp
from corral.core.presets.attempt import Launch, render
from corral.core.presets.catalog import PresetError, load_catalog, parse_preset
from corral.core.presets.expand import expand, expand_plan, read_prompt
from corral.core.presets.schema import Preset
from tests.conftest import git
from tests.core.engine_helpers import corral

TOKEN = "tok-0123456789abcdef"
ATTEMPT_ENV = {
    "CORRAL_SOCKET": "/run/corral/control.sock",
    "CORRAL_RUN_ID": "r1",
    "CORRAL_AGENT_ID": "a",
    "CORRAL_ATTEMPT": "2",
    "CORRAL_AGENT_TOKEN": TOKEN,
    "CORRAL_OUTPUT": "/out",
    "CORRAL_SHARED": "/shared",
    "CORRAL_WORKSPACE": "/w",
}
MODELS = {"claude-code": "sonnet", "codex": "m", "gemini": "gemini-2.5-pro", "opencode": "x/m"}


def launch(name: str, wanted: bool | None = None, runtime: str = "local") -> Launch:
    preset = load_catalog().get(name)
    assert preset is not None
    agent: dict[str, object] = {"id": "a", "preset": name, "prompt": "P", "model": MODELS[name]}
    if wanted is not None:
        agent["mcp"] = wanted
    spec = expand(parse_plan({"agent": [agent]}).agents[0], preset, "P", {})
    own, _ = resolve_env(spec.env, {})
    server = mcp.engine_server() if mcp.enabled(spec.mcp, preset.mcp, runtime) else None
    env = {**own, **ATTEMPT_ENV}
    return render(spec, preset, env=env, workspace="/w", overlay="/o", mcp=server)


def test_claude_code_gets_a_config_file_in_its_overlay_and_only_that() -> None:
    wired = launch("claude-code")
    at = wired.argv.index("--mcp-config")
    assert wired.argv[at : at + 3] == ["--mcp-config", "/o/mcp.json", "--strict-mcp-config"]
    assert at < wired.argv.index("--"), "before the prompt"
    server = json.loads(wired.files["mcp.json"])["mcpServers"]["corral"]
    assert [server["command"], *server["args"]] == mcp.engine_server().command
    assert server["env"] == mcp.engine_server().env  # the rest it inherits
    assert server["alwaysLoad"] is True, "its tools are there for the first request"


def test_codex_gets_an_inline_table_passing_the_attempt_s_variables_by_name() -> None:
    argv = launch("codex").argv
    at = argv.index("-c", argv.index("-m") + 2)
    key, _, table = argv[at + 1].partition("=")
    assert key == "mcp_servers.corral"
    server = tomllib.loads(f"t = {table}")["t"]
    assert [server["command"], *server["args"]] == mcp.engine_server().command
    assert server["env_vars"] == list(ATTEMPT_ENV)
    assert server["default_tools_approval_mode"] == "approve"
    assert server["required"] is True
    assert argv[-2:] == ["--", "P"]


def test_gemini_gets_a_trusted_server_in_its_settings_overlay_naming_the_token() -> None:
    wired = launch("gemini")
    settings = json.loads(wired.files["gemini-defaults.json"])
    assert settings["security"]["auth"]["selectedType"] == "gemini-api-key", "kept"
    server = settings["mcpServers"]["corral"]
    assert server["trust"] is True
    assert server["env"]["CORRAL_AGENT_TOKEN"] == "$CORRAL_AGENT_TOKEN"  # it expands these


def test_opencode_gets_a_local_server_in_its_inline_config() -> None:
    wired = launch("opencode")
    config = json.loads(wired.env["OPENCODE_CONFIG_CONTENT"])
    assert "external_directory" in config["permission"], "kept"
    server = config["mcp"]["corral"]
    assert server["type"] == "local"
    assert server["command"] == mcp.engine_server().command


@pytest.mark.parametrize("name", sorted(MODELS))
def test_the_attempt_s_token_is_on_no_command_line_and_in_no_file(name: str) -> None:
    wired = launch(name)
    assert TOKEN not in json.dumps(wired.argv)
    assert TOKEN not in json.dumps(wired.files)
    assert [key for key, value in wired.env.items() if TOKEN in value] == ["CORRAL_AGENT_TOKEN"]


@pytest.mark.parametrize("name", sorted(MODELS))
def test_mcp_false_or_an_image_leaves_the_cli_as_it_was(name: str) -> None:
    plain = launch(name, wanted=False)
    assert plain == launch(name, runtime="container")
    assert not any("mcp" in arg for arg in plain.argv)
    assert "mcp.json" not in plain.files
    assert "mcpServers" not in json.dumps(plain.files)
    assert '"mcp"' not in plain.env.get("OPENCODE_CONFIG_CONTENT", "")


def test_mcp_true_where_it_cannot_be_kept_is_a_plan_problem(tmp_path: Path) -> None:
    agents = [
        {"id": "old", "preset": "aider", "prompt": "P", "model": "openai/m", "mcp": True},
        {"id": "boxed", "preset": "claude-code", "prompt": "P", "mcp": True},
        {"id": "fine", "preset": "claude-code", "prompt": "P", "mcp": True, "runtime": "sandbox"},
    ]
    plan = parse_plan({"run": {"runtime": "container"}, "agent": agents})
    _, problems = expand_plan(plan, load_catalog(), read_prompt(tmp_path), {})
    found = {(p.where, p.field): p.message for p in problems}
    assert set(found) == {("agent 'old'", "mcp"), ("agent 'boxed'", "mcp")}
    assert "has no MCP client" in found[("agent 'old'", "mcp")]
    assert "container runtime" in found[("agent 'boxed'", "mcp")]


def test_mcp_is_a_preset_agent_s_field() -> None:
    with pytest.raises(PlanError, match="mcp: only for an agent with a preset"):
        parse_plan({"agent": [{"id": "a", "command": ["true"], "mcp": False}]})


def test_a_preset_file_s_mcp_table_must_fit_it_but_a_frozen_old_one_runs_without() -> None:
    text = (
        importlib.resources.files("corral.core.presets")
        .joinpath("data", "claude-code.toml")
        .read_text()
    )
    without = text.replace('"{mcp_args}", ', "")
    with pytest.raises(PresetError, match=r"mcp: mcp.args are given but a command has no"):
        parse_preset(without, "mine.toml")
    with pytest.raises(PresetError, match=r"mcp: mcp.target must name the overlay file"):
        parse_preset(text.replace('target = "mcp.json"\n', ""), "mine.toml")
    old = Preset.model_validate(tomllib.loads(without.replace('target = "mcp.json"\n', "")))
    assert not mcp.supported(old.mcp)
    spec = expand(AgentSpec(id="a", preset="claude-code", prompt="P"), old, "P", {})
    launch = render(spec, old, env=ATTEMPT_ENV, workspace="/w", overlay="/o", mcp=None)
    assert "--mcp-config" not in launch.argv


def test_the_server_command_starts_and_lists_corral_s_tools_as_a_cli_starts_it(
    tmp_path: Path,
) -> None:
    """With only what the configuration gives it and the attempt's variables (as Codex starts
    it), from a working directory holding a `corral/` of its own, which it does not import."""
    decoy = tmp_path / "corral"
    decoy.mkdir()
    (decoy / "__init__.py").write_text("raise SystemExit('imported the worktree corral')\n")
    server = mcp.engine_server()
    requests: list[dict[str, object]] = [
        {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "test", "version": "0"},
        }},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"},
    ]  # fmt: skip
    answers: dict[object, dict[str, object]] = {}
    with subprocess.Popen(
        server.command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=tmp_path,
        env={"PATH": os.defpath, "HOME": str(tmp_path), **server.env, **ATTEMPT_ENV},
        text=True,
    ) as process:
        assert process.stdin is not None
        assert process.stdout is not None
        for request in requests:  # each answer before the next request, as a client does
            process.stdin.write(json.dumps(request) + "\n")
            process.stdin.flush()
            if "id" in request:
                line = process.stdout.readline()
                assert line, f"no answer to {request['method']} (exit {process.poll()})"
                answers[request["id"]] = json.loads(line)
        process.stdin.close()
        assert process.wait(timeout=30) == 0
    result = answers[2]["result"]
    assert isinstance(result, dict)
    names = {tool["name"] for tool in result["tools"]}
    assert {"heartbeat", "lock_acquire", "lock_release", "report_finding"} <= names


FAKE_CLI = Path(__file__).with_name("fake_mcp_cli.py")


def fake_preset() -> str:
    """A repository preset whose "CLI" is `fake_mcp_cli.py`, taking corral's server as Claude
    Code does (`claude-json`)."""
    python = json.dumps(sys.executable)
    return f"""
name = "fake-mcp"
description = "an MCP client calling corral's tools"
program = {python}
install = "it is the test's interpreter"
command = [{python}, "-P", {json.dumps(str(FAKE_CLI))}, "{{mcp_args}}"]

[mcp]
config = "claude-json"
target = "mcp.json"
args = ["{{mcp_config}}"]
"""


@pytest.mark.parametrize("runtime", ["local", "sandbox"])
def test_an_agent_s_mcp_client_reaches_the_engine_from_its_runtime(
    repo: Path, tmp_path: Path, runtime: str
) -> None:
    """Through the engine, no AI CLI: the preset's client starts `corral mcp agent` inside the
    attempt (in the sandbox too, where the host's files are read-only and only the socket is
    mounted), and its calls are the attempt's events; its finding is in the report."""
    if runtime == "sandbox":
        from corral.core.sandbox.bwrap import probe

        found = probe()
        if not found.ok:
            pytest.skip(f"bubblewrap cannot run here: {found.problem}")
    own = repo / ".corral" / "presets"
    own.mkdir(parents=True)
    (own / "fake-mcp.toml").write_text(fake_preset())
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "a fake MCP client preset")
    body = (
        f'[run]\nruntime = "{runtime}"\n\n[[agent]]\nid = "client"\npreset = "fake-mcp"\n'
        'prompt = "use the tools"\nkind = "audit"\n'
    )
    plan = tmp_path / "plan.toml"
    plan.write_text(body)
    done = corral(repo, "run", str(plan), "--run-id", f"mcp-{runtime}", "--quiet")
    rundir = repo / ".git" / "corral" / "runs" / f"mcp-{runtime}"
    log = (rundir / "agents" / "client" / "1" / "output.log").read_text()
    assert done.returncode == 0, done.stdout + done.stderr + log
    events = read_log(rundir / "events.jsonl").events
    beats = [e for e in events if isinstance(e, ev.AgentHeartbeat) and e.source == "beat"]
    assert [(b.agent, b.attempt, b.message) for b in beats] == [("client", 1, "from inside")]
    acquired = [(e.lock, e.agent, e.attempt) for e in events if isinstance(e, ev.LockAcquired)]
    assert acquired == [("db", "client", 1)]
    released = [(e.lock, e.agent) for e in events if isinstance(e, ev.LockReleased)]
    assert released == [("db", "client")]
    report = json.loads((rundir / "report.json").read_text())
    assert [f["title"] for f in report["findings"]] == ["A finding from inside"]
