"""The `ssh` runtime end to end: real agents on two real sshd "hosts" on loopback.

Every run goes through the `corral` command against a real repository; the hosts are
tests/core/remote/sshd.py's servers. Both share this machine's kernel, so "no process left on
either host" is checked by the attempt's marks in every process's environment.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from corral.core.locks.shared_files import shared_dir
from corral.core.log import events as ev
from tests.conftest import git, wait_until
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
    wait_for_event,
    wait_for_run,
    write_plan,
)
from tests.core.remote.sshd import Host
from tests.core.test_locks_agents import hold_intervals

GIT_IDENTITY = {
    "GIT_AUTHOR_NAME": "remote-agent",
    "GIT_AUTHOR_EMAIL": "agent@corral.invalid",
    "GIT_COMMITTER_NAME": "remote-agent",
    "GIT_COMMITTER_EMAIL": "agent@corral.invalid",
}


def host_tables(*hosts: Host, slots: int = 5, **extra: object) -> str:
    text = ""
    for host in hosts:
        text += "[[host]]\n" + "".join(
            f"{key} = {json.dumps(value)}\n" for key, value in host.spec(slots, **extra).items()
        )
        text += "\n"
    return text


# half commit their work themselves, half leave it for corral to commit
AGENT = (
    'corral heartbeat "on $(hostname)" && '
    'echo "$CORRAL_AGENT_ID" > "$CORRAL_AGENT_ID.txt" && '
    'echo "{\\"host_pwd\\": \\"$PWD\\"}" > "$CORRAL_OUTPUT/where.json" && '
    'if [ "${CORRAL_AGENT_ID#a}" -lt 5 ]; then git add -A && git commit -q -m "$CORRAL_AGENT_ID"; fi'
)


def test_ten_agents_over_two_hosts_succeed_beat_and_merge(
    repo: Path, tmp_path: Path, hosts: tuple[Host, Host]
) -> None:
    body = "".join(agent_block(f"a{i}", ["sh", "-c", AGENT], env=GIT_IDENTITY) for i in range(10))
    plan = write_plan(
        tmp_path,
        host_tables(*hosts) + body,
        header='runtime = "ssh"\nmax_parallel = 10\nmin_success = 10\n',
    )
    result = corral(repo, "run", str(plan), "--quiet", timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    rundir = only_run(repo)
    events = events_of(rundir)
    state = state_of(rundir)
    assert {a.id: a.state for a in state.agents.values()} == {
        f"a{i}": "succeeded" for i in range(10)
    }
    started = [e for e in events if isinstance(e, ev.AgentStarted)]
    assert {e.runtime for e in started} == {"ssh"}
    placed = {e.agent: e.host for e in events if isinstance(e, ev.AgentStarting)}
    assert set(placed.values()) == {"alpha", "beta"}, placed
    assert sorted(placed.values()).count("alpha") == 5, "placed by free slots: five each"
    beats = {e.agent for e in events if isinstance(e, ev.AgentHeartbeat) and e.source == "beat"}
    assert beats == {f"a{i}" for i in range(10)}, (
        "every heartbeat came through the forwarded socket"
    )
    # the branches came back and merged: every agent's file is in the integration commit
    assert sorted(m.agent for m in state.merge.merged) == sorted(f"a{i}" for i in range(10))
    integration = state.merge.integration_commit
    assert integration
    for i in range(10):
        assert git(repo, "show", f"{integration}:a{i}.txt") == f"a{i}"
    # CORRAL_OUTPUT came back: the agent ran in its worktree on its host
    for agent, name in placed.items():
        where = json.loads((rundir.output_dir(agent, 1) / "where.json").read_text())
        assert where["host_pwd"].startswith(str(hosts[0 if name == "alpha" else 1].workdir))
    assert processes_with_env("CORRAL_RUN_ID", rundir.run_id) == [], "nothing left on the hosts"
    for host in hosts:  # the attempts' worktrees are gone from the hosts
        assert not list((host.workdir / "attempts").glob("*/*/wt"))
    # the CLI shows where each agent ran, and the pool with its health
    status = corral(repo, "status", check=True).stdout
    on_alpha = sorted(agent for agent, name in placed.items() if name == "alpha")
    assert f"on host alpha: {', '.join(on_alpha)}" in status, status
    listed = json.loads(corral(repo, "hosts", str(plan), "--json", check=True).stdout)
    assert [(h["name"], h["slots"], h["in_use"], h["up"]) for h in listed["hosts"]] == [
        ("alpha", 5, 0, True),
        ("beta", 5, 0, True),
    ]
    assert all(h["latency_ms"] > 0 for h in listed["hosts"])


def test_an_unreachable_host_is_reported_and_the_other_runs_everything(
    repo: Path, tmp_path: Path, hosts: tuple[Host, Host]
) -> None:
    """A host with a wrong host key: the error names the fix; the run goes on with the other."""
    wrong = tmp_path / "known_hosts"
    wrong.write_text(hosts[1].known_hosts.read_text().replace("[127.0.0.1]", "[127.0.0.2]"))
    tables = host_tables(hosts[0], slots=2) + host_tables(hosts[1], slots=2).replace(
        json.dumps(str(hosts[1].known_hosts)), json.dumps(str(wrong))
    )
    body = "".join(agent_block(f"a{i}", ["true"], retries=3) for i in range(3))
    plan = write_plan(tmp_path, tables + body, header='runtime = "ssh"\nmin_success = 3\n')
    result = corral(repo, "run", str(plan), "--quiet", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "the run starts without it" in result.stderr, "the preflight warned of it"
    events = events_of(only_run(repo))
    failed = [e for e in events if isinstance(e, ev.AgentFinished) and e.outcome == "failed"]
    assert failed, "the host never tried yet is placed on first, and fails"
    for event in failed:
        assert "ssh-keyscan -p" in event.reason, event.reason
    assert {e.host for e in events if isinstance(e, ev.AgentStarting)} <= {"alpha", "beta"}
    listed = corral(repo, "hosts", str(plan))
    assert listed.returncode == 1, "a host is down"
    assert "alpha" in listed.stdout
    assert "beta" in listed.stdout
    assert "down" in listed.stdout
    assert "ssh-keyscan" in listed.stdout


COUNT_TO_200 = """
import os
from pathlib import Path
from corral.core.agent.lock_client import LockClient
locks = LockClient.from_env()
counter = Path(os.environ["COUNTER"])
for _ in range(200):
    lease = locks.acquire("counter", ttl=30, wait=120)
    value = int(counter.read_text()) if counter.exists() else 0
    scratch = counter.with_name(f"counter.{os.getpid()}")
    scratch.write_text(str(value + 1))
    os.replace(scratch, counter)
    locks.release(lease)
