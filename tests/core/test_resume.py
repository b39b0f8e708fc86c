"""Crashes: the engine is killed with SIGKILL at different points and the run carries on."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from corral.core.log import events as ev
from corral.core.log import read_log
from tests.conftest import wait_until
from tests.core.engine_helpers import (
    agent_block,
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

PY = sys.executable


def marking_agent(marks: Path, seconds: float) -> list[str]:
    """An agent that notes each start in `marks`, works for a while, then ends well."""
    return [
        "sh",
        "-c",
        f'echo "$CORRAL_AGENT_ID $CORRAL_ATTEMPT" >> {marks}; sleep {seconds}; echo done',
    ]


def test_kill_9_at_several_points_then_resume(repo: Path, tmp_path: Path) -> None:
    marks = tmp_path / "marks.txt"
    body = ""
    for i in range(8):
        body += agent_block(
            f"s{i}",
            marking_agent(marks, 0.3 + 0.2 * (i % 3)),
            depends_on=[f"s{i - 2}"] if i >= 2 else [],
        )
    plan = write_plan(tmp_path, body, header="max_parallel = 3\n")
    engine = start_corral(repo, "run", str(plan), "--quiet")
    rundir = wait_for_run(repo)
    seen_before: list[list[ev.Event]] = []
    kills = 0
    # kill after the 1st, 3rd and 5th success, each time resuming
    for target in (1, 3, 5):

        def reached(target: int = target) -> bool:
            finished = [e for e in events_of(rundir) if isinstance(e, ev.AgentFinished)]
            return sum(1 for e in finished if e.outcome == "succeeded") >= target

        wait_until(reached, timeout=60, what=f"{target} successes")
        seen_before.append(read_log(rundir.events).events)
        kill9(engine)
        kills += 1
        engine = start_corral(repo, "run", "--resume", rundir.run_id, "--quiet")
    assert engine.wait(timeout=120) == 0, engine_output(repo)
    final = read_log(rundir.events).events
    final_lines = [event.model_dump_json() for event in final]
    for snapshot in seen_before:
        # no event the engine had written (and so acknowledged) before the crash is lost or changed
        assert final_lines[: len(snapshot)] == [event.model_dump_json() for event in snapshot]
    state = state_of(rundir)
    assert state.verdict == "passed"
    assert sum(1 for e in final if isinstance(e, ev.EngineResumed)) == kills
    # no finished agent ran twice: after an agent's success, no attempt of it starts again
    succeeded_at = {
        e.agent: e.seq
        for e in final
        if isinstance(e, ev.AgentFinished) and e.outcome == "succeeded"
    }
    for event in final:
        if isinstance(event, ev.AgentStarting):
            assert event.seq < succeeded_at[event.agent], (
                f"{event.agent} started again after it succeeded"
            )
    # every start the agents noted is an attempt the log knows
    noted = marks.read_text().split("\n")
    attempts = {(a.id, str(t.number)) for a in state.agents.values() for t in a.attempts}
    assert {tuple(line.split()) for line in noted if line} <= attempts
    # lost attempts are recorded as such, and their processes were stopped
    lost = [e for e in final if isinstance(e, ev.AgentFinished) and e.outcome == "lost"]
    assert all(e.requeue for e in lost)
    assert not processes_with_env("CORRAL_RUN_ID", state.run_id)
    assert corral(repo, "verify", rundir.run_id).returncode == 0


def test_lost_attempt_processes_are_stopped_before_the_retry(repo: Path, tmp_path: Path) -> None:
    marks = tmp_path / "marks.txt"
    plan = write_plan(tmp_path, agent_block("long", marking_agent(marks, 600)))
    engine = start_corral(repo, "run", str(plan), "--quiet")
    rundir = wait_for_run(repo)
    started = wait_until(
        lambda: [e for e in events_of(rundir) if isinstance(e, ev.AgentStarted)],
        what="the agent to start",
    )
    assert isinstance(started, list)
    run_id = state_of(rundir).run_id
    kill9(engine)
    survivors = processes_with_env("CORRAL_RUN_ID", run_id)
    assert started[0].pid in survivors, "the agent should outlive a SIGKILLed engine"
    rundir.plan.write_text(rundir.plan.read_text().replace("sleep 600", "sleep 0"))
    result = corral(repo, "run", "--resume", run_id, "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    state = state_of(rundir)
    first, second = state.agents["long"].attempts
    assert first.state == "lost"
    assert "still alive and were stopped" in first.reason
    assert second.state == "succeeded"
    assert not processes_with_env("CORRAL_RUN_ID", run_id)
    assert marks.read_text().split() == ["long", "1", "long", "2"]


def test_torn_last_line_is_repaired_on_resume(repo: Path, tmp_path: Path) -> None:
    plan = write_plan(tmp_path, agent_block("a", ["true"]) + agent_block("b", ["sleep", "600"]))
    engine = start_corral(repo, "run", str(plan), "--quiet")
    rundir = wait_for_run(repo)
    wait_until(
        lambda: any(isinstance(e, ev.AgentStarted) and e.agent == "b" for e in events_of(rundir)),
        what="b to start",
    )
    kill9(engine)
    with rundir.events.open("ab") as log:
        log.write(b'{"seq": 999, "type": "agent_heart')  # a write cut short by the crash
    assert corral(repo, "verify", rundir.run_id).returncode == 1
    rundir.plan.write_text(rundir.plan.read_text().replace('"sleep", "600"', '"true"'))
    result = corral(repo, "run", "--resume", rundir.run_id, "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    quarantined = list(rundir.path.glob("events.jsonl.torn-*"))
    assert len(quarantined) == 1
    assert quarantined[0].read_bytes() == b'{"seq": 999, "type": "agent_heart'
    resumed = [e for e in events_of(rundir) if isinstance(e, ev.EngineResumed)]
    assert resumed[0].repaired_tail
    assert corral(repo, "verify", rundir.run_id).returncode == 0


def test_corrupted_middle_line_stops_the_reader_naming_the_seq(repo: Path, tmp_path: Path) -> None:
    plan = write_plan(tmp_path, agent_block("a", ["true"]) + agent_block("b", ["true"]))
    corral(repo, "run", str(plan), "--quiet", check=True)
    rundir = only_run(repo)
    lines = rundir.events.read_bytes().split(b"\n")
    lines[3] = lines[3].replace(
        b'"ts":', b'"ts": ', 1
    )  # still valid JSON, but not the line that was hashed
    rundir.events.write_bytes(b"\n".join(lines))
    verify = corral(repo, "verify", rundir.run_id)
    assert verify.returncode == 1
    assert re.search(r"seq [45]\b", verify.stderr), verify.stderr
    resume = corral(repo, "run", "--resume", rundir.run_id, "--quiet")
    assert resume.returncode != 0
    assert "corrupted at seq" in resume.stderr
