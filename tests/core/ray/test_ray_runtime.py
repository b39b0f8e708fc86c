"""The `ray` runtime end to end: real `corral run` engines against a local three-node cluster."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from corral.core.log import events as ev
from corral.core.runs.rundir import RunDir, list_runs
from tests.conftest import git, make_repo, wait_until
from tests.core.engine_helpers import (
    agent_block,
    assert_all_dead,
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
from tests.core.ray.conftest import SLOTS_PER_NODE, ray_header

# one cluster per worker process: these tests share it (`make test` runs --dist loadgroup)
pytestmark = [pytest.mark.xdist_group("ray-cluster")]
PY = sys.executable


def started(events: list[ev.Event]) -> list[ev.AgentStarted]:
    return [event for event in events if isinstance(event, ev.AgentStarted)]


def node_of(event: ev.AgentStarted) -> str:
    node = (event.identity.model_extra or {}).get("node_id")
    assert isinstance(node, str), event.identity
    return node


@pytest.mark.slow
@pytest.mark.timeout(400)  # a loaded 2-core CI machine runs the cluster too
def test_thirty_agents_spread_over_the_nodes_within_their_slots(
    tmp_path: Path, cluster: Any
) -> None:
    repo = make_repo(tmp_path / "repo", {"README.md": "hello\n"})
    body = ""
    for i in range(30):
        fields: dict[str, str] = {}
        if i % 3 == 0:  # coding agents: a file each, merged
            command = ["sh", "-c", f"corral heartbeat && echo {i} > out{i}.txt && sleep 1"]
        elif i % 3 == 1:  # audit agents: their findings come back from the node
            findings = '{"version": 1, "findings": []}'
            command = [
                "sh",
                "-c",
                f"corral heartbeat; echo '{findings}' > $CORRAL_OUTPUT/findings.json",
            ]
            fields["kind"] = "audit"
        else:
            command = ["sh", "-c", "corral heartbeat --progress 50% && sleep 1 && echo done"]
        body += agent_block(f"a{i}", command, **fields)
    header = 'runtime = "ray"\nmax_parallel = 30\n'
    plan = write_plan(repo, body, header + ray_header(cluster))
    done = corral(repo, "run", str(plan), "--quiet", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    events = events_of(only_run(repo))
    starts = started(events)
    assert len(starts) == 30
    assert all(event.runtime == "ray" for event in starts)
    nodes = {node_of(event) for event in starts}
    assert len(nodes) == 3, nodes
    # never more agents on a node than its slots: count overlapping attempts per node
    running: dict[str, int] = {}
    node_by_agent: dict[str, str] = {}
    for event in events:
        if isinstance(event, ev.AgentStarted):
            node = node_by_agent[event.agent] = node_of(event)
            running[node] = running.get(node, 0) + 1
            assert running[node] <= SLOTS_PER_NODE, running
        elif isinstance(event, ev.AgentFinished) and event.agent in node_by_agent:
            running[node_by_agent[event.agent]] -= 1
    finished = [event for event in events if isinstance(event, ev.AgentFinished)]
    assert {event.outcome for event in finished} == {"succeeded"}
    heartbeats = [event for event in events if isinstance(event, ev.AgentHeartbeat)]
    assert len({event.agent for event in heartbeats}) == 30
    integration = f"corral/{only_run(repo).run_id}/integration"
    for i in range(0, 30, 3):  # each coding agent's file, made on its node, is merged here
        assert git(repo, "show", f"{integration}:out{i}.txt") == str(i)
    assert "done" in only_run(repo).output_log("a2", 1).read_text()
    assert (only_run(repo).output_dir("a1", 1) / "findings.json").is_file()
    shown = corral(repo, "status", only_run(repo).run_id, check=True).stdout
    assert "ray: 3 nodes, " in shown
    assert f"node of a1: node {node_of(starts[0])[:12]}" in shown or "node of a1: node " in shown
    assert shown.count("node of ") == 30


ESCAPE = "( for i in 1 2 3 4 5 6 7 8 9 10; do setsid sleep 413 & echo child $!; done )"
"""Ten children in sessions of their own, reparented away from the agent at once."""


def child_pids(rundir: RunDir, agent: str, attempt: int = 1) -> list[int]:
    text = rundir.output_log(agent, attempt).read_text()
    return [int(pid) for pid in re.findall(r"^child (\d+)$", text, re.MULTILINE)]


@pytest.fixture
def no_leftovers(tmp_path: Path) -> Iterator[None]:
    """Kill (by pid) what a failing test left running, so one failure stays one failure."""
    yield
    repo = tmp_path / "repo"
    for rundir in list_runs(repo / ".git") if repo.exists() else []:
        for pid in processes_with_env("CORRAL_RUN_ID", rundir.run_id):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.mark.usefixtures("no_leftovers")
def test_kill_stops_the_agents_whole_tree_on_its_node(tmp_path: Path, cluster: Any) -> None:
    repo = make_repo(tmp_path / "repo")
    body = agent_block("escaper", ["sh", "-c", f"{ESCAPE}; sleep 600"])
    body += agent_block("bystander", ["sh", "-c", "sleep 600"])
    header = 'runtime = "ray"\n' + ray_header(cluster)
    engine = start_corral(repo, "run", str(write_plan(repo, body, header)), "--quiet")
    rundir = wait_for_run(repo, timeout=60)
    wait_until(
        lambda: (
            rundir.output_log("escaper", 1).is_file() and len(child_pids(rundir, "escaper")) == 10
        ),
        timeout=60,
        what="the agent's ten children",
    )
    pids = child_pids(rundir, "escaper")
    wait_until(lambda: all(psutil.pid_exists(pid) for pid in pids), what="the children")
    assert corral(repo, "kill", rundir.run_id, "escaper").returncode == 0
    wait_for_event(
        rundir,
        lambda e: isinstance(e, ev.AgentFinished) and e.agent == "escaper",
        what="the kill",
    )
    assert_all_dead(pids, timeout=1)
    marked = [
        pid
        for pid in processes_with_env("CORRAL_RUN_ID", rundir.run_id)
        if psutil.Process(pid).environ().get("CORRAL_AGENT") == "escaper"
    ]
    assert marked == []
    assert processes_with_env("CORRAL_RUN_ID", rundir.run_id), "the bystander runs on"
    assert corral(repo, "kill", rundir.run_id, "bystander").returncode == 0
    assert engine.wait(timeout=60) == 1, engine_output(repo)
    finished = {e.agent: e.outcome for e in events_of(rundir) if isinstance(e, ev.AgentFinished)}
    assert finished == {"escaper": "killed", "bystander": "killed"}
    wait_until(
        lambda: processes_with_env("CORRAL_RUN_ID", rundir.run_id) == [], what="no process left"
    )


COUNT_TO_200 = """
import os, sys
from pathlib import Path
from corral.core.agent.lock_client import LockClient
locks = LockClient.from_env()
counter = Path(sys.argv[1])
for _ in range(200):
    lease = locks.acquire("counter", ttl=30, wait=120)
    value = int(counter.read_text()) if counter.exists() else 0
    scratch = counter.with_name(f"counter.{os.getpid()}")
    scratch.write_text(str(value + 1))
    os.replace(scratch, counter)
    locks.release(lease)
