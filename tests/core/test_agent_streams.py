"""An agent's event stream through the real engine: a plain `command` agent that prints a real
CLI's stream (tests/agents/samples/) with `stream = "claude"`, its activity recorded, verified
and folded; a malformed line counted while the run goes on; a token budget that stops an agent,
not retried, nothing of it left running."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from corral.core.log import events as ev
from tests.core.engine_helpers import (
    agent_block,
    corral,
    events_of,
    only_run,
    processes_with_env,
    state_of,
    write_plan,
)

PY = sys.executable
SAMPLES = Path(__file__).parents[1] / "agents" / "samples"
REPLAY = """
import sys, time
for line in open(sys.argv[1], "rb"):
    sys.stdout.buffer.write(line)
    sys.stdout.flush()
    time.sleep(0.02)
"""
SPENDER = """
import json, subprocess, sys, time
subprocess.Popen(["sleep", "600"])  # a child: must not outlive the stopped attempt
print(json.dumps({"type": "system", "subtype": "init", "model": "claude-sonnet-4-5"}), flush=True)
for n in range(10_000):
    usage = {"input_tokens": 1000, "output_tokens": 10}
    message = {"id": f"m{n}", "content": [{"type": "text", "text": "more"}], "usage": usage}
    print(json.dumps({"type": "assistant", "message": message}), flush=True)
    time.sleep(0.05)
