"""`corral mcp serve`, a person's MCP front end, driven by the MCP SDK's own stdio client
against a real run: status shows the question an agent waits on, `answer` answers it, the
output tail and the report come back, and decisions exist only for a configured reviewer."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import anyio
from mcp import ClientSession, StdioServerParameters, stdio_client

from corral.core.log import events as ev
from corral.core.runs.rundir import RunDir
from tests.conftest import wait_until
from tests.core.engine_helpers import (
    agent_block,
    corral,
    engine_output,
    events_of,
    only_run,
    start_corral,
    state_of,
    wait_for_event,
    wait_for_run,
    write_plan,
)
from tests.core.mcp_helpers import mcp_script

PY = sys.executable


def operator_server(repo: Path, *extra: str) -> StdioServerParameters:
    return StdioServerParameters(
        command=PY,
        args=["-m", "corral.core.cli", "--repo", str(repo), "mcp", "serve", *extra],
        env=dict(os.environ),
        cwd=str(repo),
    )


async def _session_calls(
    server: StdioServerParameters, calls: list[tuple[str, dict[str, Any]]]
) -> tuple[list[str], list[tuple[bool, Any]]]:
    async with stdio_client(server) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        tools = [tool.name for tool in (await session.list_tools()).tools]
        results = []
        for name, arguments in calls:
            result = await session.call_tool(name, arguments)
            if result.is_error:
                text = "".join(getattr(block, "text", "") for block in result.content)
                results.append((False, text))
            else:
                results.append((True, result.structured_content))
        return tools, results


def session_calls(
    server: StdioServerParameters, calls: list[tuple[str, dict[str, Any]]]
) -> tuple[list[str], list[tuple[bool, Any]]]:
    return anyio.run(_session_calls, server, calls)


def test_an_assistant_reads_a_run_and_answers_an_agents_question(
    repo: Path, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    asker = mcp_script(
        tmp_path,
        "ask.py",
        """
        print("about to ask", flush=True)
        mark("answer", await call(session, "ask_human", question="Which port?", timeout=60))
        """,
    )
    body = agent_block("asker", [PY, str(asker), str(marks)])
    engine = start_corral(repo, "run", str(write_plan(tmp_path, body)), "--quiet")
    rundir = wait_for_run(repo)
    asked = wait_for_event(rundir, lambda e: isinstance(e, ev.HumanAsked), what="the question")
    assert isinstance(asked, ev.HumanAsked)
    tools, results = session_calls(
        operator_server(repo),
        [
            ("status", {"run": rundir.run_id}),
            ("output_tail", {"agent": "asker", "run": rundir.run_id, "lines": 5}),
            ("answer", {"agent": "asker", "text": "8080", "run": rundir.run_id}),
            ("approve", {"report_sha256": "0" * 64}),
        ],
    )
    assert {"runs", "status", "output_tail", "report_summary", "kill", "retry", "answer"} <= set(
        tools
    )
    assert "approve" not in tools
    assert "reject" not in tools
    (ok, status), (ok_tail, tail), (ok_answer, answered), (ok_approve, _) = results
    assert ok
    assert status["agents"]["asker"]["state"] == "waiting_for_human"
    assert status["agents"]["asker"]["question"]["question"] == "Which port?"
    assert ok_tail
    assert "about to ask" in tail["tail"]
    assert ok_answer, answered
    assert answered["agent"] == "asker"
    assert not ok_approve
    wait_until((marks / "answer").exists, timeout=30, what="the agent to hear the answer")
    assert json.loads((marks / "answer").read_text())[1]["answer"] == "8080"
    assert engine.wait(timeout=60) == 0, engine_output(repo)
    (answer,) = [e for e in events_of(rundir) if isinstance(e, ev.HumanAnswered)]
    assert answer.answer == "8080"

    tools, results = session_calls(
        operator_server(repo, "--reviewer", "alice"),
        [("report_summary", {}), ("approve", {"report_sha256": "0" * 64})],
    )
    assert {"approve", "reject"} <= set(tools)
    (ok, summary), (ok_approve, refused) = results
    assert ok
    assert summary["run_id"] == rundir.run_id
    assert len(summary["report_sha256"]) == 64
    assert not ok_approve
    assert "the report changed since it was shown" in refused
    _, [(ok, approved)] = session_calls(
        operator_server(repo, "--reviewer", "alice"),
        [("approve", {"report_sha256": summary["report_sha256"]})],
    )
    assert ok, approved
    assert approved["decision"] == "approved"
    (decision,) = [e for e in events_of(rundir) if isinstance(e, ev.ReportApproved)]
    assert decision.by.startswith("alice (via corral mcp serve as ")


def test_an_agent_cannot_answer_a_question(repo: Path, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    asker = mcp_script(
        tmp_path,
        "ask.py",
        """
        mark("answer", await call(session, "ask_human", question="Go?", timeout=8))
        """,
    )
    sneaky = tmp_path / "sneaky.sh"
    sneaky.write_text(
        f"while [ ! -e {marks}/asked ]; do sleep 0.05; done\n"
        f'{PY} -m corral.core.cli answer "$CORRAL_RUN_ID" asker yes > {marks}/sneaky.out 2>&1\n'
        f"echo $? > {marks}/sneaky.rc\n"
    )
    body = agent_block("asker", [PY, str(asker), str(marks)]) + agent_block(
        "sneaky", ["sh", str(sneaky)]
    )
    engine = start_corral(repo, "run", str(write_plan(tmp_path, body)), "--quiet")
    rundir = wait_for_run(repo)
    wait_for_event(rundir, lambda e: isinstance(e, ev.HumanAsked), what="the question")
    (marks / "asked").write_text("1")
    wait_until((marks / "sneaky.rc").exists, timeout=30, what="the sneaky agent's try")
    assert (marks / "sneaky.rc").read_text().strip() != "0"
    assert "operator actions come from people" in (marks / "sneaky.out").read_text()
    wait_until((marks / "answer").exists, timeout=60, what="the question to time out")
    assert json.loads((marks / "answer").read_text())[1]["answered"] is False
    assert engine.wait(timeout=60) == 0, engine_output(repo)
    refusals = [e for e in events_of(rundir) if isinstance(e, ev.OperatorActionRefused)]
    assert refusals
    assert refusals[0].action == "answer"


def test_an_assistant_reruns_a_left_out_agent_on_the_integration(
    repo: Path, tmp_path: Path
) -> None:
    """`rerun` is the operator API's re-run: refused for an agent that merged, naming the one
    left out; for that one a new run starts from the integration commit."""
    body = agent_block("alpha", ["sh", "-c", "echo alpha > README.md"]) + agent_block(
        "beta", ["sh", "-c", "echo beta > README.md"]
    )
    plan = write_plan(tmp_path, body, header="min_success = 1\n")
    corral(repo, "run", str(plan), "--quiet", check=True)
    first = only_run(repo)
    old = state_of(first)
    assert [left.agent for left in old.merge.left_out] == ["beta"]
    tools, results = session_calls(
        operator_server(repo),
        [
            ("rerun", {"run": first.run_id, "agents": ["alpha"]}),
            ("rerun", {"run": first.run_id, "agents": ["beta"]}),
        ],
    )
    assert "rerun" in tools
    refused, started = results
    assert refused[0] is False
    assert "alpha was not left out" in refused[1]
    assert "(left out: beta)" in refused[1]
    assert started[0] is True, started
    second = RunDir(first.path.parent / started[1]["run"])

    def finished() -> bool:
        return second.events.exists() and state_of(second).status == "finished"

    wait_until(finished, timeout=60, what="the re-run to finish")
    new = state_of(second)
    assert new.snapshot == old.merge.integration_commit
    assert list(new.agents) == ["beta"]
    assert new.rerun_of is not None
    assert new.rerun_of.run == first.run_id
