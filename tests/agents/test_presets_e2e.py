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
from collections.abc import Callable
from pathlib import Path

import pytest

from corral.core.log import read_log
from tests.agents import checks, clis
from tests.agents.e2e import CASES, agent_env, write_plan
from tests.agents.model_server import ModelServer
from tests.agents.script import Script
from tests.conftest import git, make_repo
from tests.core.engine_helpers import corral, only_run, start_corral, state_of

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]
Server = Callable[[Script], ModelServer]


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_preset_agent_writes_a_file_that_corral_merges(
    name: str, tmp_path: Path, model_server: Server, private_dir: Path
) -> None:
    case = CASES[name]
    clis.require(case.cli)
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
    env = agent_env(case, home, tmp, server.url)
    plan = write_plan(tmp_path / "plan.toml", case, env)

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
    plan = write_plan(tmp_path / "plan.toml", case, env)
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
