"""corral's agent tools over MCP, end to end: real engine runs whose agents start
`corral mcp agent` with the MCP SDK's own stdio client (issue 14's must-show cases)."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from corral.core.locks.shared_files import shared_dir
from corral.core.log import events as ev
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
HEADER = 'lock_grace = "500ms"\n'


def read_mark(path: Path, timeout: float = 60) -> Any:
    wait_until(path.exists, timeout=timeout, what=str(path))
    return json.loads(path.read_text())


@pytest.fixture
def marks(tmp_path: Path) -> Path:
    path = tmp_path / "marks"
    path.mkdir()
    return path


def test_two_attempts_get_increasing_tokens_and_the_second_waits(
    repo: Path, tmp_path: Path, marks: Path
) -> None:
    first = mcp_script(
        tmp_path,
        "first.py",
        """
        ok, lease = await call(session, "lock_acquire", name="db", ttl=30, wait=5, reason="migrate")
        mark("first", lease)
        await wait_file(marks / "go")
        ok, released = await call(session, "lock_release", name="db", token=lease["token"])
        mark("first-released", released)
        """,
    )
    second = mcp_script(
        tmp_path,
        "second.py",
        """
        await wait_file(marks / "first")
        ok, lease = await call(session, "lock_acquire", name="db", ttl=30, wait=60)
        mark("second", [ok, lease])
        await call(session, "lock_release", name="db", token=lease["token"])
        """,
    )
    body = agent_block("first", [PY, str(first), str(marks)]) + agent_block(
        "second", [PY, str(second), str(marks)]
    )
    engine = start_corral(repo, "run", str(write_plan(tmp_path, body, header=HEADER)), "--quiet")
    rundir = wait_for_run(repo)
    held = read_mark(marks / "first")
    assert isinstance(held, dict)
    waiting = wait_for_event(
        rundir,
        lambda e: isinstance(e, ev.LockWaiting) and e.agent == "second",
        what="the second agent in line",
    )
    assert isinstance(waiting, ev.LockWaiting)
    assert waiting.holder == "first"
    assert waiting.holder_token == held["token"]
    assert not (marks / "second").exists()  # still waiting: the lock is held
    (marks / "go").write_text("go")
    assert engine.wait(timeout=60) == 0, engine_output(repo)
    ok, lease = read_mark(marks / "second")
    assert ok, lease
    assert lease["token"] > held["token"]
    events = events_of(rundir)
    grants = [e for e in events if isinstance(e, ev.LockAcquired) and e.lock == "db"]
    assert [(g.agent, g.attempt, g.token) for g in grants] == [
        ("first", 1, held["token"]),
        ("second", 1, lease["token"]),
    ]
    assert grants[0].reason == "migrate"
    released = next(e for e in events if isinstance(e, ev.LockReleased) and e.agent == "first")
    assert waiting.seq < released.seq < grants[1].seq


def test_a_stale_tokens_put_is_refused(repo: Path, tmp_path: Path, marks: Path) -> None:
    first = mcp_script(
        tmp_path,
        "first.py",
        """
        ok, lease = await call(session, "lock_acquire", name="out", ttl=1, wait=5)
        mark("first", lease)
        await wait_file(marks / "second")  # the lease expired and the second agent holds it
        mark("stale", await call(session, "put", path="result.txt", token=lease["token"],
                                  content="from first (stale)"))
        """,
    )
    second = mcp_script(
        tmp_path,
        "second.py",
        """
        await wait_file(marks / "first")
        ok, lease = await call(session, "lock_acquire", name="out", ttl=30, wait=30)
        mark("fresh", await call(session, "put", path="result.txt", token=lease["token"],
                                  content="from second"))
        mark("second", lease)
        await wait_file(marks / "stale")
        await call(session, "lock_release", name="out", token=lease["token"])
        """,
    )
    body = agent_block("first", [PY, str(first), str(marks)]) + agent_block(
        "second", [PY, str(second), str(marks)]
    )
    result = corral(repo, "run", str(write_plan(tmp_path, body, header=HEADER)), "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    ok, fresh = read_mark(marks / "fresh")
    assert ok, fresh
    ok, stale = read_mark(marks / "stale")
    assert not ok
    assert "refused" in stale
    rundir = only_run(repo)
    assert (shared_dir(rundir.path) / "result.txt").read_text() == "from second"
    events = events_of(rundir)
    (refused,) = [e for e in events if isinstance(e, ev.FencedWriteRefused)]
    assert refused.agent == "first"


def test_report_finding_refuses_a_path_out_of_the_repository_with_the_reason(
    repo: Path, tmp_path: Path, marks: Path
) -> None:
    auditor = mcp_script(
        tmp_path,
        "audit.py",
        """
        mark("bad", await call(session, "report_finding", severity="high",
                               title="reads outside", file="../etc/passwd", line=3))
        mark("good", await call(session, "report_finding", severity="high",
                                title="SQL built from input", file="src/app.py", line=1,
                                detail="user text goes into the query", id="sql-1"))
        mark("again", await call(session, "report_finding", severity="low",
                                 title="same id", file="src/app.py", id="sql-1"))
        """,
    )
    body = agent_block("audit", [PY, str(auditor), str(marks)], kind="audit")
    result = corral(repo, "run", str(write_plan(tmp_path, body, header=HEADER)), "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    ok, reason = read_mark(marks / "bad")
    assert not ok
    assert "climbs out with '..'" in reason
    assert "file" in reason
    ok, good = read_mark(marks / "good")
    assert ok
    assert good["id"] == "sql-1"
    ok, again = read_mark(marks / "again")
    assert not ok
    assert "already reported" in again
    rundir = only_run(repo)
    report = json.loads((rundir.path / "report.json").read_text())
    assert state_of(rundir).report is not None
    assert "SQL built from input" in json.dumps(report)
    assert "reads outside" not in json.dumps(report)


def test_ask_human_returns_the_answer_given_through_corral_answer(
    repo: Path, tmp_path: Path, marks: Path
) -> None:
    asker = mcp_script(
        tmp_path,
        "ask.py",
        """
        mark("answer", await call(session, "ask_human", question="Drop the old table?",
                                  choices=["yes", "no"], timeout=60))
        mark("beat", await call(session, "heartbeat", progress=0.5, message="dropping"))
        """,
    )
    body = agent_block("asker", [PY, str(asker), str(marks)], heartbeat_timeout="2s")
    engine = start_corral(repo, "run", str(write_plan(tmp_path, body, header=HEADER)), "--quiet")
    rundir = wait_for_run(repo)
    asked = wait_for_event(rundir, lambda e: isinstance(e, ev.HumanAsked), what="the question")
    assert isinstance(asked, ev.HumanAsked)
    assert (asked.agent, asked.attempt, asked.choices) == ("asker", 1, ["yes", "no"])
    state = state_of(rundir)
    assert state.agents["asker"].state == "waiting_for_human"
    assert state.agents["asker"].question is not None
    # past its heartbeat_timeout (2s) in silence: an agent waiting for a person is not hung
    wait_until(lambda: time.time() > asked.ts + 3, timeout=20, what="the heartbeat timeout")
    assert state_of(rundir).agents["asker"].state == "waiting_for_human"
    refused = corral(repo, "answer", rundir.run_id, "asker", "maybe")
    assert refused.returncode == 1
    assert "answer one of: yes, no" in refused.stderr
    answered = corral(repo, "answer", rundir.run_id, "asker", "yes")
    assert answered.returncode == 0, answered.stdout + answered.stderr
    ok, got = read_mark(marks / "answer")
    assert ok
    assert got["answered"] is True
    assert got["answer"] == "yes"
    assert engine.wait(timeout=60) == 0, engine_output(repo)
    events = events_of(rundir)
    (answer,) = [e for e in events if isinstance(e, ev.HumanAnswered)]
    assert (answer.agent, answer.attempt, answer.answer) == ("asker", 1, "yes")
    finished = next(e for e in events if isinstance(e, ev.AgentFinished))
    assert finished.outcome == "succeeded"
    assert not [e for e in events if isinstance(e, ev.AgentStalled) and e.seq > asked.seq]
    beat = [e for e in events if isinstance(e, ev.AgentHeartbeat) and e.source == "beat"]
    assert beat
    assert beat[-1].message == "dropping"
    assert beat[-1].attempt == 1


def test_ask_human_without_an_answer_times_out(repo: Path, tmp_path: Path, marks: Path) -> None:
    asker = mcp_script(
        tmp_path,
        "ask.py",
        """
        mark("answer", await call(session, "ask_human", question="Anyone?", timeout=0.5))
        """,
    )
    body = agent_block("asker", [PY, str(asker), str(marks)])
    result = corral(repo, "run", str(write_plan(tmp_path, body, header=HEADER)), "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    ok, got = read_mark(marks / "answer")
    assert ok
    assert got["answered"] is False
    assert "no answer within 0.5s" in got["reason"]
    events = events_of(only_run(repo))
    assert [e.reason for e in events if isinstance(e, ev.HumanUnanswered)] == [
        "no answer within 0.5s"
    ]


@pytest.mark.slow
def test_sixteen_agents_count_to_3200_taking_the_lock_through_mcp(
    repo: Path, tmp_path: Path, marks: Path
) -> None:
    counter = mcp_script(
        tmp_path,
        "count.py",
        """
        counter = Path(os.environ["CORRAL_SHARED"]) / "counter"
        for _ in range(200):
            ok, lease = await call(session, "lock_acquire", name="counter", ttl=30, wait=120)
            assert ok, lease
            value = int(counter.read_text()) if counter.exists() else 0
            scratch = counter.with_name(f"counter.{os.getpid()}")
            scratch.write_text(str(value + 1))
            os.replace(scratch, counter)
            ok, released = await call(session, "lock_release", name="counter", token=lease["token"])
            assert ok and released["released"], released
        """,
    )
    body = "".join(
        agent_block(f"w{i}", [PY, str(counter), str(marks)], timeout="170s") for i in range(16)
    )
    plan = write_plan(tmp_path, body, header="max_parallel = 16\n" + HEADER)
    result = corral(repo, "run", str(plan), "--quiet", timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    rundir = only_run(repo)
    assert (shared_dir(rundir.path) / "counter").read_text() == "3200"
    events = events_of(rundir)
    grants = [e for e in events if isinstance(e, ev.LockAcquired)]
    assert len(grants) == 3200
    tokens = [g.token for g in grants]
    assert tokens == sorted(tokens)
    assert len(set(tokens)) == 3200
    held: int | None = None
    for event in events:  # never two holders at once
        if isinstance(event, ev.LockAcquired):
            assert held is None
            held = event.token
        elif isinstance(event, ev.LockReleased | ev.LockExpired | ev.LockBroken):
            assert held == event.token
            held = None
    assert {g.agent for g in grants} == {f"w{i}" for i in range(16)}
    assert sum(isinstance(e, ev.LockWaiting) for e in events) > 100, "no contention at all?"


def test_my_conflicts_lists_the_pairs_involving_this_agent_with_their_files(
    repo: Path, tmp_path: Path, marks: Path
) -> None:
    editor = mcp_script(
        tmp_path,
        "edit.py",
        """
        me = os.environ["CORRAL_AGENT_ID"]
        Path("README.md").write_text(f"# written by {me}\\n")
        while True:  # until the live conflict matrix has seen both edits
            ok, found = await call(session, "my_conflicts")
            assert ok, found
            if found["conflicts"]:
                break
            await anyio.sleep(0.1)
        mark(me, found)
        await wait_file(marks / "done")
        """,
    )
    body = agent_block("left", [PY, str(editor), str(marks)]) + agent_block(
        "right", [PY, str(editor), str(marks)]
    )
    header = HEADER + 'conflict_interval = "200ms"\nmin_success = 0\n'
    engine = start_corral(repo, "run", str(write_plan(tmp_path, body, header=header)), "--quiet")
    left = read_mark(marks / "left")
    right = read_mark(marks / "right")
    (marks / "done").write_text("done")
    engine.wait(timeout=60)
    assert left["agent"] == "left"
    assert [(c["with"], [f["path"] for f in c["files"]]) for c in left["conflicts"]] == [
        ("right", ["README.md"])
    ]
    assert [c["with"] for c in right["conflicts"]] == ["left"]
    assert left["conflicts"][0]["predicted"] is True
