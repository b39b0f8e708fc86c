"""The operator API (core/operator/): typed actions every front end calls, with the T1 refusal
applied inside it, the decision and retry rules in one place, and typed results and errors.
Real engines, real sockets, real git."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from corral.core.log import events as ev
from corral.core.operator import actions, decisions, policy, reading
from corral.core.operator.describe import command_line, progress_line, tail_line
from corral.core.operator.errors import (
    AgentRefused,
    DecisionRefused,
    EngineRefused,
    NoSuchAgent,
    OperatorError,
    StartFailed,
)
from corral.core.operator.guard import people_only_everywhere
from corral.core.operator.identity import Operator
from corral.core.runs.rundir import RunDir, list_runs
from tests.conftest import git, wait_until
from tests.core.engine_helpers import (
    agent_block,
    events_of,
    state_of,
    wait_for_event,
    write_plan,
)
from tests.core.operator_helpers import FAKE_AGENT, make_reviewable_run, refusals

ALICE = Operator(user="alice", reviewer="alice (ssh key SHA256:abc)")


def test_every_operator_action_refuses_an_agent_through_the_api(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An agent's environment: each action of the API raises AgentRefused, does nothing, and
    the run's log records the attempt that asked, as the CLI and the console both rely on."""
    rundir, sha, _ = make_reviewable_run(repo)
    before = git(repo, "rev-parse", "main")
    for key, value in FAKE_AGENT.items():
        monkeypatch.setenv(key, value)
    attempts: list[tuple[str, Callable[[], object]]] = [
        ("kill", lambda: actions.kill(rundir, "a", ALICE, "mine")),
        ("stop", lambda: actions.stop(rundir, ALICE, "mine")),
        ("pause", lambda: actions.pause(rundir, "a", ALICE)),
        ("unpause", lambda: actions.unpause(rundir, "a", ALICE)),
        ("retry", lambda: actions.retry(rundir, "a", ALICE)),
        ("lock break", lambda: actions.break_lock(rundir, "db", ALICE, "mine", 3)),
        ("retry", lambda: actions.resume_in_background(rundir, ["a"])),
        ("rerun", lambda: actions.rerun(rundir, ["a"])),
        ("approve", lambda: decisions.approve(rundir, ALICE, sha)),
        ("reject", lambda: decisions.reject(rundir, ALICE, "no", sha)),
        ("acknowledge tampering", lambda: decisions.acknowledge_tampering(rundir, ALICE, 1)),
    ]
    for action, attempt in attempts:
        with pytest.raises(AgentRefused, match=f"`{action}` is an operator action"):
            attempt()
    with pytest.raises(AgentRefused, match="`gc` is an operator action"):
        people_only_everywhere("gc", list_runs(repo / ".git"), repo / ".git")
    assert [(e.action, e.caller_agent, e.caller_attempt) for e in refusals(rundir)] == [
        (action, "intruder", 3) for action, _ in attempts
    ]
    assert git(repo, "rev-parse", "main") == before, "nothing landed"
    state = state_of(rundir)
    assert state.review is None
    assert state.agents["a"].state == "succeeded", "no retry was queued"


def test_decisions_record_the_reviewer_passed_in(repo: Path) -> None:
    """The reviewer is a value, not the environment: it is what the log and the landing name."""
    rundir, sha, _ = make_reviewable_run(repo)
    state = reading.status(rundir)
    assert decisions.report_sha256(rundir, state) == sha
    with pytest.raises(DecisionRefused, match="changed since it was shown"):
        decisions.approve(rundir, ALICE, "f" * 64)
    result = decisions.approve(rundir, ALICE, sha)
    assert result.by == ALICE.reviewer
    assert reading.status(rundir).review is not None
    assert reading.status(rundir).review.by == ALICE.reviewer  # type: ignore[union-attr]
    assert ALICE.reviewer in git(repo, "log", "-1", "--format=%B", "main")
    with pytest.raises(DecisionRefused, match="already approved"):
        decisions.reject(rundir, ALICE, "too late", sha)


