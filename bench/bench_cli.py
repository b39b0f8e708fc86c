"""Agent-side command latency: `corral heartbeat` against `python3 -c pass`, same machine, same run.

The heartbeat goes to a real engine: a tiny plan whose one agent runs this measurement itself,
so the command travels the socket exactly as an agent's would. Target: under 2x.
Usage: python bench/bench_cli.py [--runs 30]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from scratch import make_repo, run_quietly

MEASURE = r"""
import os, statistics, subprocess, sys, time, json
runs = int(sys.argv[1])
corral = os.path.join(os.path.dirname(sys.executable), "corral")
def timed(argv):
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(argv, check=True)
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)
base = timed([sys.executable, "-c", "pass"])
beat = timed([corral, "heartbeat", "benchmark"])
print(json.dumps({"python": base, "heartbeat": beat}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=30)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp:
        repo = make_repo(Path(tmp) / "repo", {"f": "x\n"})
        script = Path(tmp) / "measure.py"
        script.write_text(MEASURE)
        plan = Path(tmp) / "plan.toml"
        plan.write_text(
            f'[[agent]]\nid = "measure"\ncommand = ["{sys.executable}", "{script}", "{args.runs}"]\n'
            'timeout = "10m"\n'
        )
        result = run_quietly(plan, repo)
        if result.returncode != 0:
            raise SystemExit(result.stdout + result.stderr)
        runs_dir = repo / ".git" / "corral" / "runs"
        log = next(runs_dir.glob("*/agents/measure/1/output.log")).read_text()
        figures = json.loads(log.strip().splitlines()[-1])
        ratio = figures["heartbeat"] / figures["python"]
        print(f"python3 -c pass      {figures['python'] * 1000:7.1f} ms (median of {args.runs})")
        print(
            f"corral heartbeat     {figures['heartbeat'] * 1000:7.1f} ms (median of {args.runs}, through a live engine)"
        )
        print(f"ratio                {ratio:7.2f}x (target under 2x)")


if __name__ == "__main__":
    main()
