"""Where one sandboxed attempt's time goes, against a local one: each runtime phase, timed.

Attempts run one at a time through the runtime itself (`place`, `prepare`, `start`, `wait`,
`stop`, `collect`, `release`), local and sandbox alternated attempt by attempt, each running
`--command` (default `true`). Printed per phase: the median wall time and the median CPU time
of this process (its threads included: git and bubblewrap are other processes, so their CPU
shows only as wall). The sandbox's extra wall time in `start` and `wait` is bubblewrap's own
(its namespaces and mounts, then their teardown); in `prepare`, `stop` and `collect` it is
corral's (the private git directory, the pid 1, the private branch). `bench/bench_engine.py
--runtime local sandbox --command true` gives the whole-run figure of the issue (50 at once).

Usage: python bench/bench_sandbox.py [--attempts 30] [--files 100] [--command true]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from scratch import make_repo

from corral.core.runtime.base import AttemptRef, AttemptRequest, Runtime, RuntimeSetup
from corral.core.runtime.local import LocalRuntime
from corral.core.runtime.sandbox import SandboxRuntime

PHASES = ("place", "prepare", "start", "wait", "stop", "collect", "release")
RUN_ID = "20261203-000000-bench0"

Timings = dict[str, list[tuple[float, float]]]
"""Phase: (wall, CPU) of each attempt, in seconds."""


async def one_attempt(
    runtime: Runtime, setup: RuntimeSetup, agent: str, command: list[str], into: Timings
) -> None:
    ref = AttemptRef(run_id=RUN_ID, agent=agent, attempt=1)
    attempt_dir = setup.rundir / "agents" / agent / "1"
    (attempt_dir / "out").mkdir(parents=True)
    (attempt_dir / "output.log").touch()
    request = AttemptRequest(
        ref=ref,
        output_dir=attempt_dir / "out",
        log_path=attempt_dir / "output.log",
        socket=setup.rundir / "control.sock",
        shared_dir=setup.rundir / "shared",
        base_env=dict(os.environ),
        corral_env={"CORRAL_RUN_ID": RUN_ID, "CORRAL_AGENT_ID": agent, "CORRAL_ATTEMPT": "1"},
    )
    stamps = [(time.perf_counter(), time.process_time())]

    def mark() -> None:
        stamps.append((time.perf_counter(), time.process_time()))

    placement = runtime.place(request)
    mark()
    await runtime.prepare(request, placement)
    mark()
    execution = await runtime.start(placement, command)
    mark()
    await execution.wait(None)
    mark()
    await runtime.stop_attempt(ref, execution, 1.0)
    mark()
    await runtime.collect(placement)
    mark()
    await runtime.release(placement)
    mark()
    for phase, (before, after) in zip(PHASES, itertools.pairwise(stamps), strict=True):
        into[phase].append((after[0] - before[0], after[1] - before[1]))


def setup_for(repo: Path) -> RuntimeSetup:
    snapshot = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    rundir = repo / ".git" / "corral" / "runs" / RUN_ID
    (rundir / "shared").mkdir(parents=True)
    return RuntimeSetup(RUN_ID, repo, snapshot, repo / ".git" / "corral" / "worktrees", rundir)


async def measure(setup: RuntimeSetup, attempts: int, command: list[str]) -> dict[str, Timings]:
    runtimes: dict[str, Runtime] = {"local": LocalRuntime(setup), "sandbox": SandboxRuntime(setup)}
    timings: dict[str, Timings] = {name: {p: [] for p in PHASES} for name in runtimes}
    for number in range(attempts):
        for name, runtime in runtimes.items():
            await one_attempt(runtime, setup, f"{name}{number}", command, timings[name])
    for runtime in runtimes.values():
        runtime.close()
    return timings


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:7.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--attempts", type=int, default=30, help="attempts per runtime")
    parser.add_argument("--files", type=int, default=100, help="files in the bench repository")
    parser.add_argument("--command", nargs="+", default=["true"], help="what each attempt runs")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="corral-bench-sandbox-", dir="/tmp"))
    try:
        files = {f"pkg{i % 10}/mod{i}.py": f"VALUE_{i} = {i}\n" * 20 for i in range(args.files)}
        setup = setup_for(make_repo(scratch / "repo", files))
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(setup.rundir / "control.sock"))  # bubblewrap mounts it inside
        listener.listen()
        try:
            timings = asyncio.run(measure(setup, args.attempts, list(args.command)))
        finally:
            listener.close()
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"{args.attempts} attempts of {' '.join(args.command)!r} per runtime, one at a time;")
    print("median ms per attempt, wall and this process's CPU")
    print(f"{'phase':8} {'local wall':>10} {'cpu':>7} {'sandbox wall':>12} {'cpu':>7}")
    totals: dict[str, tuple[list[float], list[float]]] = {}
    for name, phases in timings.items():
        walls = [sum(phases[p][i][0] for p in PHASES) for i in range(args.attempts)]
        cpus = [sum(phases[p][i][1] for p in PHASES) for i in range(args.attempts)]
        totals[name] = (walls, cpus)
    for phase in PHASES:
        local, sandbox = timings["local"][phase], timings["sandbox"][phase]
        print(
            f"{phase:8} {ms([w for w, _ in local]):>10} {ms([c for _, c in local])} "
            f"{ms([w for w, _ in sandbox]):>12} {ms([c for _, c in sandbox])}"
        )
    (local_wall, local_cpu), (sandbox_wall, sandbox_cpu) = totals["local"], totals["sandbox"]
    print(
        f"{'total':8} {ms(local_wall):>10} {ms(local_cpu)} {ms(sandbox_wall):>12} "
        f"{ms(sandbox_cpu)}; sandbox / local wall "
        f"{statistics.median(sandbox_wall) / statistics.median(local_wall):.2f}x"
    )


if __name__ == "__main__":
    main()
