"""No orphan, ever (docs/reliability.md T2): children that left the agent's session die with its attempt.

Each agent here starts 200 children that call `setsid` (so they are in no session or process
group of the agent's) and whose parent exits (so no parent chain leads to them either). Whatever
way the attempt ends, success, failure, timeout, kill or a failing setup command, every one of
them must be gone when `corral` returns: the test counts the processes that carry the run's marks.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.core.log import events as ev
from corral.core.runs.rundir import RunDir, list_runs
from tests.conftest import wait_until
from tests.core.engine_helpers import (
    agent_block,
    assert_all_dead,
    corral,
    engine_output,
    events_of,
    kill9,
    only_run,
    processes_with_env,
    start_corral,
    state_of,
    wait_for_run,
    write_plan,
)

CHILDREN = 200

#: 200 children in their own sessions, started from a subshell that exits at once: every one of
#: them is reparented away from the agent and leads a session of its own.
ESCAPE = (
    f"( i=0; while [ $i -lt {CHILDREN} ]; do setsid sleep 411 & echo child $!; i=$((i+1)); done )"
)


@pytest.fixture(autouse=True)
def _no_leftovers(repo: Path) -> Iterator[None]:
    """Kill (by pid) whatever a failing test left running, so one failure stays one failure."""
    yield
    for rundir in list_runs(repo / ".git"):
        for pid in processes_with_env("CORRAL_RUN_ID", rundir.run_id):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def child_pids(rundir: RunDir, agent: str, attempt: int = 1) -> list[int]:
    """The pids the agent said it started (its output log)."""
    text = rundir.output_log(agent, attempt).read_text()
    return [int(pid) for pid in re.findall(r"^child (\d+)$", text, re.MULTILINE)]


def wait_for_children(rundir: RunDir) -> None:
    """Until the 200 children have escaped and run `sleep`, beside the agent's shell and sleep
    (a process shows its marks again once its exec is done)."""

    def escaped() -> bool:
        log = rundir.output_log("escaper", 1)
        if not log.is_file() or len(child_pids(rundir, "escaper")) < CHILDREN:
            return False
        return len(processes_with_env("CORRAL_RUN_ID", rundir.run_id)) == CHILDREN + 2

    wait_until(escaped, timeout=60, what="the agent's 200 children")


def assert_no_orphans(rundir: RunDir, agent: str) -> None:
    pids = child_pids(rundir, agent)
    assert len(pids) == CHILDREN, "the agent did not start its children; the test proves nothing"
    assert processes_with_env("CORRAL_RUN_ID", rundir.run_id) == []
    assert_all_dead(pids, timeout=1)


@pytest.mark.parametrize(
    ("tail", "fields", "outcome", "exit_code"),
    [
        ("sleep 0.3; exit 0", {}, "succeeded", 0),
        ("sleep 0.3; exit 3", {}, "failed", 1),
        ("sleep 600", {"timeout": "2s"}, "timed_out", 1),
        ("sleep 600", {"heartbeat_timeout": "1s"}, "killed", 1),
    ],
    ids=["success", "failure", "timeout", "hung"],
)
def test_setsid_children_do_not_outlive_the_attempt(
    repo: Path,
    tmp_path: Path,
    tail: str,
    fields: dict[str, str],
    outcome: str,
    exit_code: int,
) -> None:
    body = agent_block("escaper", ["sh", "-c", f"{ESCAPE}; {tail}"], **fields)
    result = corral(repo, "run", str(write_plan(tmp_path, body)), "--quiet")
    assert result.returncode == exit_code, result.stdout + result.stderr
    rundir = only_run(repo)
    assert state_of(rundir).agents["escaper"].attempts[0].state == outcome
    assert_no_orphans(rundir, "escaper")


def test_setsid_children_do_not_outlive_a_killed_agent(repo: Path, tmp_path: Path) -> None:
    body = agent_block("escaper", ["sh", "-c", f"{ESCAPE}; sleep 600"])
    engine = start_corral(repo, "run", str(write_plan(tmp_path, body)), "--quiet")
    rundir = wait_for_run(repo)
    wait_for_children(rundir)
    assert corral(repo, "kill", rundir.run_id, "escaper").returncode == 0
    assert engine.wait(timeout=60) == 1, engine_output(repo)
    finished = [e for e in events_of(rundir) if isinstance(e, ev.AgentFinished)]
    assert [e.outcome for e in finished] == ["killed"]
    assert_no_orphans(rundir, "escaper")


def test_children_of_a_failing_setup_command_do_not_outlive_the_attempt(
    repo: Path, tmp_path: Path
) -> None:
    body = agent_block("escaper", ["true"], setup=[["sh", "-c", f"{ESCAPE}; exit 1"]])
    result = corral(repo, "run", str(write_plan(tmp_path, body)), "--quiet")
    assert result.returncode == 1, result.stdout + result.stderr
    rundir = only_run(repo)
    assert "setup command 'sh' exited with status 1" in state_of(rundir).agents["escaper"].reason
    assert_no_orphans(rundir, "escaper")


def test_setsid_children_of_a_lost_attempt_are_stopped_on_resume(
    repo: Path, tmp_path: Path
) -> None:
    """The engine dies (SIGKILL); the resumed engine stops the attempt's escaped children too."""
    body = agent_block("escaper", ["sh", "-c", f"{ESCAPE}; sleep 600"])
    engine = start_corral(repo, "run", str(write_plan(tmp_path, body)), "--quiet")
    rundir = wait_for_run(repo)
    wait_for_children(rundir)
    kill9(engine)
    rundir.plan.write_text(rundir.plan.read_text().replace("sleep 600", "exit 0"))
    result = corral(repo, "run", "--resume", rundir.run_id, "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    first = state_of(rundir).agents["escaper"].attempts[0]
    assert first.state == "lost"
    assert "were still alive and were stopped" in first.reason
    assert_no_orphans(rundir, "escaper")
