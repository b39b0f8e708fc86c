"""A terminal agent that writes as fast as it can, and the engine meanwhile (issue 15 item 1).

    .venv/bin/python bench/bench_pty.py [--megabytes 50] [--runs 3] [--pipe]

Each run starts `corral run` on a plan with one `tty = true` agent running
`yes | head -c N` (`--pipe`: the same without a terminal, the agent writing its log itself,
for comparison) and a sibling `sleep`; while the flood lasts this process pings the engine on
its control socket, one request after another, as an agent's `corral heartbeat` would reach it.
It prints the throughput (bytes that reached output.log over the agent's run time, in MB/s)
and the engine's answer latency meanwhile (median, p99, max, in ms).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from scratch import make_repo

from corral.core.agent.client import ControlError, request
from corral.core.log.reader import read_log
from corral.core.runs.rundir import RunDir, list_runs


def plan_text(megabytes: int, tty: bool) -> str:
    flood = ["sh", "-c", f"yes | head -c {megabytes * 1_000_000}"]
    return (
        '[run]\nname = "bench-pty"\nkill_grace = "500ms"\nmin_success = 1\n\n'
        f'[[agent]]\nid = "flood"\nkind = "audit"\ncommand = {json.dumps(flood)}\n'
        f"tty = {json.dumps(tty)}\n\n"
        '[[agent]]\nid = "sibling"\nkind = "audit"\ncommand = ["sleep", "600"]\n'
    )


def wait_run(repo: Path) -> RunDir:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        runs = list_runs(repo / ".git")
        if runs and runs[0].socket.exists():
            return runs[0]
        time.sleep(0.01)
    raise SystemExit("the run did not start")


def flood_seconds(run: RunDir) -> float:
    started = finished = None
    for event in read_log(run.events).events:
        agent = getattr(event, "agent", None)
        if agent == "flood" and event.type == "agent_started":
            started = event.ts
        if agent == "flood" and event.type == "agent_finished":
            finished = event.ts
    if started is None or finished is None:
        raise SystemExit("the flood agent did not finish")
    return finished - started


def flood_ended(run: RunDir) -> bool:
    return any(
        getattr(e, "agent", None) == "flood" and e.type == "agent_finished"
        for e in read_log(run.events).events
    )


def one(megabytes: int, tty: bool) -> tuple[float, list[float]]:
    with tempfile.TemporaryDirectory() as scratch:
        repo = make_repo(Path(scratch) / "repo", {"README": "bench\n"})
        plan = Path(scratch) / "plan.toml"
        plan.write_text(plan_text(megabytes, tty))
        engine = subprocess.Popen(
            [sys.executable, "-m", "corral.core.cli", "run", str(plan), "--quiet"],
            cwd=repo,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            run = wait_run(repo)
            latencies: list[float] = []
            checks = 0
            while True:
                began = time.monotonic()
                try:
                    request(str(run.socket), {"op": "ping"}, timeout=30)
                except ControlError:
                    continue
                latencies.append((time.monotonic() - began) * 1000)
                checks += 1
                if checks % 20 == 0 and flood_ended(run):
                    break
            seconds = flood_seconds(run)
            size = run.output_log("flood", 1).stat().st_size
            request(str(run.socket), {"op": "kill", "agent": "sibling", "by": "bench"})
            engine.wait(timeout=60)
        finally:
            if engine.poll() is None:
                engine.kill()
    return size / 1e6 / seconds, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--pipe", action="store_true", help="no terminal: the baseline")
    args = parser.parse_args()
    mode = "pipe" if args.pipe else "tty"
    for number in range(1, args.runs + 1):
        rate, latencies = one(args.megabytes, not args.pipe)
        ordered = sorted(latencies)
        p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
        print(
            f"{mode} run {number}: {rate:7.1f} MB/s to output.log; engine answers "
            f"{len(ordered)} pings meanwhile: median {statistics.median(ordered):.1f} ms, "
            f"p99 {p99:.1f} ms, max {ordered[-1]:.1f} ms",
            flush=True,
        )


if __name__ == "__main__":
    main()
