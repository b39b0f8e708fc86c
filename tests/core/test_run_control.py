"""Run control: a person stops a whole run (`corral stop`), and it carries on with a resume;
pauses and unpauses an agent (`corral pause`, `corral unpause`)."""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

import psutil
import pytest

from corral.core.log import events as ev
from corral.core.operator import actions, policy
from corral.core.operator.errors import EngineRefused
from corral.core.operator.identity import Operator
from corral.core.runs.engine_lock import engine_is_live
from tests.conftest import wait_until
from tests.core.engine_helpers import (
    agent_block,
    corral,
    events_of,
    processes_with_env,
    start_corral,
    state_of,
    wait_for_event,
    wait_for_run,
    write_plan,
)

ALICE = Operator(user="alice", reviewer="alice")
LONG = "sleep 600 & sleep 600; echo never"


def test_stop_ends_every_agent_tree_records_who_and_resume_finishes(
    repo: Path, tmp_path: Path
) -> None:
    body = "".join(agent_block(f"w{i}", ["sh", "-c", LONG]) for i in range(2))
    body += agent_block("quick", ["true"])
    engine = start_corral(repo, "run", str(write_plan(tmp_path, body)), "--quiet")
    rundir = wait_for_run(repo)
    wait_until(
        lambda: len([e for e in events_of(rundir) if isinstance(e, ev.AgentStarted)]) >= 3,
        what="3 agents",
    )
    run_id = state_of(rundir).run_id
    assert policy.stoppable(state_of(rundir))
    assert processes_with_env("CORRAL_RUN_ID", run_id)
    result = corral(repo, "stop", run_id, "--reason", "lunch")
    assert result.returncode == 0, result.stderr
    assert "w0" in result.stdout
    assert "w1" in result.stdout
    assert f"corral run --resume {run_id}" in result.stdout
    assert engine.wait(timeout=30) == 143, "ends as after SIGTERM"
    assert not processes_with_env("CORRAL_RUN_ID", run_id), "an agent process outlived the stop"
    assert not engine_is_live(rundir)
    stopped = [e for e in events_of(rundir) if isinstance(e, ev.EngineStopped)]
    assert len(stopped) == 1
    assert stopped[0].by is not None
    assert stopped[0].reason == f"stopped by {stopped[0].by}: lunch"
    state = state_of(rundir)
    assert state.status == "stopped"
    assert not policy.stoppable(state)
    assert all(state.agents[f"w{i}"].state == "killed" for i in range(2))
    assert state.agents["w0"].reason == f"the run was stopped by {stopped[0].by}"
    with pytest.raises(EngineRefused, match="no engine running"):
        actions.stop(rundir, ALICE)
    rundir.plan.write_text(rundir.plan.read_text().replace(LONG, "echo resumed"))
    resumed = corral(repo, "run", "--resume", run_id, "--quiet")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    state = state_of(rundir)
    assert all(state.agents[f"w{i}"].attempt == 2 for i in range(2))
    assert state.verdict == "passed"


def test_stop_through_the_api_names_the_person(repo: Path, tmp_path: Path) -> None:
    plan = write_plan(tmp_path, agent_block("victim", ["sleep", "600"]))
    started = actions.start_run(repo, plan)
    rundir = wait_for_run(repo)
    wait_until(
        lambda: any(isinstance(e, ev.AgentStarted) for e in events_of(rundir)), what="the agent"
    )
    done = actions.stop(rundir, ALICE)
    assert (done.run_id, done.running) == (started.run_id, ("victim",))
    wait_until(lambda: not engine_is_live(rundir), what="the engine to exit")
    stopped = [e for e in events_of(rundir) if isinstance(e, ev.EngineStopped)]
    assert [(e.by, e.reason, e.signal) for e in stopped] == [("alice", "stopped by alice", 15)]
    assert not processes_with_env("CORRAL_RUN_ID", started.run_id)


COUNTER = (
    "import sys, time\n"
    "path = sys.argv[1]\n"
    "n = 0\n"
    "while True:\n"
    "    n += 1\n"
    "    open(path, 'w').write(str(n))\n"
    "    print(n, flush=True)\n"
    "    time.sleep(0.05)\n"
)


def _count(path: Path) -> int:
    try:
        return int(path.read_text() or 0)
    except (OSError, ValueError):
        return 0


def test_a_paused_agent_stands_still_outlives_its_timeouts_resumes_and_can_be_killed(
    repo: Path, tmp_path: Path
) -> None:
    """Paused: its counter and CPU do not advance and neither its timeout (3s) nor its
    heartbeat timeout (1s) fires while it is frozen for longer than both; unpaused, it counts on;
    paused again, a kill ends it with no process left."""
    script = tmp_path / "counter.py"
    script.write_text(COUNTER)
    counter = tmp_path / "count"
    body = agent_block(
        "ticker",
        [sys.executable, str(script), str(counter)],
        timeout="3s",
        heartbeat_timeout="1s",
    )
    started = actions.start_run(repo, write_plan(tmp_path, body, header="min_success = 0\n"))
    rundir = wait_for_run(repo)
    wait_until(lambda: _count(counter) > 3, what="the agent counting")
    assert policy.pausable(state_of(rundir), "ticker")
    paused = actions.pause(rundir, "ticker", ALICE)
    assert paused.processes >= 1
    with pytest.raises(EngineRefused, match="already paused"):
        actions.pause(rundir, "ticker", ALICE)
    pids = processes_with_env("CORRAL_RUN_ID", started.run_id)
    wait_until(
        lambda: all(psutil.Process(p).status() == psutil.STATUS_STOPPED for p in pids),
        what="the tree stopped",
    )
    frozen, cpu = _count(counter), _cpu(pids)
    time.sleep(3.5)  # longer than both timeouts: a watch that kept counting would end it
    state = state_of(rundir)
    assert state.agents["ticker"].state == "running"
    assert state.agents["ticker"].paused_by == "alice"
    assert policy.unpausable(state, "ticker")
    assert _count(counter) == frozen
    assert _cpu(pids) == cpu
    resumed = actions.unpause(rundir, "ticker", ALICE)
    assert resumed.paused_for >= 3.5
    wait_until(lambda: _count(counter) > frozen + 3, what="the agent counting on")
    actions.pause(rundir, "ticker", ALICE)
    actions.kill(rundir, "ticker", ALICE, "paused and done")
    wait_for_event(rundir, lambda e: isinstance(e, ev.RunFinished), what="the run to end")
    assert not processes_with_env("CORRAL_RUN_ID", started.run_id)
    events = events_of(rundir)
    assert [e.by for e in events if isinstance(e, ev.AgentPaused)] == ["alice", "alice"]
    assert [e.by for e in events if isinstance(e, ev.AgentResumed)] == ["alice"]
    state = state_of(rundir)
    assert state.agents["ticker"].state == "cancelled"
    assert not state.agents["ticker"].paused
    stalls = [e for e in events if isinstance(e, ev.AgentStalled)]
    assert not stalls, "no stall was seen while it was paused"


def _cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total
