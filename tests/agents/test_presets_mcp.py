"""corral's MCP tools through each MCP-capable preset, end to end: `corral run` of a preset
agent whose real CLI the scripted model drives through corral's own tools (the preset wires
`corral mcp agent` in, each CLI its own way). The model sends a heartbeat, takes a lock and
releases it by its token; the run's events show each, attributed to the agent's attempt, and
its stream's tool calls as `corral.NAME`. Claude Code, as an audit agent, also reports a
finding that lands in the run's report.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from corral.core.log import events as ev
from corral.core.log import read_log
from tests.agents import clis
from tests.agents.e2e import CASES, agent_env, write_plan
from tests.agents.model_server import ModelServer
from tests.agents.script import Script, ToolCall, Turn
from tests.conftest import make_repo
from tests.core.engine_helpers import corral, only_run, state_of

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
Server = Callable[[Script], ModelServer]

MODELS = {"codex": "scripted-model"}
"""Codex offers MCP tools at once (as the namespace `mcp__corral`) only for a model it has no
metadata for; for a known one it defers them behind its `tool_search`."""
AUDITOR = "claude-code"
"""The CLI whose agent is an audit agent and reports a finding."""
FINDING = {
    "severity": "high",
    "title": "Greeting is not escaped",
    "file": "README.md",
    "line": 1,
    "detail": "The README's heading is shown as HTML unescaped.",
    "recommendation": "Escape it.",
    "tool": "scripted review",
}


def corral_tool(name: str, arguments: dict[str, object]) -> Turn:
    """A call of corral's tool `name`, under whichever spelling the CLI offers it."""
    names = [f"mcp__corral__{name}", f"mcp__corral.{name}", f"mcp_corral_{name}", f"corral_{name}"]
    return Turn(tool=ToolCall(names=names, arguments=arguments))


def script(audit: bool) -> Script:
    turns = [
        corral_tool("heartbeat", {"progress": 0.5, "message": "halfway through"}),
        corral_tool("lock_acquire", {"name": "db", "ttl": 60, "wait": 5, "reason": "migrate"}),
        # the run's first grant: fencing tokens start at 1
        corral_tool("lock_release", {"name": "db", "token": 1}),
    ]
    if audit:
        turns.append(corral_tool("report_finding", FINDING))
    return Script(turns=[*turns, Turn(text="Done with corral's tools.")])


@pytest.mark.parametrize("name", ["claude-code", "codex", "gemini", "opencode"])
def test_a_preset_agent_uses_corral_s_tools_over_mcp(
    name: str, tmp_path: Path, model_server: Server, private_dir: Path
) -> None:
    case = CASES[name]
    case = dataclasses.replace(case, model=MODELS.get(name, case.model))
    clis.require(case.cli)
    audit = name == AUDITOR
    where = private_dir if case.private_parents else tmp_path
    repo = make_repo(where / "repo", {"README.md": "# sample\n"}).resolve()
    home, tmp = tmp_path / "home", tmp_path / "tmp"
    home.mkdir()
    tmp.mkdir()
    server = model_server(script(audit))
    env = agent_env(case, home, tmp, server.url)
    plan = write_plan(tmp_path / "plan.toml", case, env, 'kind = "audit"' if audit else "")
    run_id = f"mcp-{name}"

    done = corral(repo, "run", str(plan), "--run-id", run_id, "--quiet", timeout=280)

    rundir = only_run(repo)
    output = rundir.output_log("agent", 1)
    explain = f"{done.stdout}\n{done.stderr}\n--- output.log\n{output.read_text()[-6000:]}"
    state = state_of(rundir)
    assert state.agents["agent"].state == "succeeded", explain
    calls = [(call.turn, call.tool_call) for call in server.model_calls(case.api)]
    turns = len(script(audit).turns)
    assert any(turn == turns - 1 for turn, _ in calls), f"not every tool answered: {calls}"
    events = read_log(rundir.events).events
    beats = [e for e in events if isinstance(e, ev.AgentHeartbeat) and e.source == "beat"]
    assert [(b.agent, b.attempt, b.progress, b.message) for b in beats] == [
        ("agent", 1, 0.5, "halfway through")
    ], explain
    acquired = [e for e in events if isinstance(e, ev.LockAcquired)]
    assert [(e.lock, e.agent, e.attempt, e.token) for e in acquired] == [("db", "agent", 1, 1)]
    released = [e for e in events if isinstance(e, ev.LockReleased)]
    assert [(e.lock, e.agent, e.token, e.reason) for e in released] == [
        ("db", "agent", 1, "released")
    ]
    tools = [
        tool.name
        for e in events
        if isinstance(e, ev.AgentActivity) and e.agent == "agent"
        for tool in e.tools
    ]
    expected = ["corral.heartbeat", "corral.lock_acquire", "corral.lock_release"]
    expected += ["corral.report_finding"] if audit else []
    assert [t for t in tools if t.startswith("corral.")] == expected, tools
    if audit:
        report = json.loads((rundir.path / "report.json").read_text())
        found = [
            (
                f["severity"],
                f["title"],
                f["file"],
                f["line"],
                f["agents"],
                f["reported"][0]["attempt"],
            )
            for f in report["findings"]
        ]
        assert found == [("high", FINDING["title"], "README.md", 1, ["agent"], 1)], report
