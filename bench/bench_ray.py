"""The `ray` runtime at scale, and the engine's own cost per attempt.

`cluster` mode: N agents that each sleep S seconds (audit agents writing an empty findings file,
so nothing is merged) over a local Ray cluster of three nodes (`ray.cluster_utils.Cluster`,
`--slots` corral_slot each, one CPU each, on this machine). Prints the wall time, wall / S,
how many ran at once at most, where the time went (read from the run's event log: start, the
spread of placements, an attempt's placement from `agent_starting` to `agent_started`, the
end), and the engine process's own CPU seconds (per attempt, and its events per second).
On a machine of two cores the cluster's actors (one Python worker each) cost far more than the
engine: the figures say which is which.

`fake` mode: a simulated run of N attempts on FakeRuntime (core/runtime/fake.py: no processes,
no git) in this process, to show the scheduler and the event log keep up: wall, events per
second, CPU seconds per attempt.

Usage: python bench/bench_ray.py cluster [--agents 100] [--sleep 2] [--slots 16]
       python bench/bench_ray.py fake [--agents 10000] [--parallel 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scratch import IDENTITY, make_repo

FINDINGS = '{"version": 1, "findings": []}'


def plan_text(agents: int, parallel: int, runtime: str, command: list[str], extra: str) -> str:
    body = (
        f'[run]\nname = "bench"\nmax_parallel = {parallel}\nruntime = "{runtime}"\n{extra}\n'
        '[defaults]\nkind = "audit"\n\n'
    )
    for i in range(agents):
        body += f'[[agent]]\nid = "s{i}"\ncommand = {json.dumps(command)}\n\n'
    return body


def log_of(repo: Path) -> list[dict[str, object]]:
    (events,) = (repo / ".git" / "corral" / "runs").glob("*/events.jsonl")
    return [json.loads(line) for line in events.read_text().splitlines()]


def most_at_once(events: list[dict[str, object]]) -> int:
    running = peak = 0
    for event in events:
        if event["type"] == "agent_started":
            running += 1
            peak = max(peak, running)
        elif event["type"] == "agent_finished":
            running -= 1
    return peak


def stamps(events: list[dict[str, object]], kind: str) -> list[float]:
    return [float(str(e["ts"])) for e in events if e["type"] == kind]


def cluster_mode(args: argparse.Namespace) -> None:
    from ray.cluster_utils import Cluster

    scratch = Path(tempfile.mkdtemp(prefix="corral-bench-ray-"))
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "resources": {"corral_slot": args.slots}},
    )
    try:
        for _ in range(2):
            cluster.add_node(num_cpus=1, resources={"corral_slot": args.slots})
        cluster.wait_for_nodes()
        repo = make_repo(scratch / "repo", {"README.md": "bench\n"})
        command = [
            "sh",
            "-c",
            f"sleep {args.sleep}; echo '{FINDINGS}' > $CORRAL_OUTPUT/findings.json",
        ]
        extra = f'[run.ray]\naddress = "{cluster.address}"\n'
        plan = scratch / "plan.toml"
        plan.write_text(plan_text(args.agents, 3 * args.slots, "ray", command, extra))
        began = time.time()
        with open(scratch / "engine.out", "w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "corral.core.cli", "run", str(plan), "--quiet"],
                cwd=repo,
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, **IDENTITY},
            )
            _, status, usage = os.wait4(proc.pid, 0)
        ended = time.time()
        if status != 0:
            raise SystemExit(f"run failed: {(scratch / 'engine.out').read_text()[:2500]}")
        events = log_of(repo)
        started = stamps(events, "agent_started")
        starting = stamps(events, "agent_starting")
        placement = sorted(b - a for a, b in zip(starting, started, strict=False))
        cpu = usage.ru_utime + usage.ru_stime
        wall = ended - began
        print(f"agents {args.agents} x sleep {args.sleep:g} s over 3 nodes x {args.slots} slots")
        print(f"  wall {wall:.1f} s, wall / sleep {wall / args.sleep:.1f}")
        ideal = -(-args.agents // (3 * args.slots)) * args.sleep
        print(
            f"  ideal with {3 * args.slots} slots: {ideal:.0f} s (wall / ideal {wall / ideal:.2f})"
        )
        print(f"  most at once: {most_at_once(events)}")
        run_started = stamps(events, "run_started")[0]
        print(f"  start (process to run_started): {run_started - began:.1f} s")
        print(f"  first agent started after run_started: {started[0] - run_started:.1f} s")
        print(
            f"  placement (agent_starting -> agent_started): median "
            f"{placement[len(placement) // 2]:.2f} s, p90 {placement[int(len(placement) * 0.9)]:.2f} s"
        )
        stopped = stamps(events, "engine_stopped")[-1]
        print(
            f"  end (last agent finished -> engine stopped): {stopped - stamps(events, 'agent_finished')[-1]:.1f} s"
        )
        print(
            f"  engine CPU {cpu:.1f} s = {1000 * cpu / args.agents:.0f} ms per attempt; "
            f"{len(events)} events, {len(events) / wall:.0f} events/s over the run"
        )
    finally:
        cluster.shutdown()
        shutil.rmtree(scratch, ignore_errors=True)


def fake_mode(args: argparse.Namespace) -> None:
    from corral.core.engine.runner import start_run
    from corral.core.plan.model import load_plan
    from corral.core.plan.preflight import preflight
    from corral.core.runs.rundir import new_run_id
    from corral.core.runtime import registry
    from corral.core.runtime.base import RuntimeSetup
    from corral.core.runtime.fake import FakeRuntime, Script

    scratch = Path(tempfile.mkdtemp(prefix="corral-bench-fake-"))
    try:
        repo = make_repo(scratch / "repo", {"README.md": "bench\n"})
        plan = scratch / "plan.toml"
        plan.write_text(plan_text(args.agents, args.parallel, "fake", ["true"], ""))
        scripts = {f"s{i}": [Script(exit_code=0, after=args.sleep)] for i in range(args.agents)}

        def factory(setup: RuntimeSetup) -> FakeRuntime:
            return FakeRuntime(setup, scripts)

        registry.register("fake", factory)
        os.environ.update(IDENTITY)
        os.chdir(repo)
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        began = time.time()
        pre = preflight(load_plan(plan), plan, repo)
        outcome = asyncio.run(start_run(pre, plan.read_bytes(), new_run_id(), None))
        wall = time.time() - began
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        events = log_of(repo)
        finished = [e for e in events if e["type"] == "agent_finished"]
        print(f"fake: {args.agents} attempts, max_parallel {args.parallel}, each {args.sleep:g} s")
        print(
            f"  exit {outcome.exit_code}, {len(finished)} finished, most at once {most_at_once(events)}"
        )
        print(f"  wall {wall:.1f} s, {len(events)} events, {len(events) / wall:.0f} events/s")
        print(f"  CPU {cpu:.1f} s = {1000 * cpu / args.agents:.2f} ms per attempt")
        ideal = -(-args.agents // args.parallel) * args.sleep
        print(f"  ideal {ideal:.1f} s (waves of {args.parallel}); overhead {wall - ideal:.1f} s")
    finally:
        registry.unregister("fake")
        shutil.rmtree(scratch, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    sub = parser.add_subparsers(dest="mode", required=True)
    on_cluster = sub.add_parser("cluster")
    on_cluster.add_argument("--agents", type=int, default=100)
    on_cluster.add_argument("--sleep", type=float, default=2.0)
    on_cluster.add_argument("--slots", type=int, default=16)
    fake = sub.add_parser("fake")
    fake.add_argument("--agents", type=int, default=10000)
    fake.add_argument("--parallel", type=int, default=1000)
    fake.add_argument("--sleep", type=float, default=2.0)
    args = parser.parse_args()
    if args.mode == "cluster":
        cluster_mode(args)
    else:
        fake_mode(args)


if __name__ == "__main__":
    main()
