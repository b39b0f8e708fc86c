"""The engine's policy (retry, backoff, hang, forced kill, dead letter, concurrency, engine
fault) through the real Engine against FakeRuntime: scripted executions, no processes, no
worktrees, so each case runs in well under a second. The real-process tests
(tests/core/test_engine.py, test_resume.py, test_orphans.py) are the integration tier.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from corral.core.engine.runner import EXIT_ENGINE_ERROR, Outcome, start_run
from corral.core.log import events as ev
from corral.core.log import read_log
from corral.core.log.events import ExecutionIdentity
from corral.core.log.state import RunState
from corral.core.plan.model import PlanError, load_plan, parse_plan
from corral.core.plan.preflight import preflight
from corral.core.runs.rundir import RunDir, list_runs, new_run_id
from corral.core.runtime import registry
from corral.core.runtime.base import AttemptRef, RuntimeSetup
from corral.core.runtime.fake import SILENT, FakeRuntime, Script
from corral.core.runtime.local import LocalRuntime
from corral.core.runtime.procfs import process_start_time
from tests.core.engine_helpers import corral

RUN_HEADER = {
    "name": "policy",
    "runtime": "fake",
    "backoff": "50ms",
    "backoff_max": "100ms",
    "kill_grace": "100ms",
}
FAST = {"kind": "audit", "command": ["true"], "heartbeat_timeout": "2s", "timeout": "5s"}
"""An audit agent (no merge at the end); silence is a hang only after 2 s, so a loaded machine
does not turn a test about something else into one about liveness."""
QUICK_HANG = {**FAST, "heartbeat_timeout": "200ms"}
"""For the liveness tests: a hang is noticed after 200 ms."""


@dataclass
class Ran:
    outcome: Outcome
    fake: FakeRuntime
    events: list[ev.Event]

    @property
    def state(self) -> RunState:
        return self.outcome.state

    def of(self, kind: type[ev.Event]) -> list[Any]:
        return [event for event in self.events if isinstance(event, kind)]


def toml_value(value: object) -> str:
    return json.dumps(value)


def plan_text(agents: Sequence[Mapping[str, object]], **run: object) -> str:
    lines = ["[run]", *(f"{k} = {toml_value(v)}" for k, v in {**RUN_HEADER, **run}.items())]
    for agent in agents:
        lines += ["", "[[agent]]", *(f"{k} = {toml_value(v)}" for k, v in agent.items())]
    return "\n".join(lines) + "\n"


@pytest.fixture
def run_fake(repo: Path, tmp_path: Path) -> Iterator[Callable[..., Ran]]:
    """Run a plan on FakeRuntime with `scripts` per agent; returns the outcome and the log."""
    made: list[FakeRuntime] = []

    def run(
        agents: Sequence[Mapping[str, object]],
        scripts: Mapping[str, Sequence[Script]],
        **run_settings: object,
    ) -> Ran:
        path = tmp_path / "plan.toml"
        path.write_text(plan_text(agents, **run_settings))

        def factory(setup: RuntimeSetup) -> FakeRuntime:
            fake = FakeRuntime(setup, scripts)
            made.append(fake)
            return fake

        registry.register("fake", factory)
        pre = preflight(load_plan(path), path, repo)
        outcome = asyncio.run(start_run(pre, path.read_bytes(), new_run_id(), None))
        rundir = RunDir(list_runs(pre.common_dir)[-1].path)
        return Ran(outcome, made[-1], read_log(rundir.events).events)

    yield run
    registry.unregister("fake")


def test_failed_attempts_are_retried_after_a_capped_jittered_backoff(
    run_fake: Callable[..., Ran],
) -> None:
    flaky = [Script(exit_code=1, after=0.02), Script(exit_code=1, after=0.02), Script(after=0.02)]
    ran = run_fake([{**FAST, "id": "flaky", "retries": 2}], {"flaky": flaky})
    agent = ran.state.agents["flaky"]
    assert agent.state == "succeeded"
    assert [a.state for a in agent.attempts] == ["failed", "failed", "succeeded"]
    retried = ran.of(ev.AgentRetried)
    assert [r.attempt for r in retried] == [2, 3]
    assert retried[0].delay <= 0.05
    assert retried[1].delay <= 0.1
    assert "exited with status 1" in retried[0].reason
    starts = {e.attempt: e.ts for e in ran.of(ev.AgentStarting)}
    for retry in retried:  # no attempt starts before its backoff is over
        assert starts[retry.attempt] >= retry.ts + retry.delay - 0.01
    assert ran.outcome.exit_code == 0


def test_an_agent_out_of_retries_is_dead_lettered_and_its_dependents_skipped(
    run_fake: Callable[..., Ran],
) -> None:
    agents = [
        {**FAST, "id": "broken", "retries": 1},
        {**FAST, "id": "after", "depends_on": ["broken"]},
    ]
    ran = run_fake(agents, {"broken": [Script(exit_code=3, after=0.01)]})
    dead = ran.of(ev.AgentDeadLettered)
    assert [(d.agent, d.attempts) for d in dead] == [("broken", 2)]
    assert "exited with status 3" in dead[0].reason
    assert ran.state.agents["after"].state == "skipped"
    assert ("after", 1) not in ran.fake.executions  # a skipped agent never starts
    assert ran.outcome.exit_code == 1


def test_a_silent_agent_is_stalled_then_killed_as_hung(run_fake: Callable[..., Ran]) -> None:
    ran = run_fake([{**QUICK_HANG, "id": "quiet"}], {"quiet": [SILENT]})
    attempt = ran.state.agents["quiet"].attempts[0]
    assert attempt.state == "killed"
    assert attempt.reason.startswith("hung: no heartbeat, output or CPU use")
    assert [e.agent for e in ran.of(ev.AgentStalled)] == ["quiet"]
    [execution] = ran.fake.executions[("quiet", 1)]
    assert execution.signals == [signal.SIGTERM]  # it heeded the polite stop
    assert ran.state.agents["quiet"].state == "dead_lettered"


def test_output_and_cpu_use_keep_a_silent_agent_alive(run_fake: Callable[..., Ran]) -> None:
    scripts = {
        "writer": [Script(after=0.6, output_every=0.04)],
        "busy": [Script(after=0.6, cpu_rate=1.0)],
    }
    watched = {**FAST, "heartbeat_timeout": "300ms"}  # twice over within the script's 0.6 s
    ran = run_fake([{**watched, "id": "writer"}, {**watched, "id": "busy"}], scripts)
    assert ran.state.agents["writer"].state == "succeeded"
    assert ran.state.agents["busy"].state == "succeeded"
    sources = {(e.agent, e.source) for e in ran.of(ev.AgentHeartbeat)}
    assert ("writer", "output") in sources
    assert ("busy", "cpu") in sources


def test_an_agent_that_ignores_sigterm_is_killed_after_the_grace(
    run_fake: Callable[..., Ran],
) -> None:
    stubborn = Script(exit_code=None, ignores_sigterm=True, output_every=0.02)
    ran = run_fake([{**FAST, "id": "stubborn", "timeout": "200ms"}], {"stubborn": [stubborn]})
    attempt = ran.state.agents["stubborn"].attempts[0]
    assert attempt.state == "timed_out"
    [execution] = ran.fake.executions[("stubborn", 1)]
    assert execution.signals == [signal.SIGTERM, signal.SIGKILL]
    [finished] = ran.of(ev.AgentFinished)
    [running] = ran.of(ev.AgentStarted)
    assert finished.ts - running.ts >= 0.2 + 0.1  # its timeout, then the whole kill grace


def test_no_more_agents_run_at_once_than_max_parallel(run_fake: Callable[..., Ran]) -> None:
    agents = [{**FAST, "id": f"a{n}"} for n in range(6)]
    ran = run_fake(agents, {f"a{n}": [Script(after=0.05)] for n in range(6)}, max_parallel=2)
    running, most = 0, 0
    for event in ran.events:
        if isinstance(event, ev.AgentStarting):
            running += 1
            most = max(most, running)
        elif isinstance(event, ev.AgentFinished):
            running -= 1
    assert most == 2
    assert all(agent.state == "succeeded" for agent in ran.state.agents.values())


def test_a_runtime_that_cannot_start_the_agent_fails_the_attempt_not_the_engine(
    run_fake: Callable[..., Ran],
) -> None:
    scripts = {"missing": [Script(fails_to_start="cannot start 'x': not found"), Script()]}
    ran = run_fake([{**FAST, "id": "missing", "retries": 1}], scripts)
    attempts = ran.state.agents["missing"].attempts
    assert [a.state for a in attempts] == ["failed", "succeeded"]
    assert attempts[0].reason == "cannot start 'x': not found"
    assert ran.outcome.exit_code == 0


def test_an_exception_inside_an_attempt_stops_the_engine_as_its_own_fault(
    run_fake: Callable[..., Ran],
) -> None:
    """A bug in corral (here: the runtime's wait raises) is not the agent's failure: no retry;
    every other attempt is stopped, its tree confirmed gone; the traceback is logged; exit 3."""
    agents = [{**FAST, "id": "buggy", "retries": 3}, {**FAST, "id": "other"}]
    scripts = {
        "buggy": [Script(exit_code=None, after=0.05, raises="corral bug")],
        "other": [Script(after=30, output_every=0.02)],
    }
    ran = run_fake(agents, scripts)
    assert ran.outcome.exit_code == EXIT_ENGINE_ERROR
    assert "corral itself failed" in ran.outcome.message
    assert not ran.of(ev.AgentRetried)
    assert not ran.of(ev.AgentFinished)  # neither failed: a resume requeues both
    stopped = ran.events[-1]
    assert isinstance(stopped, ev.EngineStopped)
    assert "engine fault in buggy#1" in stopped.reason
    assert "Traceback" in stopped.reason
    assert "RuntimeError: corral bug" in stopped.reason
    [other] = ran.fake.executions[("other", 1)]
    assert other.ended.done()
    assert other.signals == [signal.SIGTERM]
    assert {ref.label for ref in ran.fake.stops} == {"buggy#1", "other#1"}


def test_agent_started_records_the_runtime_and_its_identity(run_fake: Callable[..., Ran]) -> None:
    ran = run_fake([{**FAST, "id": "one"}], {"one": [Script()]})
    [started] = ran.of(ev.AgentStarted)
    assert started.runtime == "fake"
    assert started.identity.runtime == "fake"
    assert started.identity.model_extra == {"fake_id": "one#1.0"}
    assert started.pid is None  # not a process of this host


def test_an_unknown_runtime_is_refused_before_the_run_naming_the_known_ones(
    repo: Path, tmp_path: Path
) -> None:
    path = tmp_path / "plan.toml"
    path.write_text(
        plan_text([{**FAST, "id": "a", "runtime": "cloud"}], runtime="local"),
    )
    with pytest.raises(PlanError) as raised:
        preflight(load_plan(path), path, repo)
    [problem] = raised.value.problems
    assert (problem.where, problem.field) == ("agent 'a'", "runtime")
    assert "'cloud' is not an installed runtime; known: container, local" in problem.message
    result = corral(repo, "validate", str(path))
    assert result.returncode == 2
    assert "'cloud' is not an installed runtime" in result.stderr


def test_the_retired_workspace_field_loads_only_with_the_value_it_always_had() -> None:
    old = {"agent": [{"id": "a", "command": ["true"], "workspace": "worktree"}]}
    assert parse_plan(old).agents[0].runtime is None
    with pytest.raises(PlanError, match="no longer a setting"):
        parse_plan({"agent": [{"id": "a", "command": ["true"], "workspace": "container"}]})


def test_the_local_runtime_reattaches_only_to_the_same_live_process(tmp_path: Path) -> None:
    """After a crash an execution is found by its identity: pid and kernel start time, so a
    process that merely reuses the pid is never taken for it."""

    setup = RuntimeSetup("r", tmp_path, "0" * 40, tmp_path / "wt", tmp_path / "run")
    runtime = LocalRuntime(setup)
    ref = AttemptRef(run_id="r", agent="a", attempt=1)
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        start = process_start_time(proc.pid)
        assert start is not None
        same = ExecutionIdentity(runtime="local", pid=proc.pid, start_time=start)
        other = ExecutionIdentity(runtime="local", pid=proc.pid, start_time=start - 100)
        found = asyncio.run(runtime.reattach(ref, same))
        assert found is not None
        assert found.identity.pid == proc.pid
        assert asyncio.run(runtime.reattach(ref, other)) is None
        assert asyncio.run(runtime.reattach(ref, ExecutionIdentity(runtime="local"))) is None
    finally:
        proc.kill()
        proc.wait()
        runtime.close()
    assert asyncio.run(runtime.reattach(ref, same)) is None  # gone


def test_runtimes_come_from_the_entry_point_group_too(monkeypatch: pytest.MonkeyPatch) -> None:
    point = metadata.EntryPoint(
        name="elsewhere", value="corral.core.runtime.fake:FakeRuntime", group="corral.runtimes"
    )
    monkeypatch.setattr(registry, "_entry_points", lambda: {"elsewhere": point})
    assert registry.known() == ["container", "elsewhere", "local", "ray", "sandbox", "ssh"]
    assert registry.is_known("elsewhere")
    assert registry.factory("elsewhere") is FakeRuntime
    with pytest.raises(
        registry.UnknownRuntime, match="known runtimes: container, elsewhere, local, ray, sandbox"
    ):
        registry.factory("cloud")


SPENDING = (
    '{"type": "assistant", "message": {"id": "m{n}", "content": [], '
    '"usage": {"input_tokens": 1000, "output_tokens": 0}}}'
)
"""A Claude stream line: each one a new turn of 1,000 tokens."""


def test_a_budget_exceeded_attempt_is_not_retried(run_fake: Callable[..., Ran]) -> None:
    spender = Script(exit_code=None, output_every=0.02, output_line=SPENDING)
    agent = {**FAST, "id": "spender", "stream": "claude", "max_tokens": 3000, "retries": 2}
    ran = run_fake([agent], {"spender": [spender, spender, spender]})
    (finished,) = ran.of(ev.AgentFinished)
    assert finished.outcome == "budget_exceeded"
    assert "over max_tokens = 3000" in finished.reason
    assert ran.of(ev.AgentRetried) == []
    assert ran.state.agents["spender"].state == "dead_lettered"
    assert ran.state.agents["spender"].usage.tokens > 3000
    assert ran.of(ev.AgentActivity), "the totals that crossed the budget are recorded"


def test_a_run_budget_of_turns_stops_the_running_agent_and_skips_the_rest(
    run_fake: Callable[..., Ran],
) -> None:
    spender = Script(exit_code=None, output_every=0.02, output_line=SPENDING)
    agents = [
        {**FAST, "id": "first", "stream": "claude"},
        {**FAST, "id": "second", "stream": "claude"},
    ]
    ran = run_fake(agents, {"first": [spender], "second": [spender]}, max_parallel=1, max_turns=5)
    assert [e.outcome for e in ran.of(ev.AgentFinished)] == ["budget_exceeded"]
    assert "the run took" in ran.of(ev.AgentFinished)[0].reason
    assert ran.state.agents["second"].state == "skipped"
    assert "budget spent" in ran.state.agents["second"].reason


def test_a_stream_that_is_not_json_counts_as_output_and_the_agent_succeeds(
    run_fake: Callable[..., Ran],
) -> None:
    chatty = Script(after=1.2, output_every=0.02)  # "fake output N": not the CLI's stream
    ran = run_fake([{**FAST, "id": "chatty", "stream": "codex"}], {"chatty": [chatty]})
    assert ran.state.agents["chatty"].state == "succeeded"
    assert ran.of(ev.AgentActivity) == []
    assert {e.source for e in ran.of(ev.AgentHeartbeat)} == {"output"}


def test_a_paused_fake_agent_is_not_hung_until_it_goes_on(
    repo: Path, run_fake: Callable[..., Ran]
) -> None:
    """The seam's optional Pausable on FakeRuntime: paused for three heartbeat timeouts, a silent
    agent is neither stalled nor killed; once unpaused its silence counts again and it is hung."""
    import threading

    from corral.core.operator import actions
    from corral.core.operator.identity import Operator
    from tests.conftest import wait_until

    alice = Operator(user="alice", reviewer="alice")
    done: list[str] = []

    def operate() -> None:
        def rundir() -> RunDir | None:
            runs = list_runs(repo / ".git")
            found = runs[-1] if runs else None
            if found is None or not found.events.exists():
                return None
            started = any(isinstance(e, ev.AgentStarted) for e in read_log(found.events).events)
            return found if started else None

        found = wait_until(rundir, what="the agent started")
        assert isinstance(found, RunDir)
        actions.pause(found, "quiet", alice)
        threading.Event().wait(0.6)  # three heartbeat timeouts, paused
        actions.unpause(found, "quiet", alice)
        done.append("ok")

    helper = threading.Thread(target=operate)
    helper.start()
    ran = run_fake([{**QUICK_HANG, "id": "quiet", "retries": 0}], {"quiet": [SILENT]})
    helper.join()
    assert done == ["ok"]
    [paused] = ran.of(ev.AgentPaused)
    [resumed] = ran.of(ev.AgentResumed)
    assert resumed.paused_for >= 0.6
    assert all(e.seq > resumed.seq for e in ran.of(ev.AgentStalled)), "no stall while paused"
    [execution] = ran.fake.executions[("quiet", 1)]
    assert execution.signals == [signal.SIGSTOP, signal.SIGCONT, signal.SIGTERM]
    assert ran.state.agents["quiet"].attempts[0].reason.startswith("hung")
    assert paused.by == "alice"
