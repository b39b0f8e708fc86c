"""Run control: a person stops a whole run (`corral stop`), and it carries on with a resume."""

from __future__ import annotations

from pathlib import Path

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