def test_policy_says_which_decision_and_retry_is_allowed(repo: Path) -> None:
    rundir, sha, _ = make_reviewable_run(repo)
    state = state_of(rundir)
    assert policy.decision_blocker(state, sha) == ""
    assert policy.approve_blocker(state, sha) == ""
    assert policy.decision_blocker(state, None) == (
        "the report on disk is not the one the log recorded"
    )
    assert policy.acknowledge_blocker(state).startswith("nothing to acknowledge")
    assert not policy.retryable(state, "a"), "a succeeded agent is not retried"
    assert not policy.killable(state, "a")
    assert policy.agent_state(state, "nobody") == ""
    agent = state.agents["a"]
    for name in sorted(policy.RETRYABLE):
        ended = state.model_copy(update={"agents": {"a": agent.model_copy(update={"state": name})}})
        assert policy.retryable(ended, "a"), name
    running = state.model_copy(
        update={"agents": {"a": agent.model_copy(update={"state": "running"})}}
    )
    assert policy.killable(running, "a")
    assert not policy.retryable(running, "a")
    assert policy.decision_blocker(running, sha) == "agents still run"
    assert policy.acknowledge_blocker(running).startswith("nothing to acknowledge")
    unsynthesized = state.model_copy(
        update={"report": state.report.model_copy(update={"synthesized": False})}  # type: ignore[union-attr]
    )
    assert "below min_success" in policy.approve_blocker(unsynthesized, sha)
    assert policy.decision_blocker(unsynthesized, sha) == "", "a rejection is still allowed"


def test_reading_a_run(repo: Path) -> None:
    rundir, _, _ = make_reviewable_run(repo)
    assert reading.status(rundir).run_id == "r1"
    assert [run.run_id for run in reading.list_runs(repo / ".git")] == ["r1"]
    log = reading.output_log(reading.status(rundir), rundir, "a")
    assert (log.agent, log.path) == ("a", rundir.output_log("a", log.attempt))
    with pytest.raises(NoSuchAgent, match="no agent 'b' in run r1; agents: a"):
        reading.output_log(reading.status(rundir), rundir, "b")
    batches = reading.follow(rundir, lambda: True)
    assert [e.seq for e in next(batches)] == [e.seq for e in events_of(rundir)]
    assert next(batches, None) is None, "stopped: the follow ends"


def test_start_kill_and_break_through_a_live_engine(repo: Path, tmp_path: Path) -> None:
    """A run started through the API comes back as a typed id (no output to parse); kill and
    lock break go to its engine as typed requests and come back typed."""
    with pytest.raises(StartFailed) as bad:
        actions.start_run(repo, write_plan(tmp_path, "[[agent]]\nid = 'x'\n"))
    assert bad.value.invalid_plan
    plan = write_plan(tmp_path, agent_block("victim", ["sleep", "600"]), header="min_success = 0\n")
    started = actions.start_run(repo, plan)
    rundir = RunDir(repo / ".git" / "corral" / "runs" / started.run_id)
    assert started.pid > 0
    wait_for_event(
        rundir, lambda e: isinstance(e, ev.AgentStarted) and e.agent == "victim", what="victim"
    )
    with pytest.raises(OperatorError, match="bad request: lock"):
        actions.break_lock(rundir, "not a lock name!", ALICE, "why")
    with pytest.raises(EngineRefused):
        actions.break_lock(rundir, "db", ALICE, "nobody holds it")
    killed = actions.kill(rundir, "victim", ALICE, "not needed")
    assert killed.was == "running"
    wait_for_event(rundir, lambda e: isinstance(e, ev.RunFinished), what="the run to end")
    cancelled = [e for e in events_of(rundir) if isinstance(e, ev.AgentCancelled)]
    assert [(e.agent, e.by) for e in cancelled] == [("victim", "alice")]

    def refused_as_gone() -> bool:
        """The engine logs `run_finished` a moment before it stops listening."""
        try:
            actions.kill(rundir, "victim", ALICE)
        except EngineRefused as exc:
            return "no engine is listening" in str(exc)
        return False

    wait_until(refused_as_gone, what="the engine to stop listening")


def test_one_home_for_event_lines() -> None:
    """`corral run` and the console describe an event from the same module."""
    event = ev.AgentCancelled(agent="w", by="bob", reason="enough")
    assert progress_line(event) == "w cancelled by bob: enough"
    assert tail_line(event) == progress_line(event), "the tail falls back to the run's line"
    assert command_line(event, None) == "kill  w by bob: enough"
    broken = ev.LockBroken(lock="db", agent="w", token=4, by="bob", reason="stuck")
    assert tail_line(broken) == "lock db broken by bob (was w): stuck"