"""


@pytest.mark.slow
def test_sixteen_remote_agents_count_to_3200_under_one_lease(
    repo: Path, tmp_path: Path, hosts: tuple[Host, Host]
) -> None:
    """No lost update across hosts: the lock service is reached through each attempt's
    forwarded socket; the counter is a file both "hosts" see (they share this machine's disk,
    as two hosts would share a database)."""
    counter = tmp_path / "shared" / "counter"
    counter.parent.mkdir()
    env = {"COUNTER": str(counter)}
    command = ["python3", "-c", COUNT_TO_200]
    body = "".join(agent_block(f"w{i}", command, env=env) for i in range(16))
    plan = write_plan(
        tmp_path,
        host_tables(*hosts, slots=8) + body,
        header='runtime = "ssh"\nmax_parallel = 16\nlock_grace = "500ms"\n',
    )
    result = corral(repo, "run", str(plan), "--quiet", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    rundir = only_run(repo)
    assert counter.read_text() == "3200"
    events = events_of(rundir)
    intervals = hold_intervals(events, "counter")
    assert len(intervals) == 3200
    granted = {e.agent for e in events if isinstance(e, ev.LockAcquired)}
    assert granted == {f"w{i}" for i in range(16)}
    placed = {e.host for e in events if isinstance(e, ev.AgentStarting)}
    assert placed == {"alpha", "beta"}
    assert sum(isinstance(e, ev.LockWaiting) for e in events) > 100, "no contention at all?"
    assert processes_with_env("CORRAL_RUN_ID", rundir.run_id) == []


@pytest.mark.parametrize("field", ["address", "workdir"])
def test_a_bad_host_table_names_the_field_and_the_fix(
    repo: Path, tmp_path: Path, field: str
) -> None:
    table = {"address": "no-port-or-user", "workdir": "relative/dir"}
    body = (
        '[[host]]\nname = "h"\nidentity = "/x"\n'
        + ('address = "root@127.0.0.1:22"\n' if field != "address" else "")
        + f"{field} = {json.dumps(table[field])}\n\n"
        + agent_block("a", ["true"])
    )
    plan = write_plan(tmp_path, body, header='runtime = "ssh"\n')
    result = corral(repo, "run", str(plan), "--quiet")
    assert result.returncode != 0
    assert f"host 'h': {field}:" in result.stderr + result.stdout


PARTITIONED = """
import os, signal, subprocess, sys, time
from pathlib import Path
from corral.core.agent.lock_client import LockClient, WriteRefused
marks = Path(os.environ["MARKS"])
locks = LockClient.from_env()
attempt = os.environ["CORRAL_ATTEMPT"]
if attempt != "1":  # the retry, on the other host: waits out the lost lease, then writes
    lease = locks.acquire("res", ttl=30, wait=60)
    locks.put("res", lease.token, "res.txt", b"from attempt 2")
    locks.release(lease)
    sys.exit(0)
