"""Operator actions come from people (docs/reliability.md T1): from inside an agent they are refused,
and the refusal is logged as that agent's. Real engines, real agents, real sockets."""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path

import pytest

from corral.core.log import events as ev
from corral.core.runs.rundir import RunDir, list_runs
from tests.conftest import git, make_repo, wait_until
from tests.core.engine_helpers import (
    agent_block,
    corral,
    events_of,
    state_of,
    wait_for_event,
    write_plan,
)
from tests.core.operator_helpers import FAKE_AGENT, make_reviewable_run, refusals

PY = shlex.quote(sys.executable)
CLI = f"{PY} -m corral.core.cli"
SCRUBBED = 'env -i PATH="$PATH" PYTHONPATH="$PYTHONPATH"'
"""An agent that clears its environment before calling corral: no CORRAL_* variable is left."""


def the_run(repo: Path, but: str | None = None) -> RunDir:
    def find() -> RunDir | None:
        runs = [run for run in list_runs(repo / ".git") if run.run_id != but]
        return runs[0] if runs else None

    found = wait_until(find, timeout=30, what="the run directory")
    assert isinstance(found, RunDir)
    return found


def wait_for_start(rundir: RunDir, *agents: str) -> None:
    for agent in agents:
        wait_for_event(
            rundir,
            lambda e, agent=agent: isinstance(e, ev.AgentStarted) and e.agent == agent,
            what=f"{agent} to start",
        )


