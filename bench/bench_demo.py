"""The demo's wall time with its agents in parallel, against the same agents one at a time.

    python bench/bench_demo.py [--rounds 3]

Each round runs examples/demo.toml headless on a fresh copy of the sample twice: as shipped
(max_parallel = 8) and with max_parallel = 1. It prints the wall time of each (`corral run`,
start to exit: worktrees, agents, merge, verification, report), the speedup, and the ideal
speedup of the parallel run: the sum of the agents' times (AgentFinished.duration) divided by
the longest, from both runs (in parallel the agents share the CPUs, so their times stretch).
Medians over the rounds; the machine is noisy, compare ratios.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from scratch import run_quietly

from corral.core.cli.demo import EXAMPLES, demo_plan, make_sample_repo
from corral.core.log import events as ev
from corral.core.log import read_log
from corral.core.runs.rundir import list_runs


def run_once(workdir: Path, max_parallel: int) -> tuple[float, list[float]]:
    """Wall time of one demo run and its agents' durations."""
    repo = make_sample_repo(workdir / f"p{max_parallel}")
    plan = workdir / f"demo-{max_parallel}.toml"
    text = demo_plan().read_text()
    plan.write_text(re.sub(r"(?m)^max_parallel = \d+$", f"max_parallel = {max_parallel}", text))
    env = {**os.environ, "DEMO_TOOLS": str(EXAMPLES / "tools")}
    started = time.perf_counter()
    proc = run_quietly(plan, repo, env)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"the demo failed:\n{proc.stdout}\n{proc.stderr}")
    events = read_log(list_runs(repo / ".git")[0].events).events
    durations = [e.duration for e in events if isinstance(e, ev.AgentFinished)]
    return wall, durations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    walls: dict[int, list[float]] = {8: [], 1: []}
    ideals: dict[int, list[float]] = {8: [], 1: []}
    sums: dict[int, list[float]] = {8: [], 1: []}
    for _ in range(args.rounds):
        workdir = Path(tempfile.mkdtemp(prefix="bd-", dir="/tmp"))
        try:
            for width in (8, 1):
                wall, durations = run_once(workdir, width)
                walls[width].append(wall)
                ideals[width].append(sum(durations) / max(durations))
                sums[width].append(sum(durations))
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    parallel, serial = statistics.median(walls[8]), statistics.median(walls[1])
    print(f"demo, 8 agents, median of {args.rounds} round(s), {os.cpu_count()} CPU(s)")
    print(f"  parallel (max_parallel = 8)  {parallel:6.2f} s wall")
    print(f"  one at a time (= 1)          {serial:6.2f} s wall")
    print(f"  speedup                      {serial / parallel:6.2f}x")
    for width, name in ((8, "in parallel"), (1, "one at a time")):
        print(
            f"  agents' time {name:<14} {statistics.median(sums[width]):6.2f} s summed, "
            f"ideal speedup (sum / longest) {statistics.median(ideals[width]):5.2f}x"
        )


if __name__ == "__main__":
    main()