lease = locks.acquire("res", ttl=3, wait=10)
(marks / "token").write_text(str(lease.token))
stop = []
signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
while not stop:  # the host drops off around here; this process runs on, unreachable
    time.sleep(0.05)
# stopped once its host is back: it commits late and writes late, with its old token
Path("late.txt").write_text("late work")
subprocess.run(["git", "add", "-A"], check=True)
subprocess.run(["git", "commit", "-q", "-m", "late"], check=True)
try:
    LockClient.from_env().put("res", lease.token, "res.txt", b"late from attempt 1")
    (marks / "late-write").write_text("accepted")
except WriteRefused as exc:
    (marks / "late-write").write_text(f"refused: {exc}")
except Exception as exc:
    (marks / "late-write").write_text(f"error: {type(exc).__name__}: {exc}")
"""


@pytest.mark.slow
def test_a_host_that_drops_off_loses_its_attempt_and_its_late_results_are_refused(
    repo: Path, tmp_path: Path, hosts: tuple[Host, Host]
) -> None:
    alpha, beta = hosts
    marks = tmp_path / "marks"
    marks.mkdir()
    gate = tmp_path / "gate"
    env = {**GIT_IDENTITY, "MARKS": str(marks)}
    body = agent_block("v", ["python3", "-c", PARTITIONED], env=env, retries=1) + agent_block(
        "keeper", ["sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.05; done"]
    )
    plan = write_plan(
        tmp_path,
        host_tables(alpha, slots=2, lost_after="1s")
        + host_tables(beta, slots=2, lost_after="1s")
        + body,
        header='runtime = "ssh"\nlock_grace = "500ms"\nmin_success = 2\n',
    )
    engine = start_corral(repo, "run", str(plan), "--quiet")
    try:
        rundir = wait_for_run(repo)
        first = wait_for_event(
            rundir,
            lambda e: isinstance(e, ev.AgentStarting) and e.agent == "v",
            what="v's first attempt",
        )
        assert isinstance(first, ev.AgentStarting)
        assert first.host == "alpha", first
        wait_until(lambda: (marks / "token").exists(), timeout=60, what="v#1's lease")
        alpha.stop()  # the partition: its sshd and connections gone, v#1 runs on there
        lost = wait_for_event(
            rundir,
            lambda e: isinstance(e, ev.AgentFinished) and e.agent == "v" and e.attempt == 1,
            timeout=60,
            what="v#1 lost",
        )
        assert isinstance(lost, ev.AgentFinished)
        assert lost.outcome == "lost", lost
        redone = wait_for_event(
            rundir,
            lambda e: isinstance(e, ev.AgentFinished) and e.agent == "v" and e.attempt == 2,
            timeout=60,
            what="v#2 done",
        )
        assert isinstance(redone, ev.AgentFinished)
        assert redone.outcome == "succeeded", redone
        assert (shared_dir(rundir.path) / "res.txt").read_bytes() == b"from attempt 2"
        alpha.start()  # back: v#1 is stopped there, and what it does late is refused
        late = wait_for_event(
            rundir,
            lambda e: isinstance(e, ev.LateResultRefused),
            timeout=90,
            what="the late commit refused",
        )
        assert isinstance(late, ev.LateResultRefused)
        assert (late.agent, late.attempt, late.host, late.what) == ("v", 1, "alpha", "commit")
        assert wait_until(lambda: (marks / "late-write").exists(), timeout=10, what="late write")
        assert (marks / "late-write").read_text().startswith("refused"), (
            marks / "late-write"
        ).read_text()
        gate.touch()
        assert engine.wait(timeout=60) == 0, engine_output(repo)
    finally:
        if engine.poll() is None:
            kill9(engine)
        if alpha.proc is None:
            alpha.start()
    events = events_of(rundir)
    starting = {(e.agent, e.attempt): e.host for e in events if isinstance(e, ev.AgentStarting)}
    assert starting[("v", 2)] == "beta", "redone on the other host"
    (refused,) = [e for e in events if isinstance(e, ev.FencedWriteRefused)]
    token = int((marks / "token").read_text())
    assert (refused.agent, refused.token) == ("v", token)
    assert refused.newest_token > token
    assert (shared_dir(rundir.path) / "res.txt").read_bytes() == b"from attempt 2"
    granted = [e for e in events if isinstance(e, ev.LockAcquired) and e.lock == "res"]
    expired = [e for e in events if isinstance(e, ev.LockExpired) and e.token == token]
    assert expired, "the lost lease ran out"
    assert expired[0].seq < granted[1].seq, "and was handed on only then"
    state = state_of(rundir)
    merged = state.merge.integration_commit
    assert merged
    assert "late.txt" not in git(repo, "ls-tree", "-r", "--name-only", merged)
    assert processes_with_env("CORRAL_RUN_ID", rundir.run_id) == []


def test_a_run_whose_every_host_is_unreachable_does_not_start(
    repo: Path, tmp_path: Path, hosts: tuple[Host, Host]
) -> None:
    missing = tmp_path / "no_known_hosts"
    plan = write_plan(
        tmp_path,
        host_tables(hosts[0], known_hosts=str(missing)) + agent_block("a", ["true"]),
        header='runtime = "ssh"\n',
    )
    result = corral(repo, "run", str(plan), "--quiet")
    assert result.returncode != 0
    assert f"ssh-keyscan -p {hosts[0].port} 127.0.0.1 >> {missing}" in result.stderr, result.stderr
    assert not (repo / ".git" / "corral" / "runs").exists() or not list(
        (repo / ".git" / "corral" / "runs").iterdir()
    )


def test_no_hosts_at_all_is_a_plan_error(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CORRAL_HOSTS_FILE", str(tmp_path / "none.toml"))
    plan = write_plan(tmp_path, agent_block("a", ["true"]), header='runtime = "ssh"\n')
    result = corral(repo, "run", str(plan), "--quiet")
    assert result.returncode != 0
    assert 'runtime "ssh" has no hosts; add [[host]] tables' in result.stderr


def test_the_users_hosts_file_adds_hosts_and_the_plan_wins_by_name(tmp_path: Path) -> None:
    from corral.core.plan.hosts import HostSpec
    from corral.core.plan.problems import PlanError
    from corral.core.remote.config import pool

    path = tmp_path / "hosts.toml"
    path.write_text(
        '[[host]]\nname = "a"\naddress = "u@a.example"\nidentity = "~/.ssh/id"\nslots = 2\n'
        '[[host]]\nname = "b"\naddress = "u@b.example:2222"\nidentity = "~/.ssh/id"\n'
    )
    mine = HostSpec(name="a", address="me@a.example:22", identity="/k", slots=7)
    found = {h.name: h for h in pool([mine], path)}
    assert found["a"] == mine
    assert (found["b"].user, found["b"].hostname, found["b"].port) == ("u", "b.example", 2222)
    path.write_text('[[host]]\nname = "c"\naddress = "c.example"\nidentity = "/k"\n')
    with pytest.raises(PlanError, match=r"host 'c': address: .*user@host:port"):
        pool([], path)


ROGUE = """
import json, os, socket
sock = socket.socket(socket.AF_UNIX)
sock.connect(os.environ["CORRAL_SOCKET"])
sock.sendall(json.dumps({"op": "kill", "agent": "victim", "by": "me"}).encode() + b"\\n")
answer = sock.makefile().readline()
open(os.path.join(os.environ["CORRAL_OUTPUT"], "answer.json"), "w").write(answer)
"""


def test_an_operator_request_from_a_remote_agent_is_refused_as_its_own(
    repo: Path, tmp_path: Path, hosts: tuple[Host, Host]
) -> None:
    """Through the forwarded socket every request arrives from the engine's own process, so
    the relay stamps it with the attempt's token: a kill without one is still the agent's."""
    body = agent_block("rogue", ["python3", "-c", ROGUE]) + agent_block(
        "victim", ["sh", "-c", "sleep 1"], depends_on=["rogue"]
    )
    plan = write_plan(tmp_path, host_tables(*hosts) + body, header='runtime = "ssh"\n')
    result = corral(repo, "run", str(plan), "--quiet", timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    rundir = only_run(repo)
    answer = json.loads((rundir.output_dir("rogue", 1) / "answer.json").read_text())
    assert answer["ok"] is False
    (refused,) = [e for e in events_of(rundir) if isinstance(e, ev.OperatorActionRefused)]
    assert (refused.action, refused.caller_agent, refused.caller_attempt) == ("kill", "rogue", 1)
    assert "token" in refused.evidence
    assert state_of(rundir).agents["victim"].state == "succeeded"


ROOTLESS = 'git reset -q --hard "$(git commit-tree -m "unrelated history" "$(git write-tree)")"'


def test_a_branch_that_does_not_descend_from_the_snapshot_is_not_taken(
    repo: Path, tmp_path: Path, hosts: tuple[Host, Host]
) -> None:
    """The host is untrusted: what comes back must be one commit on top of the snapshot."""
    body = agent_block("rewriter", ["sh", "-c", ROOTLESS], env=GIT_IDENTITY)
    plan = write_plan(tmp_path, host_tables(*hosts) + body, header='runtime = "ssh"\n')
    result = corral(repo, "run", str(plan), "--quiet", timeout=120)
    assert result.returncode != 0
    rundir = only_run(repo)
    (finished,) = [e for e in events_of(rundir) if isinstance(e, ev.AgentFinished)]
    assert finished.outcome == "failed"
    assert "does not descend from the snapshot" in finished.reason, finished.reason
    assert git(repo, "branch", "--list", "corral/*/rewriter/*") == ""