def test_operator_commands_in_an_agents_environment_are_refused(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CORRAL_* variables in the environment: every operator command refuses, says why, and the
    target run's log records the attempt that asked (never its token)."""
    rundir, sha, _ = make_reviewable_run(repo)
    before = git(repo, "rev-parse", "main")
    for key, value in FAKE_AGENT.items():
        monkeypatch.setenv(key, value)
    commands = [
        ("approve", ["review", "approve", "r1", "--sha", sha]),
        ("reject", ["review", "reject", "r1", "--reason", "no", "--sha", sha]),
        ("suppress", ["review", "suppress", "r1", "--rule", "x", "--reason", "no", "--sha", sha]),
        ("kill", ["kill", "r1", "a"]),
        ("stop", ["stop", "r1"]),
        ("pause", ["pause", "r1", "a"]),
        ("unpause", ["unpause", "r1", "a"]),
        ("retry", ["retry", "r1", "a"]),
        ("retry", ["run", "--resume", "r1", "--retry", "a"]),
        ("lock break", ["lock", "break", "db", "--reason", "mine", "--run", "r1"]),
        ("gc", ["gc", "--force"]),
    ]
    for action, args in commands:
        result = corral(repo, *args)
        assert result.returncode == 1, (action, result.stdout, result.stderr)
        assert f"`{action}` is an operator action" in result.stderr, result.stderr
        assert "agent intruder#3 of run other-run" in result.stderr
        assert "Traceback" not in result.stderr
    assert git(repo, "rev-parse", "main") == before, "nothing landed"
    state = state_of(rundir)
    assert state.review is None
    assert state.agents["a"].state == "succeeded", "no retry was queued"
    assert (repo / ".git" / "corral" / "runs" / "r1").is_dir(), "gc removed nothing"
    assert [
        (e.action, e.caller_run, e.caller_agent, e.caller_attempt) for e in refusals(rundir)
    ] == [
        (action, "other-run", "intruder", 3)
        for action in (
            "approve",
            "reject",
            "suppress",
            "kill",
            "stop",
            "pause",
            "unpause",
            "retry",
            "retry",
            "lock break",
        )
    ]
    assert FAKE_AGENT["CORRAL_AGENT_TOKEN"] not in rundir.events.read_text()


def test_an_agent_cannot_approve_another_run(repo: Path, tmp_path: Path) -> None:
    """The must-show: agents of a live run try `corral review approve` of a finished run, with
    their environment, with it cleared, and with it cleared in the agent's own first process.
    Each is refused, nothing lands, and the finished run's log names each agent."""
    target, sha, _ = make_reviewable_run(repo)
    before = git(repo, "rev-parse", "main")
    gate = tmp_path / "gate"
    wait = f"while [ ! -f {gate} ]; do sleep 0.05; done"
    approve = f"{CLI} review approve r1 --sha {sha}"
    body = agent_block("plain", ["sh", "-c", f"{wait}; exec {approve}"])
    body += agent_block("scrubbed", ["sh", "-c", f"{wait}; {SCRUBBED} {approve}; exit $?"])
    body += agent_block("sneak", ["sh", "-c", f"{wait}; exec {SCRUBBED} {approve}"])
    plan = write_plan(tmp_path, body, header="min_success = 0\n")
    started = corral(repo, "run", str(plan), "--detach")
    assert started.returncode == 0, started.stderr
    run = the_run(repo, but="r1")
    wait_for_start(run, "plain", "scrubbed", "sneak")
    gate.touch()
    wait_for_event(run, lambda e: isinstance(e, ev.RunFinished), what="the run to finish")

    assert git(repo, "rev-parse", "main") == before, "an agent landed a run"
    assert state_of(target).review is None
    state = state_of(run)
    for agent in ("plain", "scrubbed", "sneak"):
        attempt = state.agents[agent].attempts[-1]
        assert attempt.exit_code == 1, (agent, attempt.reason)
        output = run.output_log(agent, 1).read_text()
        assert "`approve` is an operator action" in output, (agent, output)
        assert f"agent {agent}#1 of run {run.run_id}" in output, (agent, output)
    found = {(e.action, e.caller_run, e.caller_agent, e.caller_attempt) for e in refusals(target)}
    assert found == {("approve", run.run_id, agent, 1) for agent in ("plain", "scrubbed", "sneak")}


RAW_KILL = """
import json, os, socket, sys, time
path, agent, token = sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else ""
def parent_session():
    try:
        return os.getsid(os.getppid())
    except OSError:  # the parent exited just now
        return None
if token == "orphan":  # wait until the parent has exited: outside the attempt's process tree
    session, token = int(sys.argv[4]), ""
    deadline = time.monotonic() + 20
    while parent_session() in (session, None) and time.monotonic() < deadline:
        time.sleep(0.01)
request = {"op": "kill", "agent": agent, "by": "alice", "reason": "raw"}
if token:
    request["token"] = token
sock = socket.socket(socket.AF_UNIX)
sock.connect(path)
sock.sendall(json.dumps(request).encode() + b"\\n")
print(sock.makefile().readline(), end="")
"""


def send_raw_kill(socket_path: str, agent: str, token: str | None = None) -> dict[str, object]:
    import subprocess

    out = subprocess.run(
        [sys.executable, "-c", RAW_KILL, socket_path, agent, *([token] if token else [])],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    answer = json.loads(out)
    assert isinstance(answer, dict)
    return answer


def test_an_agent_cannot_kill_retry_break_or_collect(repo: Path, tmp_path: Path) -> None:
    """Operator requests from inside an agent, through the command line (environment intact or
    cleared) and straight to the socket (as a child of the agent, or as the agent's own first
    process with its environment cleared): the engine refuses each and logs it as the agent's."""
    gate, done, out = tmp_path / "gate", tmp_path / "done", tmp_path / "out"
    out.mkdir()
    raw = tmp_path / "raw_kill.py"
    raw.write_text(RAW_KILL)

    def step(name: str, command: str) -> str:
        return f"{command} > {out}/{name}.txt 2>&1; echo $? > {out}/{name}.code"

    script = "\n".join(
        [
            f"while [ ! -f {gate} ]; do sleep 0.05; done",
            step("kill", f'{CLI} kill "$CORRAL_RUN_ID" victim'),
            step("kill-scrubbed", f'{SCRUBBED} {CLI} kill "$CORRAL_RUN_ID" victim'),
            step("retry", f'{CLI} retry "$CORRAL_RUN_ID" failer'),
            step("lock-break", f"{CLI} lock break db --reason mine"),
            step("gc", f"{CLI} gc --force"),
            # a double fork and setsid leave the attempt's tree; its variables stay
            f'( setsid {PY} {raw} "$CORRAL_SOCKET" victim orphan $$ > {out}/raw.txt 2>&1 & )',
            f"while ! grep -q ok {out}/raw.txt 2>/dev/null; do sleep 0.05; done",
            f'echo "$CORRAL_AGENT_TOKEN" > {out}/token; touch {done}',
            f"while [ ! -f {gate}2 ]; do sleep 0.05; done",
            f'exec {SCRUBBED} {PY} {raw} "$CORRAL_SOCKET" victim',
        ]
    )
    (tmp_path / "intruder.sh").write_text(script + "\n")
    until_end = f"while [ ! -f {gate}3 ]; do sleep 0.05; done"
    body = agent_block("victim", ["sh", "-c", until_end])
    body += agent_block("failer", ["false"])
    body += agent_block("holder", ["sh", "-c", f"{CLI} lock run db -- sh -c '{until_end}'"])
    body += agent_block("intruder", ["sh", str(tmp_path / "intruder.sh")])
    plan = write_plan(tmp_path, body, header="min_success = 0\n")
    started = corral(repo, "run", str(plan), "--detach")
    assert started.returncode == 0, started.stderr
    run = the_run(repo)
    wait_for_start(run, "victim", "holder", "intruder")
    wait_for_event(run, lambda e: isinstance(e, ev.LockAcquired), what="holder's lease")
    wait_for_event(
        run, lambda e: isinstance(e, ev.AgentDeadLettered) and e.agent == "failer", what="failer"
    )
    gate.touch()
    wait_until(done.exists, timeout=60, what="the intruder's commands")

    for name in ("kill", "kill-scrubbed", "retry", "lock-break", "gc"):
        text = (out / f"{name}.txt").read_text()
        assert (out / f"{name}.code").read_text().strip() == "1", (name, text)
        assert "is an operator action" in text, (name, text)
        assert f"agent intruder#1 of run {run.run_id}" in text, (name, text)
    answer = json.loads((out / "raw.txt").read_text())
    assert answer["ok"] is False
    assert answer["code"] == "denied"
    assert "intruder#1" in answer["error"]
    # a request carrying an attempt's token is that attempt's, wherever it comes from
    token = (out / "token").read_text().strip()
    by_token = send_raw_kill(str(run.socket), "victim", token)
    assert by_token["ok"] is False
    assert "intruder#1" in str(by_token["error"])
    (tmp_path / "gate2").touch()
    wait_for_event(
        run,
        lambda e: isinstance(e, ev.AgentFinished) and e.agent == "intruder",
        what="the intruder to end",
    )
    # a person still can
    assert send_raw_kill(str(run.socket), "victim")["ok"] is True
    (tmp_path / "gate3").touch()
    wait_for_event(run, lambda e: isinstance(e, ev.RunFinished), what="the run to finish")

    state = state_of(run)
    assert [(e.action, e.caller_run, e.caller_agent, e.caller_attempt) for e in refusals(run)] == [
        ("kill", run.run_id, "intruder", 1),
        ("kill", run.run_id, "intruder", 1),
        ("retry", run.run_id, "intruder", 1),
        ("lock break", run.run_id, "intruder", 1),
        ("kill", run.run_id, "intruder", 1),
        ("kill", run.run_id, "intruder", 1),
        ("kill", run.run_id, "intruder", 1),
    ]
    evidence = [e.evidence for e in refusals(run)]
    assert all("token" in evidence[i] for i in (0, 1, 2, 3, 5)), evidence
    assert "environment of process" in evidence[4], evidence
    assert "process tree" in evidence[6], evidence
    assert token not in run.events.read_text(), "the token is a secret: never logged"
    cancels = [e for e in events_of(run) if isinstance(e, ev.AgentCancelled)]
    assert [(e.agent, e.reason) for e in cancels] == [("victim", "raw")], "only the person's kill"
    assert not any(isinstance(e, ev.AgentRedriven | ev.LockBroken) for e in events_of(run))
    assert state.agents["failer"].state == "dead_lettered"
    assert state.agents["holder"].state == "succeeded"


def test_an_agent_operates_the_runs_it_starts_itself(repo: Path, tmp_path: Path) -> None:
    """A coding agent that runs corral's own tests starts and stops runs of its scratch
    repositories: the attempt an engine ran inside is that run's operator."""
    inner = make_repo(tmp_path / "inner")
    inner_plan = tmp_path / "inner" / "plan.toml"
    inner_plan.write_text(
        '[run]\nmin_success = 0\nkill_grace = "500ms"\n' + agent_block("sleeper", ["sleep", "600"])
    )
    git(inner, "add", "plan.toml")
    git(inner, "commit", "-qm", "plan")
    events = inner / ".git" / "corral" / "runs" / "inner1" / "events.jsonl"
    script = "\n".join(
        [
            f"{CLI} --repo {inner} run {inner_plan} --detach --run-id inner1 || exit 9",
            f"for i in $(seq 600); do grep -q agent_started {events} && break; sleep 0.05; done",
            f"{CLI} --repo {inner} kill inner1 sleeper",
            # the inner engine carries this attempt's marks: it must be done before the attempt
            # ends, or the end of the attempt stops it (T2)
            f"for i in $(seq 600); do grep -q engine_stopped {events} && break; sleep 0.05; done",
        ]
    )
    plan = write_plan(tmp_path, agent_block("owner", ["sh", "-c", script]))
    result = corral(repo, "run", str(plan), "--quiet", timeout=120)
    outer = the_run(repo)
    log = outer.output_log("owner", 1).read_text()
    assert result.returncode == 0, log + result.stdout + result.stderr
    assert "sleeper: stopping" in log
    inner_run = RunDir(events.parent)
    wait_for_event(inner_run, lambda e: isinstance(e, ev.RunFinished), what="the inner run")
    started = events_of(inner_run)[0]
    assert isinstance(started, ev.RunStarted)
    assert started.engine.inside == f"{outer.run_id}/owner#1"
    assert state_of(inner_run).agents["sleeper"].state == "cancelled"
    assert not refusals(inner_run)
    assert os.environ.get("CORRAL_AGENT_ID") is None