"""


def _script(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_a_claude_stream_becomes_activity_events_that_verify_and_fold(
    repo: Path, tmp_path: Path
) -> None:
    sample = tmp_path / "claude.jsonl"
    lines = (SAMPLES / "claude.jsonl").read_bytes().splitlines(keepends=True)
    sample.write_bytes(b"".join([lines[0], b"{this is not json\n", *lines[1:]]))
    replay = _script(tmp_path, "replay.py", REPLAY)
    body = agent_block("coder", [PY, replay, str(sample)], stream="claude")
    result = corral(repo, "run", str(write_plan(tmp_path, body)), "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    rundir = only_run(repo)
    assert corral(repo, "verify", rundir.run_id).returncode == 0
    activity = [e for e in events_of(rundir) if isinstance(e, ev.AgentActivity)]
    assert activity
    assert all(e.agent == "coder" and e.attempt == 1 for e in activity)
    assert len(activity) <= 4, "activity is coalesced, not one event a line"
    state = state_of(rundir)
    agent = state.agents["coder"]
    assert agent.state == "succeeded"
    stream = agent.stream
    assert stream is not None
    assert (stream.tokens_in, stream.tokens_out, stream.turns) == (63542, 39, 2)
    assert stream.cost_usd == 0.192936
    assert stream.cost_source == "cli"
    assert stream.model == "claude-sonnet-4-5"
    assert stream.last_tool is not None
    assert stream.last_tool.name == "Write"
    assert stream.last_tool.summary.endswith("hello.txt")
    assert stream.result == "Created hello.txt."
    assert stream.malformed == 1
    assert state.usage.tokens == 63542 + 39
    assert state.usage.cost_usd == 0.192936
    assert agent.last_heartbeat is not None
    assert agent.last_heartbeat.source == "stream"
    shown = json.loads(corral(repo, "status", rundir.run_id, "--json", check=True).stdout)
    assert shown["usage"]["tokens_in"] == 63542
    assert shown["agents"]["coder"]["stream"]["last_tool"]["name"] == "Write"
    report = json.loads((rundir.path / "report.json").read_text())
    assert report["usage"]["tokens_in"] == 63542
    assert report["usage"]["cost_usd"] == 0.192936
    assert report["agents"][0]["usage"]["model"] == "claude-sonnet-4-5"
    assert "agent usage: 63581 tokens" in (rundir.path / "report.md").read_text()
    text = corral(repo, "status", rundir.run_id, check=True).stdout
    assert "63.6k tok $0.19 2t" in text, text
    assert "result: Created hello.txt." in text, text


@pytest.mark.parametrize(
    ("sample", "stream", "tool", "tokens"),
    [
        ("codex.jsonl", "codex", "file_change", 20074 + 10),
        ("gemini.jsonl", "gemini", "write_file", 24864 + 40),
        ("opencode.jsonl", "opencode", "write", 15710 + 40),
        ("aider.txt", "aider", "edit", 930 + 18),
    ],
)
def test_every_cli_s_stream_reaches_the_state(
    repo: Path, tmp_path: Path, sample: str, stream: str, tool: str, tokens: int
) -> None:
    replay = _script(tmp_path, "replay.py", REPLAY)
    body = agent_block("agent", [PY, replay, str(SAMPLES / sample)], stream=stream)
    result = corral(repo, "run", str(write_plan(tmp_path, body)), "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    rundir = only_run(repo)
    assert corral(repo, "verify", rundir.run_id).returncode == 0
    agent = state_of(rundir).agents["agent"]
    assert agent.stream is not None
    assert agent.stream.last_tool is not None
    assert agent.stream.last_tool.name == tool
    assert (agent.usage.tokens, agent.usage.tool_calls) == (tokens, 1)
    assert agent.stream.result


def test_a_token_budget_stops_the_agent_with_budget_exceeded_not_retried(
    repo: Path, tmp_path: Path
) -> None:
    spender = _script(tmp_path, "spend.py", SPENDER)
    body = agent_block(
        "spender", [PY, spender], stream="claude", max_tokens=5000, retries=2
    ) + agent_block("after", ["true"], depends_on=["spender"])
    result = corral(repo, "run", str(write_plan(tmp_path, body)), "--quiet")
    assert result.returncode == 1, result.stdout + result.stderr
    rundir = only_run(repo)
    events = events_of(rundir)
    finished = [e for e in events if isinstance(e, ev.AgentFinished)]
    assert [(e.agent, e.outcome) for e in finished] == [("spender", "budget_exceeded")]
    assert "over max_tokens = 5000" in finished[0].reason
    assert not [e for e in events if isinstance(e, ev.AgentRetried)]
    state = state_of(rundir)
    spent = state.agents["spender"]
    assert spent.state == "dead_lettered"
    assert len(spent.attempts) == 1
    assert spent.usage.tokens > 5000
    assert spent.usage.tokens < 5000 + 10 * 1010, "stopped within a few ticks of crossing"
    assert processes_with_env("CORRAL_RUN_ID", rundir.run_id) == []


def test_a_run_budget_stops_the_agents_and_starts_no_more(repo: Path, tmp_path: Path) -> None:
    spender = _script(tmp_path, "spend.py", SPENDER)
    body = agent_block("spender", [PY, spender], stream="claude") + agent_block(
        "later", [PY, spender], stream="claude"
    )
    header = "max_tokens = 3000\nmin_success = 0\nmax_parallel = 1\n"
    plan = write_plan(tmp_path, body, header=header)
    result = corral(repo, "run", str(plan), "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    state = state_of(only_run(repo))
    assert state.agents["spender"].attempts[0].state == "budget_exceeded"
    assert "the run used" in state.agents["spender"].attempts[0].reason
    assert state.agents["later"].state == "skipped"
    assert processes_with_env("CORRAL_RUN_ID", state.run_id) == []


def test_an_unknown_stream_or_a_budget_without_one_is_refused_before_the_run(
    repo: Path, tmp_path: Path
) -> None:
    body = agent_block("a", ["true"], stream="cursor") + agent_block("b", ["true"], max_turns=3)
    result = corral(repo, "run", str(write_plan(tmp_path, body)), "--quiet")
    assert result.returncode == 2, result.stdout + result.stderr
    assert "'cursor' is not a stream adapter; use one of aider, claude" in result.stderr
    assert "a budget needs the agent's stream" in result.stderr


def test_what_setup_commands_print_is_not_read_as_the_agent_s_stream(
    repo: Path, tmp_path: Path
) -> None:
    line = json.dumps({"type": "result", "usage": {"input_tokens": 999}, "num_turns": 9})
    body = agent_block("a", ["true"], stream="claude", setup=[["echo", line]])
    result = corral(repo, "run", str(write_plan(tmp_path, body)), "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    rundir = only_run(repo)
    assert line in (Path(state_of(rundir).agents["a"].attempts[0].log_path)).read_text()
    assert state_of(rundir).usage.tokens == 0
