"""Orchestration overhead: N agents that each sleep S seconds, all allowed at once.

Prints wall time / S for each run (1.0 would be free orchestration; the target is under 1.5
for 50 agents), the median and best of the runs, and where the time went, read from the run's
own event log:

  start    process start to `run_started` (interpreter, imports, plan checks, run directory)
  spread   `run_started` to the last agent's process started (worktrees and spawns)
  end      the last agent's exit to `engine_stopped` (its end, merge, report)
  exit     `engine_stopped` to the process gone

Scratch repositories are deleted only after every run: deleting thousands of files just before
creating thousands more slows these disks down for tens of seconds (docs/performance.md, churn).

With `--command true` (any command) each agent runs that instead of `sleep`: the figure is
then the whole wall time, the start-up cost of N attempts. Several `--runtime`s are run
alternately (run 1 of each, then run 2 of each, ...) so a machine that drifts through the bench
drifts for all of them, and the last lines compare each runtime's median wall with the first's
(issue 12: sandbox against local, target under 1.2x for 50 x `true`). Each run starts after
`--settle` seconds of rest: the kernel frees a sandboxed run's namespaces after it has ended,
and without the rest the run after it (a local one, alternated) paid for that.

Usage: python bench/bench_engine.py [--agents 50 200] [--sleep 2] [--runs 3] [--files 100]
                                    [--runtime local sandbox] [--command true] [--settle 2]
"""

from __future__ import annotations

import argparse
import compileall
import json
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from scratch import make_repo, run_quietly


def sources(files: int) -> dict[str, str]:
    """`files` small modules across ten packages."""
    return {f"pkg{i % 10}/mod{i}.py": f"VALUE_{i} = {i}\n" * 20 for i in range(files)}


@dataclass
class Run:
    wall: float
    start: float
    spread: float
    end: float
    exit: float


def phases(events_path: Path, began: float, ended: float, sleep: float) -> Run:
    """The run's phases from its event log (wall-clock stamps) and the process's own times."""
    stamps: dict[str, list[float]] = {}
    for line in events_path.read_text().splitlines():
        event = json.loads(line)
        stamps.setdefault(event["type"], []).append(event["ts"])
    started = stamps["run_started"][0]
    last_spawn = max(stamps["agent_started"])
    stopped = stamps["engine_stopped"][-1]
    return Run(
        wall=ended - began,
        start=started - began,
        spread=last_spawn - started,
        end=stopped - (last_spawn + sleep),
        exit=ended - stopped,
    )


def run_once(
    scratch: Path,
    agents: int,
    command: list[str],
    sleep: float,
    files: int,
    runtime: str,
    settle: float = 0.0,
) -> Run:
    repo = scratch / "repo"
    make_repo(repo, sources(files))
    plan = scratch / "plan.toml"
    body = f'[run]\nname = "bench"\nmax_parallel = {agents}\nruntime = "{runtime}"\n\n'
    for i in range(agents):
        body += f'[[agent]]\nid = "s{i}"\ncommand = {json.dumps(command)}\n\n'
    plan.write_text(body)
    time.sleep(settle)  # the kernel's deferred cleanup of the last run's namespaces, not this run's
    began = time.time()
    result = run_quietly(plan, repo)
    ended = time.time()
    if result.returncode != 0:
        raise SystemExit(f"run failed:\n{result.stdout}\n{result.stderr}")
    (events,) = (repo / ".git" / "corral" / "runs").glob("*/events.jsonl")
    return phases(events, began, ended, sleep)


def compile_sources() -> None:
    """What `make compile` does: an installed corral has bytecode, so the figure should too."""
    root = Path(__file__).resolve().parent.parent
    for package in ("core", "worktrees", "tui"):
        compileall.compile_dir(root / package, quiet=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--agents", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--sleep", type=float, default=2.0)
    parser.add_argument("--runs", type=int, default=3, help="runs per agent count")
    parser.add_argument("--files", type=int, default=100, help="files in the bench repository")
    parser.add_argument(
        "--runtime",
        nargs="+",
        default=["local"],
        help='where agents run: "local", "sandbox"; several are run alternately',
    )
    parser.add_argument(
        "--command", nargs="+", help="what each agent runs instead of sleep (e.g. true)"
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=2.0,
        help="seconds of rest before each run: the kernel frees a sandboxed run's namespaces "
        "after it ends, and the run after it would pay for that",
    )
    args = parser.parse_args()
    command = args.command or ["sleep", str(args.sleep)]
    sleep = 0.0 if args.command else args.sleep
    ratio = "wall/sleep" if sleep else "wall"
    compile_sources()
    scratch = Path(tempfile.mkdtemp(prefix="corral-bench-engine-"))
    print(f"command: {' '.join(command)}")
    print(
        f"{'runtime':>8} {'agents':>6} {'run':>4} {'wall':>7} {ratio:>10}"
        "   start  spread     end    exit"
    )
    try:
        for agents in args.agents:
            walls: dict[str, list[float]] = {runtime: [] for runtime in args.runtime}
            for number in range(1, args.runs + 1):
                for runtime in args.runtime:
                    run = run_once(
                        scratch / f"{agents}-{number}-{runtime}",
                        agents,
                        command,
                        sleep,
                        args.files,
                        runtime,
                        args.settle,
                    )
                    walls[runtime].append(run.wall)
                    figure = run.wall / sleep if sleep else run.wall
                    print(
                        f"{runtime:>8} {agents:>6} {number:>4} {run.wall:>6.2f}s {figure:>10.2f}  "
                        f"{run.start:>5.2f}s {run.spread:>6.2f}s {run.end:>6.2f}s "
                        f"{run.exit:>6.2f}s",
                        flush=True,
                    )
            first = statistics.median(walls[args.runtime[0]])
            for runtime, times in walls.items():
                line = (
                    f"{runtime:>8} {agents:>6} agents: wall median {statistics.median(times):.2f}s"
                )
                line += f", best {min(times):.2f}s"
                if sleep:
                    ratios = [wall / sleep for wall in times]
                    line += (
                        f"; wall/sleep median {statistics.median(ratios):.2f}, "
                        f"best {min(ratios):.2f} (target under 1.5 for 50)"
                    )
                if runtime != args.runtime[0]:
                    line += f"; median {statistics.median(times) / first:.2f}x {args.runtime[0]}'s"
                print(line, flush=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
