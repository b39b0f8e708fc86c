"""Operators talk to a live engine: detach, kill, retry, logs, through the real socket."""

from __future__ import annotations

import os
import signal
import stat
from pathlib import Path

import pytest

from corral.core.log import events as ev
from corral.core.runs.engine_lock import engine_is_live
from tests.conftest import wait_until
from tests.core.engine_helpers import (
    agent_block,
    corral,
    events_of,
    only_run,
    processes_with_env,
    state_of,
    wait_for_event,
    wait_for_run,
    write_plan,
)


def test_detach_kill_retry_and_logs(repo: Path, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    waiter = [
        "sh",
        "-c",
        f'echo "attempt $CORRAL_ATTEMPT waiting"; while [ ! -f {gate} ]; do sleep 0.05; done',
    ]
    body = agent_block("victim", ["sleep", "600"]) + agent_block("waiter", waiter)
    body += agent_block("after", ["true"], depends_on=["victim"])
    plan = write_plan(tmp_path, body, header="min_success = 0\n")
    detached = corral(repo, "run", str(plan), "--detach")
    assert detached.returncode == 0, detached.stderr
    assert "is running in the background" in detached.stdout
    rundir = only_run(repo)
    run_id = rundir.run_id
    wait_for_event(
        rundir, lambda e: isinstance(e, ev.AgentStarted) and e.agent == "victim", what="victim"
    )

    killed = corral(repo, "kill", run_id, "victim", "--reason", "not needed")
    assert killed.returncode == 0, killed.stderr
    wait_for_event(rundir, lambda e: isinstance(e, ev.AgentCancelled), what="the cancel")
    state = state_of(rundir)
    assert state.agents["victim"].state == "cancelled"
    assert "not needed" in state.agents["victim"].reason
    wait_for_event(
        rundir, lambda e: isinstance(e, ev.AgentSkipped) and e.agent == "after", what="skip"
    )

    again = corral(repo, "kill", run_id, "victim")
    assert again.returncode == 1
    assert "has already ended (cancelled)" in again.stderr

    # a retry brings the cancelled agent back; the engine runs the plan it started with
    retried = corral(repo, "retry", run_id, "victim")
    assert retried.returncode == 0, retried.stderr
    assert "queued as attempt 2" in retried.stdout
    wait_for_event(
        rundir,
        lambda e: isinstance(e, ev.AgentStarted) and e.agent == "victim" and e.attempt == 2,
        what="attempt 2",
    )
    logs = corral(repo, "logs", run_id, "waiter")
    assert "attempt 1 waiting" in logs.stdout
    after = state_of(rundir).agents["after"]
    assert after.state in ("queued", "waiting"), "the skipped dependent should be queued again"
    corral(repo, "kill", run_id, "victim", check=True)
    gate.touch()
    wait_for_event(rundir, lambda e: isinstance(e, ev.RunFinished), what="the run to finish")
    state = state_of(rundir)
    assert state.agents["waiter"].state == "succeeded"
    assert [a.state for a in state.agents["victim"].attempts] == ["killed", "killed"]
    assert not processes_with_env("CORRAL_RUN_ID", run_id)
    assert corral(repo, "verify", run_id).returncode == 0


def test_logs_follow_until_the_attempt_ends(repo: Path, tmp_path: Path) -> None:
    talker = ["sh", "-c", "for i in 1 2 3; do echo line $i; sleep 0.2; done"]
    plan = write_plan(tmp_path, agent_block("talker", talker))
    assert corral(repo, "run", str(plan), "--detach").returncode == 0
    rundir = only_run(repo)
    wait_for_event(rundir, lambda e: isinstance(e, ev.AgentStarted), what="start")
    followed = corral(repo, "logs", rundir.run_id, "talker", "-f", timeout=30)
    assert followed.stdout.split("\n")[:3] == ["line 1", "line 2", "line 3"]


def test_sighup_does_not_stop_a_foreground_engine(repo: Path, tmp_path: Path) -> None:
    """An SSH connection that drops sends SIGHUP: the run goes on."""
    from tests.core.engine_helpers import start_corral

    gate = tmp_path / "gate"
    plan = write_plan(
        tmp_path, agent_block("w", ["sh", "-c", f"while [ ! -f {gate} ]; do sleep 0.05; done"])
    )
    engine = start_corral(repo, "run", str(plan))
    wait_for_event(wait_for_run(repo), lambda e: isinstance(e, ev.AgentStarted), what="start")
    os.kill(engine.pid, signal.SIGHUP)
    gate.touch()
    assert engine.wait(timeout=30) == 0
    assert [type(e).__name__ for e in events_of(only_run(repo))][-2:] == [
        "RunFinished",
        "EngineStopped",
    ]


def test_retry_of_a_finished_run_gives_the_agent_the_environment_the_run_started_with(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`corral retry` resumes the engine from a shell without DEMO_TOOLS: the agent still has it.

    Secrets are never stored: the agent gets the value the resuming shell has now, and an
    attempt whose secret the resuming shell lacks fails naming the variable.
    """
    probe = [
        "sh",
        "-c",
        'echo "attempt $CORRAL_ATTEMPT tools=${DEMO_TOOLS:-unset} token=${#PROBE_API_TOKEN}"; '
        "exit 1",
    ]
    plan = write_plan(tmp_path, agent_block("probe", probe), header="min_success = 0\n")
    monkeypatch.setenv("DEMO_TOOLS", "/opt/demo-tools")
    monkeypatch.setenv("PROBE_API_TOKEN", "first-secret-value")
    assert corral(repo, "run", str(plan), "--quiet").returncode == 0
    rundir = only_run(repo)
    assert state_of(rundir).agents["probe"].attempts[0].state == "failed"
    recorded = rundir.path / "environment.json"
    assert stat.S_IMODE(recorded.stat().st_mode) == 0o600
    text = recorded.read_text()
    assert "/opt/demo-tools" in text
    assert "PROBE_API_TOKEN" in text
    assert "first-secret-value" not in text  # a secret is recorded by name only

    monkeypatch.delenv("DEMO_TOOLS")
    monkeypatch.setenv("PROBE_API_TOKEN", "the-rotated-secret-value")
    retried = corral(repo, "retry", rundir.run_id, "probe")
    assert retried.returncode == 0, retried.stderr
    finished = wait_for_event(
        rundir,
        lambda e: isinstance(e, ev.AgentFinished) and e.attempt == 2,
        what="attempt 2 to end",
    )
    assert isinstance(finished, ev.AgentFinished)
    logs = corral(repo, "logs", rundir.run_id, "probe", "--attempt", "2").stdout
    assert "attempt 2 tools=/opt/demo-tools token=24" in logs, logs  # re-read: the new value

    monkeypatch.delenv("PROBE_API_TOKEN")
    wait_until(lambda: not engine_is_live(rundir), what="the resumed engine to end")
    assert corral(repo, "retry", rundir.run_id, "probe").returncode == 0
    third = wait_for_event(
        rundir,
        lambda e: isinstance(e, ev.AgentFinished) and e.attempt == 3,
        what="attempt 3 to end",
    )
    assert isinstance(third, ev.AgentFinished)
    assert third.outcome == "failed"
    assert "PROBE_API_TOKEN" in third.reason
    assert "export it" in third.reason