"""


@pytest.mark.slow
@pytest.mark.timeout(400)  # a loaded 2-core CI machine runs the cluster too
def test_sixteen_agents_on_three_nodes_count_to_3200_under_one_lease(
    tmp_path: Path, cluster: Any
) -> None:
    """No lost update with the lease coming through each node's relay. The counter lives where
    the test's nodes can all read it (they are processes of this machine); the lease is the
    engine's, reached over actor calls from every node."""
    repo = make_repo(tmp_path / "repo")
    counter = tmp_path / "counter"
    command = [PY, "-c", COUNT_TO_200, str(counter)]
    env = {"PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    body = "".join(agent_block(f"w{i}", command, env=env) for i in range(16))
    header = 'runtime = "ray"\nmax_parallel = 16\nlock_grace = "500ms"\n' + ray_header(cluster)
    result = corral(repo, "run", str(write_plan(repo, body, header)), "--quiet", timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    rundir = only_run(repo)
    assert counter.read_text() == "3200"
    events = events_of(rundir)
    grants = [e for e in events if isinstance(e, ev.LockAcquired) and e.lock == "counter"]
    assert len(grants) == 3200
    assert [e.token for e in grants] == sorted(e.token for e in grants)
    assert sum(isinstance(e, ev.LockWaiting) for e in events) > 100, "no contention at all?"
    nodes = {node_of(e) for e in started(events)}
    assert len(nodes) >= 2, nodes
    state = state_of(rundir)
    assert state.locks["counter"].holder is None


@pytest.mark.slow
@pytest.mark.timeout(400)  # a loaded 2-core CI machine runs the cluster too
def test_a_removed_node_loses_its_attempts_and_they_finish_on_the_others(
    tmp_path: Path, cluster: Any
) -> None:
    repo = make_repo(tmp_path / "repo")
    body = ""
    for i in range(9):
        # each holds a lease of its own: a lost attempt's must run out, not be handed on early
        take = f"corral lock acquire lease-{i} --ttl 12 --wait 60"
        command = ["sh", "-c", f"corral heartbeat && {take} && echo {i} > f{i}.txt && sleep 8"]
        body += agent_block(f"n{i}", command, retries=2)
    header = 'runtime = "ray"\nmax_parallel = 12\nlock_grace = "500ms"\n' + ray_header(cluster)
    engine = start_corral(repo, "run", str(write_plan(repo, body, header)), "--quiet")
    rundir = wait_for_run(repo, timeout=60)
    wait_until(
        lambda: sum(isinstance(e, ev.LockAcquired) for e in events_of(rundir)) == 9,
        timeout=90,
        what="nine agents holding their leases",
    )
    by_node: dict[str, list[str]] = {}
    for start in started(events_of(rundir)):
        by_node.setdefault(node_of(start), []).append(start.agent)
    victim = next(
        node
        for node in cluster.list_all_nodes()
        if node is not cluster.head_node and by_node.get(node.node_id)
    )
    doomed = set(by_node[victim.node_id])
    try:
        cluster.remove_node(victim, allow_graceful=False)
        assert engine.wait(timeout=240) == 0, engine_output(repo)
    finally:
        cluster.add_node(num_cpus=1, resources={"corral_slot": SLOTS_PER_NODE})
        cluster.wait_for_nodes()
    events = events_of(rundir)
    lost = {e.agent for e in events if isinstance(e, ev.AgentFinished) and e.outcome == "lost"}
    assert lost == doomed
    # nothing of an agent ran twice at once: each attempt ended before the next one started
    running: dict[str, int] = {}
    for event in events:
        if isinstance(event, ev.AgentStarted):
            assert event.agent not in running, f"{event.agent} started twice at once"
            running[event.agent] = event.attempt
            if event.agent in doomed and event.attempt > 1:
                assert node_of(event) != victim.node_id
        elif isinstance(event, ev.AgentFinished) and event.agent in running:
            del running[event.agent]
    # the lost attempts' leases were kept until TTL + grace, then handed to their retries
    for agent in doomed:
        grants = [e for e in events if isinstance(e, ev.LockAcquired) and e.agent == agent]
        first, retried = grants[0], grants[-1]
        ends = [
            (e.attempt, e.outcome, e.reason)
            for e in events
            if isinstance(e, ev.AgentFinished) and e.agent == agent
        ]
        assert first.attempt == 1, ends
        assert retried.attempt > 1, ends
        assert not [e for e in events if isinstance(e, ev.LockReleased) and e.token == first.token]
        expired = [e for e in events if isinstance(e, ev.LockExpired) and e.token == first.token]
        assert expired, f"{agent}'s lost lease did not run out"
        assert expired[0].seq < retried.seq, f"{agent}'s lease was handed on early"
    state = state_of(rundir)
    assert {agent.state for agent in state.agents.values()} == {"succeeded"}
    assert processes_with_env("CORRAL_RUN_ID", rundir.run_id) == []
    assert corral(repo, "verify", rundir.run_id).returncode == 0
    integration = f"corral/{rundir.run_id}/integration"
    assert [git(repo, "show", f"{integration}:f{i}.txt") for i in range(9)] == [
        str(i) for i in range(9)
    ]


@pytest.mark.usefixtures("no_leftovers")
def test_a_resumed_engine_stops_the_dead_engines_actors(tmp_path: Path, cluster: Any) -> None:
    """The engine dies (SIGKILL); its detached actors run on; the resumed engine finds each
    by name and actor id, stops its tree, logs it lost and runs it again."""
    repo = make_repo(tmp_path / "repo")
    body = agent_block("long", ["sh", "-c", f"{ESCAPE}; sleep 600"])
    header = 'runtime = "ray"\n' + ray_header(cluster)
    engine = start_corral(repo, "run", str(write_plan(repo, body, header)), "--quiet")
    rundir = wait_for_run(repo, timeout=60)
    wait_until(
        lambda: rundir.output_log("long", 1).is_file() and len(child_pids(rundir, "long")) == 10,
        timeout=60,
        what="the agent's children",
    )
    pids = child_pids(rundir, "long")
    kill9(engine)
    assert all(psutil.pid_exists(pid) for pid in pids), "the agent died with the engine"
    rundir.plan.write_text(rundir.plan.read_text().replace("sleep 600", "exit 0"))
    result = corral(repo, "run", "--resume", rundir.run_id, "--quiet", timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    first = state_of(rundir).agents["long"].attempts[0]
    assert first.state == "lost"
    assert "were still alive and were stopped" in first.reason
    assert_all_dead(pids, timeout=1)
    ray = pytest.importorskip("ray")
    ray.init(address=cluster.address, namespace="corral", ignore_reinit_error=True)
    try:
        with pytest.raises(ValueError, match="Failed to look up actor"):
            ray.get_actor(f"corral/{rundir.run_id}/long/1", namespace="corral")
    finally:
        ray.shutdown()


def test_an_unreachable_cluster_is_a_clear_exit_2(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    header = 'runtime = "ray"\n[run.ray]\naddress = "127.0.0.1:9"\nconnect_timeout = "1s"\n'
    result = corral(repo, "run", str(write_plan(repo, agent_block("a", ["true"]), header)))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "the Ray cluster at '127.0.0.1:9' does not answer" in result.stderr
    assert list_runs(repo / ".git") == []


ROGUE = """
import json, os, socket
sock = socket.socket(socket.AF_UNIX)
sock.connect(os.environ["CORRAL_SOCKET"])
sock.sendall(json.dumps({"op": "kill", "agent": "victim", "by": "me"}).encode() + b"\\n")
answer = sock.makefile().readline()
open(os.path.join(os.environ["CORRAL_OUTPUT"], "answer.json"), "w").write(answer)
"""


@pytest.mark.usefixtures("no_leftovers")
def test_an_operator_request_from_a_node_is_refused_as_the_agents_own(
    tmp_path: Path, cluster: Any
) -> None:
    """The engine's relay opens the engine's socket from the engine's own process, so every
    request from a node is stamped with its attempt's token: a kill written without one is
    still the agent's, refused and recorded (docs/reliability.md T1)."""
    repo = make_repo(tmp_path / "repo")
    body = agent_block("rogue", [PY, "-c", ROGUE]) + agent_block(
        "victim", ["sh", "-c", "sleep 1"], depends_on=["rogue"]
    )
    header = 'runtime = "ray"\nmin_success = 0\n' + ray_header(cluster)
    result = corral(repo, "run", str(write_plan(repo, body, header)), "--quiet", timeout=300)
    rundir = only_run(repo)
    answer = json.loads((rundir.output_dir("rogue", 1) / "answer.json").read_text())
    assert answer["ok"] is False, (answer, result.stdout + result.stderr)
    (refused,) = [e for e in events_of(rundir) if isinstance(e, ev.OperatorActionRefused)]
    assert (refused.action, refused.caller_agent, refused.caller_attempt) == ("kill", "rogue", 1)
    assert "token" in refused.evidence
    assert state_of(rundir).agents["victim"].state == "succeeded"
