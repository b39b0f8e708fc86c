"""Console benchmark: does the console keep up with a busy run, and how fast does it open a big one?

    .venv/bin/python bench/bench_console.py [--seconds 20] [--rate 500] [--agents 100]
                                            [--startup-events 100000] [--no-tmux] [--streams]

`--streams`: the traffic is instead preset agents streaming at their natural rate, one
`agent_activity` (tokens, cost, two tool calls, a message) a second per agent, as the engine
coalesces a CLI's stream (issue 13: 20 agents).

1. Keeping up: a writer process appends to a run's log with core.eventlog.EventWriter (group
   commit, fsync), as the engine would: every agent heartbeats once a second (with progress and
   a message) and output heartbeats and lock grants/releases fill the rest up to `--rate` events
   a second. The console runs headless in this process (`App.run_test`) attached to the run.
   For every event: delay from its `ts` (set when the writer made it, just before the append)
   to the moment the console applied it to its state, and to the moment the dashboard's
   bounded-rate redraw drew it. CPU: this process's CPU time (all threads: the follower thread
   and the UI loop) over the wall time, as a share of one core.
2. Opening a big run: a log of `--startup-events` events; time from starting `corral tui RUN`
   to the first full dashboard, in tmux (the real thing: process start, imports, replay, first
   paint, read back with capture-pane), and headless in-process (the fold through the run's
   checkpoint, core/runs/index.py, and the first draw; the first of the three opens writes the
   checkpoint, which the log written here has none of yet).

The machines are noisy (2 cores shared with the writer); compare rows of one run.

`--before SRC --rounds N`: only the keeping-up part, N rounds, each running the console of this
tree and of SRC (e.g. `git worktree add /work/wt/perf-base HEAD`) in a fresh process, in
alternating order; it prints each run, the medians of both and the load average.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from corral.core.log import EventWriter
from corral.core.log import events as ev
from corral.core.runs.rundir import RunDir, runs_root
from corral.core.runtime.procfs import process_start_time
from corral.tui.app import CorralApp
from corral.tui.screens.dashboard import DashboardScreen

RUN_ID = "20240101-000000-bench0"


def make_repo(root: Path) -> Path:
    repo = root / "repo"
    repo.mkdir(parents=True)
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    return repo


def header(agents: int, engine_pid: int) -> list[ev.EventBase]:
    start = process_start_time(engine_pid) or 0.0
    engine = ev.EngineInfo(pid=engine_pid, start_time=start, host="bench", user="bench")
    summaries = [
        ev.AgentSummary(id=f"agent-{n:03d}", kind="coding", command=["work"], heartbeat_timeout=60)
        for n in range(agents)
    ]
    out: list[ev.EventBase] = [
        ev.RunStarted(
            run_id=RUN_ID,
            name="bench",
            repo="/nonexistent",
            base_ref="main",
            snapshot="0" * 40,
            plan_sha256="0" * 64,
            agents=summaries,
            max_parallel=agents,
            required_successes=agents,
            worktree_root="/nonexistent",
            engine=engine,
        )
    ]
    for n, summary in enumerate(summaries):
        out.append(
            ev.AgentStarting(
                agent=summary.id,
                attempt=1,
                workspace=f"/wt/{summary.id}",
                branch=f"corral/b/{summary.id}",
                output_dir="/out",
                log_path="/out/log",
            )
        )
        out.append(ev.AgentStarted(agent=summary.id, attempt=1, pid=10_000 + n, proc_start_time=0))
    return out


def stream_traffic(agents: int, second: int, rate: int) -> list[ev.EventBase]:
    """One second of preset agents streaming at their natural rate: the engine coalesces an
    agent CLI's stream into at most one `agent_activity` a second, with a tool call or two."""
    del rate
    return [
        ev.AgentActivity(
            agent=f"agent-{n:03d}",
            attempt=1,
            model="claude-sonnet-4-5",
            tokens_in=(second + 1) * 12_000,
            tokens_out=(second + 1) * 300,
            cost_usd=round((second + 1) * 0.04, 6),
            cost_source="cli",
            turns=second + 1,
            tool_calls=2 * (second + 1),
            tools=[
                ev.ToolUse(name="Read", summary=f"inventory/module_{second % 7}.py"),
                ev.ToolUse(name="Edit", summary=f"inventory/module_{second % 7}.py"),
            ],
            message=f"step {second}: editing the module",
        )
        for n in range(agents)
    ]


