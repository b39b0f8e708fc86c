"""Agents in a terminal (issue 15 item 1, the engine's side): a `tty = true` agent runs on a
pseudo-terminal the engine holds; its bytes (escapes included) reach output.log as written, a
person's keystrokes (`send_keys`) and size (`resize`) reach it, an agent may not send them
(T1), a fast writer does not stop the engine answering, and nothing of it outlives the run."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from corral.core.log import events as ev
from corral.core.operator.actions import resize, send_keys
from corral.core.operator.identity import Operator
from corral.core.plan.model import PlanError, parse_plan
from corral.core.runs.rundir import RunDir
from tests.conftest import git, wait_until
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

CLI = f"{sys.executable} -m corral.core.cli"
TERMINAL_AGENT = r"""
import os, sys
size = os.get_terminal_size()
print(f"\x1b[31mred\x1b[0m isatty={sys.stdin.isatty()}{sys.stdout.isatty()}", flush=True)
print(f"size {size.columns}x{size.lines}", flush=True)
name = input("name? ")
size = os.get_terminal_size()
print(f"hi {name} at {size.columns}x{size.lines}", flush=True)
with open("answer.txt", "w") as out:
    out.write(f"{name} {sys.stdin.isatty()} {size.columns}x{size.lines}\n")
"""


SNEAK = """
import os, subprocess
from pathlib import Path
from corral.core.operator.actions import send_keys
from corral.core.operator.identity import Operator
from corral.core.runs.rundir import find_run

common = subprocess.run(
    ["git", "rev-parse", "--path-format=absolute", "--git-common-dir"],
    capture_output=True, text=True, check=True,
).stdout.strip()
run = find_run(Path(common), os.environ["CORRAL_RUN_ID"])
try:
    send_keys(run, "term", "sneaked\\r", Operator.current())
    print("exit 0")
except Exception as exc:
    print("refused:", exc)
