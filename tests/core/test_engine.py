"""The engine end to end: real `corral` processes, real git repositories, real agents."""

from __future__ import annotations

import json
import re
import signal
import sys
from pathlib import Path

import pytest

from corral.core.log import events as ev
from tests.conftest import git, wait_until
from tests.core.engine_helpers import (
    agent_block,
    assert_all_dead,
    corral,
    events_of,
    only_run,
    processes_with_env,
    start_corral,
    state_of,
    wait_for_run,
    write_plan,
)

PY = sys.executable


def test_twenty_agents_with_dependencies_complete_and_verify(repo: Path, tmp_path: Path) -> None:
    body = ""
    for i in range(20):
        deps = [f"a{i - 1}"] if i % 4 else []  # five chains of four
        body += agent_block(
            f"a{i}",
            ["sh", "-c", 'echo "$CORRAL_AGENT_ID in $CORRAL_WORKSPACE"; test -f README.md'],
            depends_on=deps,
        )
    plan = write_plan(tmp_path, body, header="max_parallel = 6\n")
    result = corral(repo, "run", str(plan), "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    rundir = only_run(repo)
    state = state_of(rundir)
    assert state.status == "finished"
    assert state.verdict == "passed"
    assert {agent.state for agent in state.agents.values()} == {"succeeded"}
    started = {e.agent: e.seq for e in events_of(rundir) if isinstance(e, ev.AgentStarted)}
    finished = {e.agent: e.seq for e in events_of(rundir) if isinstance(e, ev.AgentFinished)}
    for i in range(20):
        if i % 4:
            assert finished[f"a{i - 1}"] < started[f"a{i}"], (
                "a dependent started before its dependency ended"
            )
    verify = corral(repo, "verify", rundir.run_id)
    assert verify.returncode == 0, verify.stderr
    assert "ok, " in verify.stdout
    # each attempt ran in its own worktree, on its own branch, from the snapshot
    branches = git(repo, "branch", "--list", f"corral/{rundir.run_id}/*").split()
    assert len([b for b in branches if b.startswith("corral/") and b.count("/") == 3]) == 20
    assert f"corral/{rundir.run_id}/integration" in branches
    assert git(repo, "rev-parse", "main") == state.snapshot
    log = (rundir.output_log("a0", 1)).read_text()
    assert "a0 in " in log


def test_hung_agent_is_killed_retried_then_dead_lettered(repo: Path, tmp_path: Path) -> None:
    body = agent_block("hang", ["sleep", "600"], heartbeat_timeout="600ms", retries=1)
    plan = write_plan(tmp_path, body)
    result = corral(repo, "run", str(plan), "--quiet")
    assert result.returncode == 1, result.stdout
    state = state_of(only_run(repo))
    agent = state.agents["hang"]
    assert agent.state == "dead_lettered"
    assert [a.state for a in agent.attempts] == ["killed", "killed"]
    assert all("hung: no heartbeat, output or CPU" in a.reason for a in agent.attempts)
    kinds = [
        type(e).__name__ for e in events_of(only_run(repo)) if getattr(e, "agent", None) == "hang"
    ]
    assert "AgentStalled" in kinds
    assert kinds.index("AgentRetried") < kinds.index("AgentDeadLettered")
    assert not processes_with_env("CORRAL_RUN_ID", state.run_id)


def test_agent_ignoring_sigterm_is_sigkilled_with_its_grandchildren(
    repo: Path, tmp_path: Path
) -> None:
    script = tmp_path / "stubborn.py"
    script.write_text(
        "import signal, subprocess, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "child = subprocess.Popen(['sleep', '600'])\n"
        "grand = subprocess.Popen(['sh', '-c', 'sleep 600 & echo grandchild $!; wait'])\n"
        "print('child', child.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    body = agent_block("stubborn", [PY, str(script)], heartbeat_timeout="800ms")
    plan = write_plan(tmp_path, body)
    result = corral(repo, "run", str(plan), "--quiet")
    assert result.returncode == 1
    rundir = only_run(repo)
    output = rundir.output_log("stubborn", 1).read_text()
    pids = [int(pid) for pid in re.findall(r"(?:child|grandchild) (\d+)", output)]
    started = [e for e in events_of(rundir) if isinstance(e, ev.AgentStarted)]
    assert len(pids) == 2
    assert started[0].pid is not None
    assert_all_dead([*pids, started[0].pid])
    assert state_of(rundir).agents["stubborn"].attempts[0].state == "killed"


def test_sigterm_to_engine_stops_every_agent_tree_and_resume_finishes(
    repo: Path, tmp_path: Path
) -> None:
    body = "".join(
        agent_block(f"w{i}", ["sh", "-c", "sleep 600 & sleep 600; echo never"]) for i in range(3)
    ) + agent_block("quick", ["true"])
    plan = write_plan(tmp_path, body)
    engine = start_corral(repo, "run", str(plan), "--quiet")
    rundir = wait_for_run(repo)
    wait_until(
        lambda: len([e for e in events_of(rundir) if isinstance(e, ev.AgentStarted)]) >= 4,
        what="4 agents",
    )
    run_id = state_of(rundir).run_id
    assert processes_with_env("CORRAL_RUN_ID", run_id)
    engine.send_signal(signal.SIGTERM)
    assert engine.wait(timeout=30) == 128 + signal.SIGTERM
    assert not processes_with_env("CORRAL_RUN_ID", run_id), "an agent process outlived the engine"
    state = state_of(rundir)
    assert state.status == "stopped"
    assert all(state.agents[f"w{i}"].state == "killed" for i in range(3))
    assert state.agents["quick"].state == "succeeded"
    # resume: the three get a new attempt (not counted as retries); rewrite them to finish fast
    (rundir.plan).write_text(
        rundir.plan.read_text().replace("sleep 600 & sleep 600; echo never", "echo resumed")
    )
    result = corral(repo, "run", "--resume", run_id, "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    state = state_of(rundir)
    assert all(state.agents[f"w{i}"].attempt == 2 for i in range(3))
    assert state.agents["quick"].attempt == 1
    assert corral(repo, "verify", run_id).returncode == 0


def test_heartbeat_from_agent_is_logged_with_source_and_progress(
    repo: Path, tmp_path: Path
) -> None:
    body = agent_block(
        "beater", ["sh", "-c", "corral heartbeat --progress 40% 'reading files' && echo sent"]
    )
    plan = write_plan(tmp_path, body)
    result = corral(repo, "run", str(plan), "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    beats = [
        e
        for e in events_of(only_run(repo))
        if isinstance(e, ev.AgentHeartbeat) and e.source == "beat"
    ]
    assert len(beats) == 1
    assert (beats[0].progress, beats[0].message) == (0.4, "reading files")


def test_progress_and_message_stay_while_output_keeps_the_agent_alive(
    repo: Path, tmp_path: Path
) -> None:
    """A `corral heartbeat --progress` followed by output: the output updates "last seen" only."""
    beater = [
        "sh",
        "-c",
        "corral heartbeat --progress 40% 'reading files' && "
        "for i in 1 2 3 4 5 6 7 8; do echo tick $i; sleep 0.3; done",
    ]
    plan = write_plan(tmp_path, agent_block("beater", beater))
    result = corral(repo, "run", str(plan), "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    rundir = only_run(repo)
    beats = [e for e in events_of(rundir) if isinstance(e, ev.AgentHeartbeat)]
    first = next(i for i, e in enumerate(beats) if e.source == "beat")
    later = [e for e in beats[first + 1 :] if e.source == "output"]
    assert later, [(e.source, e.progress) for e in beats]  # the case that blanked progress
    seen = state_of(rundir).agents["beater"].last_heartbeat
    assert seen is not None
    assert (seen.source, seen.ts) == ("output", later[-1].ts)
    assert (seen.progress, seen.message) == (0.4, "reading files")
    status = corral(repo, "status", rundir.run_id, check=True).stdout
    assert "40% reading files" in status


def test_progress_is_kept_per_attempt_and_field_by_field() -> None:
    """What the agent said stays until it says something new; a new attempt starts blank."""
    from corral.core.log.state import fold

    agent = ev.AgentSummary(id="a", kind="coding", command=["true"])
    run = ev.RunStarted(
        run_id="r",
        name="r",
        repo="/r",
        base_ref="main",
        snapshot="0" * 40,
        plan_sha256="0" * 64,
        agents=[agent],
        max_parallel=1,
        required_successes=1,
        worktree_root="/w",
        engine=ev.EngineInfo(pid=1, start_time=1.0, host="h", user="u"),
    )

    def beat(attempt: int, source: ev.HeartbeatSource, **said: object) -> ev.AgentHeartbeat:
        return ev.AgentHeartbeat(agent="a", attempt=attempt, source=source, **said)  # type: ignore[arg-type]

    def seen(*events: ev.EventBase) -> tuple[object, ...]:
        last = fold([run, *events]).agents["a"].last_heartbeat  # type: ignore[list-item]
        assert last is not None
        return (last.source, last.progress, last.message)

    said = beat(1, "beat", progress=0.4, message="reading")
    assert seen(said, beat(1, "output"), beat(1, "cpu")) == ("cpu", 0.4, "reading")
    assert seen(said, beat(1, "beat", message="writing")) == ("beat", 0.4, "writing")
    assert seen(said, beat(1, "beat", progress=0.5)) == ("beat", 0.5, "reading")
    assert seen(said, beat(2, "output")) == ("output", None, None)


def test_output_and_cpu_count_as_signs_of_life(repo: Path, tmp_path: Path) -> None:
    talker = ["sh", "-c", "for i in 1 2 3 4 5 6; do echo tick $i; sleep 0.3; done"]
    burner = [PY, "-c", "import time\nend = time.time() + 2\nwhile time.time() < end: pass"]
    body = agent_block("talker", talker, heartbeat_timeout="1s") + agent_block(
        "burner", burner, heartbeat_timeout="1s"
    )
    plan = write_plan(tmp_path, body)
    result = corral(repo, "run", str(plan), "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    sources = {
        (e.agent, e.source) for e in events_of(only_run(repo)) if isinstance(e, ev.AgentHeartbeat)
    }
    assert ("talker", "output") in sources
    assert ("burner", "cpu") in sources


def test_heartbeat_outside_an_agent_says_so(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for key in ("CORRAL_SOCKET", "CORRAL_AGENT_ID", "CORRAL_ATTEMPT", "CORRAL_AGENT_TOKEN"):
        monkeypatch.delenv(key, raising=False)
    result = corral(repo, "heartbeat", "hello")
    assert result.returncode == 1
    assert "works inside an agent started by corral" in result.stderr


def test_failed_dependency_skips_dependents_with_reason(repo: Path, tmp_path: Path) -> None:
    body = (
        agent_block("base", ["false"])
        + agent_block("child", ["true"], depends_on=["base"])
        + agent_block("grandchild", ["true"], depends_on=["child"])
        + agent_block("other", ["true"])
    )
    plan = write_plan(tmp_path, body, header="min_success = 1\n")
    result = corral(repo, "run", str(plan), "--quiet")
    assert result.returncode == 0  # one success was all the plan asked for
    state = state_of(only_run(repo))
    assert state.agents["base"].state == "dead_lettered"
    assert state.agents["child"].state == "skipped"
    assert "base dead_lettered" in state.agents["child"].reason
    assert state.agents["grandchild"].state == "skipped"
    assert state.agents["other"].state == "succeeded"


def test_below_min_success_exits_nonzero_and_says_why(repo: Path, tmp_path: Path) -> None:
    plan = write_plan(
        tmp_path, agent_block("ok", ["true"]) + agent_block("bad", ["sh", "-c", "exit 3"])
    )
    result = corral(repo, "run", str(plan))
    assert result.returncode == 1
    state = state_of(only_run(repo))
    assert state.verdict == "failed"
    assert "1 of 2 agents succeeded; 2 required" in result.stdout
    assert state.agents["bad"].attempts[0].exit_code == 3
    # piped, the closing table is plain aligned text: one line per agent, columns lined up
    lines = result.stdout.splitlines()
    header = next(line for line in lines if line.startswith("agent "))
    rows = [line for line in lines if line.startswith(("ok ", "bad "))]
    assert len(rows) == 2
    column = header.index("state")
    assert [row[column:].split()[1] for row in rows] == ["succeeded", "dead_lettered"]


def test_agent_environment_and_private_output_dir(repo: Path, tmp_path: Path) -> None:
    dump = [
        PY,
        "-c",
        "import json, os\n"
        "keep = ('CORRAL_', 'TRACEPARENT', 'MY_')\n"
        "print(json.dumps({k: v for k, v in os.environ.items() if k.startswith(keep)}))",
    ]
    plan = write_plan(tmp_path, agent_block("env", dump, env={"MY_SETTING": "42"}))
    assert corral(repo, "run", str(plan), "--quiet").returncode == 0
    rundir = only_run(repo)
    env = json.loads(rundir.output_log("env", 1).read_text())
    assert env["MY_SETTING"] == "42"
    assert env["CORRAL_AGENT_ID"] == "env"
    assert env["CORRAL_RUN_ID"] == rundir.run_id
    assert env["CORRAL_OUTPUT"] == str(rundir.output_dir("env", 1))
    assert Path(env["CORRAL_WORKSPACE"]).is_dir()
    assert not Path(env["CORRAL_WORKSPACE"]).is_relative_to(repo / "src")
    assert re.fullmatch(r"00-[0-9a-f]{32}-[0-9a-f]{16}-01", env["TRACEPARENT"])
    assert (Path(env["CORRAL_OUTPUT"]).stat().st_mode & 0o777) == 0o700
    assert (rundir.path.stat().st_mode & 0o777) == 0o700


def test_setup_and_copy_run_in_the_workspace(repo: Path, tmp_path: Path) -> None:
    (repo / ".env").write_text("TOKEN=abc\n")
    body = agent_block(
        "configured",
        ["sh", "-c", "cat .env && cat setup-ran"],
        setup=[["sh", "-c", "echo yes > setup-ran"]],
        copy=[".env"],
    )
    plan = write_plan(tmp_path, body)
    result = corral(repo, "run", str(plan), "--quiet")
    assert result.returncode == 0, result.stdout
    output = only_run(repo).output_log("configured", 1).read_text()
    assert "TOKEN=abc" in output
    assert "yes" in output


def test_failing_setup_fails_the_attempt(repo: Path, tmp_path: Path) -> None:
    body = agent_block("broken", ["true"], setup=[["sh", "-c", "exit 4"]])
    result = corral(repo, "run", str(write_plan(tmp_path, body)), "--quiet")
    assert result.returncode == 1
    attempt = state_of(only_run(repo)).agents["broken"].attempts[0]
    assert attempt.state == "failed"
    assert "setup command 'sh' exited with status 4" in attempt.reason


def test_status_and_runs_json_shapes(repo: Path, tmp_path: Path) -> None:
    plan = write_plan(tmp_path, agent_block("one", ["true"]))
    corral(repo, "run", str(plan), "--quiet", check=True)
    status = json.loads(corral(repo, "status", "--json", check=True).stdout)
    assert status["status"] == "finished"
    assert status["agents"]["one"]["state"] == "succeeded"
    assert status["agents"]["one"]["attempts"][0]["branch"].startswith("corral/")
    runs = json.loads(corral(repo, "runs", "--json", check=True).stdout)
    assert [run["status"] for run in runs["runs"]] == ["finished"]
    assert runs["runs"][0]["engine_live"] is False


def test_background_processes_do_not_outlive_their_attempt(repo: Path, tmp_path: Path) -> None:
    body = agent_block("leaver", ["sh", "-c", "sleep 600 & echo bg $!; exit 0"])
    result = corral(repo, "run", str(write_plan(tmp_path, body)), "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    rundir = only_run(repo)
    (pid,) = re.findall(r"bg (\d+)", rundir.output_log("leaver", 1).read_text())
    assert_all_dead([int(pid)])
    assert not processes_with_env("CORRAL_RUN_ID", state_of(rundir).run_id)