def traffic(agents: int, second: int, rate: int) -> list[ev.EventBase]:
    """One second of events: a beat per agent, lock churn, output heartbeats for the rest."""
    out: list[ev.EventBase] = []
    for n in range(agents):
        out.append(
            ev.AgentHeartbeat(
                agent=f"agent-{n:03d}",
                attempt=1,
                source="beat",
                progress=(second % 100) / 100,
                message=f"step {second}",
            )
        )
    for n in range(min(25, rate // 20)):
        agent = f"agent-{(n * 7 + second) % agents:03d}"
        token = second * 100 + n + 1
        out.append(
            ev.LockAcquired(
                lock=f"res-{n}",
                agent=agent,
                attempt=1,
                request_id=f"{token}",
                token=token,
                ttl=30,
                expires_at=time.time() + 30,
            )
        )
        out.append(ev.LockReleased(lock=f"res-{n}", token=token, agent=agent))
    n = 0
    while len(out) < rate:
        out.append(ev.AgentHeartbeat(agent=f"agent-{n % agents:03d}", attempt=1, source="output"))
        n += 1
    return out


def writer(
    path: str,
    agents: int,
    rate: int,
    seconds: float,
    ready: multiprocessing.synchronize.Event,
    streams: bool = False,
) -> None:
    """Append `rate` events a second in 100 slices of 10 ms, with `ts` set just before each append."""

    async def run() -> None:
        log, _ = await EventWriter.open(Path(path))
        ready.wait()
        start = time.monotonic()
        second = 0
        while time.monotonic() - start < seconds:
            batch = (stream_traffic if streams else traffic)(agents, second, rate)
            slices = 100
            for index in range(slices):
                due = start + second + index / slices
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                part = batch[index * len(batch) // slices : (index + 1) * len(batch) // slices]
                now = time.time()
                for event in part:
                    event.ts = now
                await log.append_many(part)
            second += 1
        await log.close()

    asyncio.run(run())


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def keep_up(
    root: Path, agents: int, rate: int, seconds: float, streams: bool = False
) -> dict[str, float]:
    repo = make_repo(root / "live")
    rundir = RunDir(runs_root(repo / ".git") / RUN_ID)
    rundir.create()

    async def prepare() -> None:
        log, _ = await EventWriter.open(rundir.events)
        await log.append_many(header(agents, os.getpid()))
        await log.close()

    asyncio.run(prepare())
    ready = multiprocessing.get_context("spawn").Event()
    proc = multiprocessing.get_context("spawn").Process(
        target=writer, args=(str(rundir.events), agents, rate, seconds, ready, streams)
    )
    proc.start()
    applied: list[float] = []
    drawn: list[float] = []
    pending: list[tuple[int, list[float]]] = []
    counted = 0

    async def console() -> tuple[float, float]:
        nonlocal counted
        app = CorralApp(repo, RUN_ID)

        def on_batch(batch: list[ev.Event]) -> None:
            nonlocal counted
            now = time.time()
            session = app.session
            assert session is not None
            assert session.feed is not None
            stamps = [event.ts for event in batch]
            applied.extend(now - ts for ts in stamps)
            pending.append((session.feed.version, stamps))
            counted += len(batch)

        def on_drawn(screen: object, version: int) -> None:
            if not isinstance(screen, DashboardScreen):
                return
            now = time.time()
            while pending and pending[0][0] <= version:
                drawn.extend(now - ts for ts in pending.pop(0)[1])

        app.batch_hook = on_batch
        async with app.run_test(size=(160, 48)) as pilot:
            while app.session is None or app.session.feed is None:
                await pilot.pause(0.05)
            app.session.on_drawn = on_drawn
            await pilot.pause(0.5)
            cpu0 = resource.getrusage(resource.RUSAGE_SELF)
            wall0 = time.monotonic()
            ready.set()
            await asyncio.to_thread(proc.join)
            await asyncio.sleep(1.0)
            cpu1 = resource.getrusage(resource.RUSAGE_SELF)
            wall = time.monotonic() - wall0
            cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
            return cpu, wall

    cpu, wall = asyncio.run(console())
    proc.join()
    return {
        "events": counted,
        "rate": counted / max(wall - 1.0, 1e-9),
        "applied_p50": statistics.median(applied) * 1000,
        "applied_p99": percentile(applied, 0.99) * 1000,
        "drawn_p50": statistics.median(drawn) * 1000 if drawn else float("nan"),
        "drawn_p99": percentile(drawn, 0.99) * 1000 if drawn else float("nan"),
        "cpu_share": cpu / wall,
    }


def big_log(root: Path, agents: int, total: int) -> Path:
    repo = make_repo(root / "big")
    rundir = RunDir(runs_root(repo / ".git") / RUN_ID)
    rundir.create()

    async def write() -> None:
        log, _ = await EventWriter.open(rundir.events)
        chunk = header(agents, os.getpid())
        written, second = 0, 0
        while written < total:
            while len(chunk) < 20_000 and written + len(chunk) < total:
                chunk += traffic(agents, second, 500)
                second += 1
            chunk = chunk[: total - written]
            await log.append_many(chunk)
            written += len(chunk)
            chunk = []
        await log.close()

    asyncio.run(write())
    return repo


def startup_headless(repo: Path) -> float:
    async def run() -> float:
        start = time.monotonic()
        app = CorralApp(repo, RUN_ID)
        async with app.run_test(size=(160, 48)) as pilot:
            while not (isinstance(app.screen, DashboardScreen) and app.screen.draws > 0):
                await pilot.pause(0.01)
            return time.monotonic() - start

    return asyncio.run(run())


def startup_tmux(repo: Path, attempt: int) -> float:
    socket = f"corral-bench-{os.getpid()}-{attempt}"
    command = f"cd {shlex.quote(str(repo))} && exec {shlex.quote(sys.executable)} -m corral.core.cli tui {RUN_ID}"
    start = time.monotonic()
    subprocess.run(
        ["tmux", "-L", socket, "new-session", "-d", "-s", "b", "-x", "160", "-y", "48", command],
        check=True,
    )
    try:
        while True:
            shown = subprocess.run(
                ["tmux", "-L", socket, "capture-pane", "-p", "-t", "b"],
                capture_output=True,
                text=True,
                check=False,
            ).stdout
            if "agent-000" in shown and "1 agents 100" in shown and "4 events" in shown:
                return time.monotonic() - start
            if time.monotonic() - start > 120:
                raise RuntimeError("the console did not show the dashboard in 120s:\n" + shown)
            time.sleep(0.01)
    finally:
        subprocess.run(["tmux", "-L", socket, "kill-server"], capture_output=True, check=False)


HERE = Path(__file__).resolve().parent
KEEP_UP = ("cpu_share", "applied_p50", "applied_p99", "drawn_p50", "drawn_p99", "rate")


def keep_up_in(source: Path, args: argparse.Namespace) -> dict[str, float]:
    """One keeping-up run in a fresh process whose `corral` is the one of `source`."""
    done = subprocess.run(
        [sys.executable, __file__, "--child-keep-up", "--seconds", str(args.seconds)]
        + ["--rate", str(args.rate), "--agents", str(args.agents), "--dir", str(args.dir)]
        + (["--streams"] if args.streams else []),
        env={**os.environ, "PYTHONPATH": str(source)},
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the console of {source} failed:\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def compare(args: argparse.Namespace) -> None:
    """This tree against `--before`, alternating, each round in fresh processes."""
    trees = {"after": HERE.parent, "before": args.before.resolve()}
    found: dict[str, list[dict[str, float]]] = {"after": [], "before": []}
    loads: list[float] = []
    for round_ in range(args.rounds):
        order = ["before", "after"] if round_ % 2 == 0 else ["after", "before"]
        for label in order:
            loads.append(os.getloadavg()[0])
            result = keep_up_in(trees[label], args)
            found[label].append(result)
            shown = "  ".join(f"{key} {result[key]:.3g}" for key in KEEP_UP)
            print(f"round {round_ + 1} {label:<6} load {loads[-1]:.2f}  {shown}", flush=True)
    asked = "streaming agents" if args.streams else f"{args.rate} events/s"
    print(
        f"\nconsole: {args.agents} agents, {asked}, {args.seconds:.0f}s, "
        f"{args.rounds} rounds; load average (1 min) median {statistics.median(loads):.2f}, "
        f"{min(loads):.2f}-{max(loads):.2f}\n"
    )
    print(f"{'median of the rounds':<36} {'before':>10} {'after':>10}")
    for key, label, scale in (
        ("cpu_share", "console CPU, % of one core", 100),
        ("applied_p50", "append -> applied, median (ms)", 1),
        ("applied_p99", "append -> applied, p99 (ms)", 1),
        ("drawn_p50", "append -> drawn, median (ms)", 1),
        ("drawn_p99", "append -> drawn, p99 (ms)", 1),
    ):
        before = statistics.median(r[key] for r in found["before"]) * scale
        after = statistics.median(r[key] for r in found["after"]) * scale
        print(f"{label:<36} {before:>10.1f} {after:>10.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--agents", type=int, default=100)
    parser.add_argument("--startup-events", type=int, default=100_000)
    parser.add_argument("--no-tmux", action="store_true")
    parser.add_argument(
        "--streams",
        action="store_true",
        help="preset agents streaming at their natural rate: one agent_activity a second each",
    )
    parser.add_argument("--dir", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--before", type=Path, help="a source tree to compare keeping up with")
    parser.add_argument("--rounds", type=int, default=3, help="with --before")
    parser.add_argument("--child-keep-up", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    if args.before is not None:
        compare(args)
        return
    if args.child_keep_up:
        with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
            result = keep_up(Path(tmp), args.agents, args.rate, args.seconds, args.streams)
        print(json.dumps(result))
        return
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        root = Path(tmp)
        live = keep_up(root, args.agents, args.rate, args.seconds, args.streams)
        repo = big_log(root, args.agents, args.startup_events)
        headless = [startup_headless(repo) for _ in range(3)]
        real = (
            []
            if args.no_tmux or shutil.which("tmux") is None
            else [startup_tmux(repo, n) for n in range(3)]
        )
    asked = "streaming agents" if args.streams else f"{args.rate} events/s asked"
    print(f"\nconsole: {args.agents} agents, {asked} for {args.seconds:.0f}s\n")
    print(f"{'measure':<52} {'value':>12}")
    print("-" * 65)
    print(f"{'events followed':<52} {live['events']:>12.0f}")
    print(f"{'events per second seen':<52} {live['rate']:>12.0f}")
    print(f"{'append -> applied to state, median (ms)':<52} {live['applied_p50']:>12.1f}")
    print(f"{'append -> applied to state, p99 (ms)':<52} {live['applied_p99']:>12.1f}")
    print(f"{'append -> drawn on the dashboard, median (ms)':<52} {live['drawn_p50']:>12.1f}")
    print(f"{'append -> drawn on the dashboard, p99 (ms)':<52} {live['drawn_p99']:>12.1f}")
    print(f"{'console CPU, share of one core':<52} {live['cpu_share']:>11.0%}")
    opened = f"open a {args.startup_events:,}-event run, headless (s, median of 3)"
    print(f"{opened:<52} {statistics.median(headless):>12.2f}")
    if real:
        shown = "`corral tui RUN` -> full screen in tmux (s, median of 3)"
        print(f"{shown:<52} {statistics.median(real):>12.2f}")


if __name__ == "__main__":
    main()