"""


def _log(run: RunDir, agent: str) -> bytes:
    path = run.output_log(agent, 1)
    return path.read_bytes() if path.is_file() else b""


def _started(run: RunDir, agent: str) -> None:
    wait_for_event(
        run,
        lambda e: isinstance(e, ev.AgentStarted) and e.agent == agent,
        what=f"{agent} started",
    )


def test_a_burst_of_resizes_is_logged_once_with_who_and_its_last_size(
    repo: Path, tmp_path: Path
) -> None:
    body = agent_block("term", [sys.executable, "-c", TERMINAL_AGENT], tty=True, tty_size=[90, 30])
    engine = start_corral(repo, "run", str(write_plan(tmp_path, body)), "--quiet")
    me = Operator.current()
    try:
        run = wait_for_run(repo)
        _started(run, "term")
        wait_until(lambda: b"name? " in _log(run, "term"), what="the agent's prompt")
        resize(run, "term", 90, 30, me)  # its size already: changes nothing, logs nothing
        for cols in range(91, 101):  # a dragged window
            resize(run, "term", cols, 33, me)
        logged = wait_for_event(
            run, lambda e: isinstance(e, ev.AgentResized), what="the burst's resize logged"
        )
        resize(run, "term", 100, 33, me)  # the size just logged: nothing new
        send_keys(run, "term", "hello\r", me)
        assert engine.wait(timeout=60) == 0
    finally:
        if engine.poll() is None:
            engine.kill()
    assert isinstance(logged, ev.AgentResized)
    resized = [e for e in events_of(run) if isinstance(e, ev.AgentResized)]
    assert [(e.agent, e.attempt, e.by, e.cols, e.rows) for e in resized] == [
        ("term", 1, me.user, 100, 33)
    ]
    assert b"hi hello at 100x33" in _log(run, "term"), "each resize reached the terminal"


def test_a_terminal_agent_shows_its_escapes_and_takes_keys_and_a_size(
    repo: Path, tmp_path: Path
) -> None:
    body = agent_block("term", [sys.executable, "-c", TERMINAL_AGENT], tty=True, tty_size=[90, 30])
    plan = write_plan(tmp_path, body)
    engine = start_corral(repo, "run", str(plan), "--quiet")
    me = Operator.current()
    try:
        run = wait_for_run(repo)
        _started(run, "term")
        wait_until(lambda: b"name? " in _log(run, "term"), what="the agent's prompt")
        resized = resize(run, "term", 100, 33, me)
        assert (resized.cols, resized.rows) == (100, 33)
        sent = send_keys(run, "term", "hello\r", me)
        assert (sent.agent, sent.attempt) == ("term", 1)
        assert engine.wait(timeout=60) == 0
    finally:
        if engine.poll() is None:
            engine.kill()
    log = _log(run, "term")
    assert b"\x1b[31mred\x1b[0m isatty=TrueTrue" in log
    assert b"size 90x30" in log
    assert b"hi hello at 100x33" in log
    sizes = [(e.by, e.cols, e.rows) for e in events_of(run) if isinstance(e, ev.AgentResized)]
    assert sizes == [(me.user, 100, 33)], "logged, at the latest as the attempt ended"
    inputs = [e for e in events_of(run) if isinstance(e, ev.AgentInputSent)]
    assert [(e.agent, e.text, e.raw) for e in inputs] == [("term", "hello\r", True)]
    state = state_of(run)
    assert state.agents["term"].tty
    assert state.agents["term"].tty_size == (90, 30)
    assert state.agents["term"].state == "succeeded"
    integration = state.merge.integration_commit
    assert integration is not None
    assert git(repo, "show", f"{integration}:answer.txt") == "hello True 100x33"
    assert processes_with_env("CORRAL_RUN_ID", run.run_id) == []


def test_keys_and_a_size_are_refused_to_an_agent_without_a_terminal_and_from_an_agent(
    repo: Path, tmp_path: Path
) -> None:
    sneak = tmp_path / "sneak.py"
    sneak.write_text(SNEAK)
    body = agent_block("term", ["sh", "-c", "read line; echo got $line"], tty=True)
    body += agent_block("plain", ["sleep", "60"], input_format="lines")
    body += agent_block("meddler", [sys.executable, str(sneak)], kind="audit")
    plan = write_plan(tmp_path, body, header="min_success = 0\n")
    engine = start_corral(repo, "run", str(plan), "--quiet")
    me = Operator.current()
    try:
        run = wait_for_run(repo)
        for agent in ("term", "plain"):
            _started(run, agent)
        wait_for_event(
            run,
            lambda e: isinstance(e, ev.AgentFinished) and e.agent == "meddler",
            what="the meddler ended",
        )
        from corral.core.operator.errors import OperatorError

        with pytest.raises(OperatorError, match="has no terminal"):
            send_keys(run, "plain", "x", me)
        with pytest.raises(OperatorError, match="has no terminal"):
            resize(run, "plain", 80, 24, me)
        sent = corral(repo, "send", run.run_id, "term", "ok")
        assert sent.returncode == 0, sent.stderr
        wait_for_event(
            run,
            lambda e: isinstance(e, ev.AgentFinished) and e.agent == "term",
            what="the terminal agent ended",
        )
        assert corral(repo, "kill", run.run_id, "plain").returncode == 0
        engine.wait(timeout=60)
    finally:
        if engine.poll() is None:
            engine.kill()
    assert b"got ok" in _log(run, "term")
    assert b"exit 0" not in _log(run, "meddler")
    events = events_of(run)
    assert [(e.text, e.raw) for e in events if isinstance(e, ev.AgentInputSent)] == [("ok", False)]
    refusals = [e for e in events if isinstance(e, ev.OperatorActionRefused)]
    assert [(r.action, r.target, r.caller_agent) for r in refusals] == [
        ("input", "agent term", "meddler")
    ]
    assert processes_with_env("CORRAL_RUN_ID", run.run_id) == []


def test_a_fast_terminal_writer_does_not_stop_the_engine_answering(
    repo: Path, tmp_path: Path
) -> None:
    body = agent_block("flood", ["sh", "-c", "yes | head -c 20000000"], tty=True)
    body += agent_block("beat", ["sh", "-c", f"for i in 1 2 3 4 5; do {CLI} heartbeat; done"])
    plan = write_plan(tmp_path, body)
    engine = start_corral(repo, "run", str(plan), "--quiet")
    try:
        run = wait_for_run(repo)
        assert engine.wait(timeout=120) == 0
    finally:
        if engine.poll() is None:
            engine.kill()
    assert _log(run, "flood").count(b"y") == 10_000_000  # each "y\n" is "y\r\n" on a terminal
    state = state_of(run)
    assert state.agents["beat"].state == "succeeded"
    assert state.agents["flood"].state == "succeeded"
    assert processes_with_env("CORRAL_RUN_ID", run.run_id) == []


def test_a_terminal_is_refused_where_the_runtime_cannot_give_one() -> None:
    with pytest.raises(PlanError, match="a terminal is not available with runtime 'ray'"):
        parse_plan(
            {"run": {"runtime": "ray"}, "agent": [{"id": "a", "command": ["x"], "tty": True}]}
        )
    plan = parse_plan({"agent": [{"id": "a", "command": ["x"], "tty": True}]})
    assert plan.agents[0].tty_size == (120, 40)


def test_keys_reach_a_raw_terminal_whole_and_the_log_keeps_their_first_4000(
    repo: Path, tmp_path: Path
) -> None:
    script = "stty raw -echo && echo ready && head -c 5000 > got.txt"
    plan = write_plan(tmp_path, agent_block("raw", ["sh", "-c", script], tty=True))
    engine = start_corral(repo, "run", str(plan), "--quiet")
    try:
        run = wait_for_run(repo)
        wait_until(lambda: b"ready" in _log(run, "raw"), what="the agent in raw mode")
        send_keys(run, "raw", "y" * 5000, Operator.current())
        assert engine.wait(timeout=60) == 0
    finally:
        if engine.poll() is None:
            engine.kill()
    (sent,) = [e for e in events_of(run) if isinstance(e, ev.AgentInputSent)]
    assert (sent.text, sent.raw, sent.truncated) == ("y" * 4000, True, True)
    integration = state_of(run).merge.integration_commit
    assert integration is not None
    assert git(repo, "show", f"{integration}:got.txt") == "y" * 5000


def test_one_viewer_types_at_a_time(repo: Path, tmp_path: Path) -> None:
    """Two attached viewers of one terminal agent: while one types, the other's keys are
    refused (naming who types), nothing of them reaches the agent; the typist goes on."""
    from corral.core.operator.errors import EngineRefused

    body = agent_block("term", [sys.executable, "-c", TERMINAL_AGENT], tty=True)
    plan = write_plan(tmp_path, body)
    engine = start_corral(repo, "run", str(plan), "--quiet")
    me = Operator.current()
    try:
        run = wait_for_run(repo)
        _started(run, "term")
        wait_until(lambda: b"name? " in _log(run, "term"), what="the agent's prompt")
        send_keys(run, "term", "ro", me, client="viewer-a")
        with pytest.raises(EngineRefused, match=f"{me.user} is typing into term"):
            send_keys(run, "term", "XX", me, client="viewer-b")
        send_keys(run, "term", "sa\r", me, client="viewer-a")
        assert engine.wait(timeout=60) == 0
    finally:
        if engine.poll() is None:
            engine.kill()
    assert b"hi rosa at" in _log(run, "term")
    inputs = [e.text for e in events_of(run) if isinstance(e, ev.AgentInputSent)]
    assert inputs == ["ro", "sa\r"]
