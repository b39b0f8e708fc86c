"""The `ray` runtime's parts without a cluster: placement options, bundles, the socket relay,
and the plan errors for a missing Ray."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import pytest

from corral.core.plan.model import parse_plan
from corral.core.plan.preflight import _ray_problems
from corral.core.plan.resources import AgentResources, RaySettings
from corral.core.ray import bundles
from corral.core.ray.relay import EngineRelay, NodeListener
from corral.core.runtime.ray_runtime import actor_options
from corral.worktrees.bundle import BranchRefused
from tests.conftest import git, make_repo


def test_an_agent_takes_one_slot_and_no_cpu_unless_it_asks() -> None:
    options = actor_options(RaySettings(), None)
    assert options["num_cpus"] == 0
    assert options["resources"] == {"corral_slot": 1.0}
    assert options["lifetime"] == "detached"
    assert options["max_restarts"] == 0
    asked = AgentResources(cpus=2, gpus=1, memory_mb=512, node="gpu-box", custom={"licence": 1})
    options = actor_options(RaySettings(slot_resource="agents"), asked)
    assert (options["num_cpus"], options["num_gpus"], options["memory"]) == (2, 1, 512 << 20)
    assert options["resources"] == {"agents": 1.0, "licence": 1.0, "gpu-box": 0.001}


def test_the_plan_reads_run_ray_and_agent_resources() -> None:
    plan = parse_plan(
        {
            "run": {"runtime": "ray", "ray": {"address": "ray://head:10001"}},
            "defaults": {"resources": {"slots": 2}},
            "agent": [{"id": "a", "command": ["true"], "resources": {"slots": 1, "gpus": 1}}],
        }
    )
    assert plan.run.ray.address == "ray://head:10001"
    spec = plan.agent("a")
    assert spec.resources is not None
    assert (spec.resources.slots, spec.resources.gpus) == (1, 1)


def test_without_ray_a_ray_plan_names_the_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    plan = parse_plan({"run": {"runtime": "ray"}, "agent": [{"id": "a", "command": ["true"]}]})
    [problem] = _ray_problems(plan)
    assert "pip install 'corral[ray]'" in problem.message
    local = parse_plan({"agent": [{"id": "a", "command": ["true"]}]})
    assert _ray_problems(local) == []


def test_corral_imports_no_ray_until_a_plan_names_it() -> None:
    code = (
        "import sys, corral.core.runtime.registry, corral.core.runtime.ray_runtime, "
        "corral.core.plan.preflight, corral.core.engine.scheduler; "
        "print('ray' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_branch_goes_out_and_back_as_bundles(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    snapshot = git(repo, "rev-parse", "HEAD")
    data = bundles.snapshot_bundle(repo, snapshot, tmp_path / "ship.git")
    assert git(repo, "for-each-ref").count("corral-snapshot") == 0, "no ref in the user's repo"
    calls: list[int] = []

    def fetch() -> bytes:
        calls.append(1)
        return data

    cache = tmp_path / "node" / "cache.git"
    bundles.unpack_snapshot(cache, snapshot, fetch)
    bundles.unpack_snapshot(cache, snapshot, fetch)
    assert calls == [1], "the node's cache is made once"
    work = tmp_path / "node" / "work"
    bundles.clone_attempt(cache, work, snapshot, "corral/r/a/1")
    assert (work / "a.txt").read_text() == "a\n"
    assert bundles.branch_bundle(work, "corral/r/a/1", snapshot) is None
    (work / "b.txt").write_text("b\n")
    git(work, "add", "b.txt")
    git(work, "commit", "-qm", "b")
    back = bundles.branch_bundle(work, "corral/r/a/1", snapshot)
    tip = bundles.fetch_branch(repo, "corral/r/a/1", snapshot, back)
    assert git(repo, "show", f"{tip}:b.txt") == "b"
    assert bundles.fetch_branch(repo, "corral/r/a/2", snapshot, None) == snapshot


def test_a_branch_that_skips_the_snapshot_is_refused(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo", {"a.txt": "a\n"})
    snapshot = git(repo, "rev-parse", "HEAD")
    other = make_repo(tmp_path / "other", {"x.txt": "x\n"})
    git(other, "checkout", "-qb", "corral/r/a/1")
    rogue = tmp_path / "rogue.bundle"
    git(other, "bundle", "create", "-q", str(rogue), "corral/r/a/1")
    with pytest.raises(BranchRefused, match="does not descend from the snapshot"):
        bundles.fetch_branch(repo, "corral/r/a/1", snapshot, rogue.read_bytes())
    assert "corral/r/a/1" not in git(repo, "branch", "--list")


def test_the_relay_carries_a_conversation_both_ways(tmp_path: Path) -> None:
    """An agent's connection on the node reaches the engine's socket and hears its answer."""

    async def scenario() -> bytes:
        engine_socket = tmp_path / "engine.sock"

        async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            line = await reader.readline()
            writer.write(b"ok " + line)
            await writer.drain()
            writer.close()

        server = await asyncio.start_unix_server(answer, path=str(engine_socket))
        node = NodeListener(tmp_path / "node.sock")
        await node.open()
        relay = asyncio.create_task(
            EngineRelay(engine_socket, node.pull, node.push, token="t0k").run()
        )
        reader, writer = await asyncio.open_unix_connection(str(tmp_path / "node.sock"))
        writer.write(b"heartbeat\n")
        await writer.drain()
        reply = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        relay.cancel()
        node.close()
        server.close()
        return reply

    assert asyncio.run(scenario()) == b"ok heartbeat\n"


def test_every_request_from_a_node_carries_the_attempts_token(tmp_path: Path) -> None:
    """The engine's side opens the engine's socket from the engine itself: each request line,
    split over frames or several in one, is stamped with the attempt's token, whatever token it
    said (core/remote/relay.py `stamp`); a line without its end at end-of-file too."""

    async def scenario() -> list[bytes]:
        engine_socket = tmp_path / "engine.sock"
        seen: list[bytes] = []
        ended = asyncio.Event()

        async def record(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while line := await reader.readline():
                seen.append(line)
            ended.set()  # the node's end-of-file came through
            writer.close()

        server = await asyncio.start_unix_server(record, path=str(engine_socket))
        node = NodeListener(tmp_path / "node.sock")
        await node.open()
        relay = asyncio.create_task(
            EngineRelay(engine_socket, node.pull, node.push, token="t0k", poll=0.2).run()
        )
        _, writer = await asyncio.open_unix_connection(str(tmp_path / "node.sock"))
        kill = b'{"op": "kill", "agent": "victim", "by": "me"}\n'
        writer.write(kill[:10])
        await writer.drain()
        await asyncio.sleep(0.3)  # the rest in a later frame (the result is the same if not)
        writer.write(kill[10:] + b'{"op": "heartbeat", "token": "forged"}\n{"op": "ping"}\n')
        writer.write(b'{"op": "heartbeat"}')
        await writer.drain()
        writer.write_eof()
        await asyncio.wait_for(ended.wait(), 10)
        writer.close()
        relay.cancel()
        node.close()
        server.close()
        return seen

    seen = [json.loads(line) for line in asyncio.run(scenario())]
    assert seen == [
        {"op": "kill", "agent": "victim", "by": "me", "token": "t0k"},
        {"op": "heartbeat", "token": "t0k"},
        {"op": "ping"},
        {"op": "heartbeat", "token": "t0k"},
    ]
