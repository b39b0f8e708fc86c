"""The `ray` runtime end to end: real `corral run` engines against a local three-node cluster."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from corral.core.log import events as ev
from tests.conftest import git, make_repo
from tests.core.engine_helpers import agent_block, corral, events_of, only_run, write_plan
from tests.core.ray.conftest import SLOTS_PER_NODE, ray_header

pytestmark = [pytest.mark.slow]
PY = sys.executable


def started(events: list[ev.Event]) -> list[ev.AgentStarted]:
    return [event for event in events if isinstance(event, ev.AgentStarted)]


def node_of(event: ev.AgentStarted) -> str:
    node = (event.identity.model_extra or {}).get("node_id")
    assert isinstance(node, str), event.identity
    return node


def test_thirty_agents_spread_over_the_nodes_within_their_slots(
    tmp_path: Path, cluster: Any
) -> None:
    repo = make_repo(tmp_path / "repo", {"README.md": "hello\n"})
    body = ""
    for i in range(30):
        if i % 3 == 0:  # coding agents: a file each, merged
            command = ["sh", "-c", f"corral heartbeat && echo {i} > out{i}.txt && sleep 1"]
        else:
            command = ["sh", "-c", "corral heartbeat --progress 50% && sleep 1 && echo done"]
        body += agent_block(f"a{i}", command)
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
    output = (only_run(repo).output_log("a1", 1)).read_text()
    assert "done" in output
