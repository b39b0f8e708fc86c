"""Opening a large run: the first full console screen and its peak memory, with and without
the run's checkpoint (core/runs/index.py).

    .venv/bin/python bench/bench_checkpoint.py [--events 100000 1000000] [--tail 1000]
                                               [--before SRC] [--dir DIR] [--runs 3]

For each size, a run of that many events (100 agents: heartbeats, output heartbeats and lock
churn, as bench/bench_console.py's writer makes them, through the real EventWriter) is opened
in a fresh process per measure, which prints its wall time from its own start (imports
included) and its peak RSS:

- `replay`: what the console did before checkpoints: the whole log read (`LogFollower.replay`)
  and every event applied to the console's feed;
- `cold`: `open_run` with no checkpoint yet: a streamed full replay, which writes one;
- `status` and `open`: `corral status`'s fold and the console's `open_run` from the checkpoint,
  with `--tail` events appended after it (the prefix digest, the anchor, the tail);
- `screen`: the real console (`CorralApp`, headless, 160x48) until the dashboard has drawn,
  from the checkpoint and that tail.

`--before SRC` also runs `screen` with the corral of another source tree (e.g. a `git archive`
of the commit before checkpoints) on the same run, with no checkpoint to find.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_STARTED = time.monotonic()
HERE = Path(__file__).resolve().parent
MODES = ("replay", "cold", "status", "open", "screen")


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM: ru_maxrss would count the parent's, inherited
    through fork and exec)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(mode: str, repo: Path, run_id: str) -> None:
    """One measure in this fresh process; prints {"seconds", "rss_mb", "app_seconds"} as JSON:
    seconds from the process's start (imports included), and for `screen` from the app's
    creation (imports done, as bench_console.py measures it)."""
    app_seconds = 0.0
    from corral.core.runs.rundir import RunDir, runs_root

    rundir = RunDir(runs_root(repo / ".git") / run_id)
    if mode == "replay":
        from corral.core.log import LogFollower
        from corral.tui.feed import RunFeed

        follower, contents = LogFollower.replay(rundir.events)
        feed = RunFeed()
        feed.apply(contents.events)
        follower.close()
    elif mode in ("cold", "open"):
        from corral.core.operator.reading import open_run
        from corral.tui.feed import RunFeed

        opened = open_run(rundir)
        feed = RunFeed()
        feed.restore(opened.state, opened.recent, opened.first)
        opened.follower.close()
    elif mode == "status":
        from corral.core.operator.reading import status

        status(rundir)
    else:
        from corral.tui.app import CorralApp
        from corral.tui.screens.dashboard import DashboardScreen

        async def draw() -> float:
            created = time.monotonic()
            app = CorralApp(repo, run_id)
            async with app.run_test(size=(160, 48)) as pilot:
                while not (isinstance(app.screen, DashboardScreen) and app.screen.draws > 0):
                    await pilot.pause(0.01)
                return time.monotonic() - created

        app_seconds = asyncio.run(draw())
    seconds = time.monotonic() - _STARTED
    found = {"seconds": seconds, "rss_mb": peak_rss_mb(), "app_seconds": app_seconds}
    print(json.dumps(found), flush=True)
    os._exit(0)  # the measure is taken; skip the teardown


def measure(mode: str, repo: Path, run_id: str, source: Path) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(source)}
    done = subprocess.run(
        [sys.executable, __file__, "--child", mode, str(repo), run_id],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{mode} failed:\n{done.stderr[-3000:]}")
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def make_run(root: Path, events: int) -> tuple[Path, str]:
    """A git repository with one run of `events` events (bench_console's traffic)."""
    from bench_console import RUN_ID, header, make_repo, traffic

    from corral.core.log import EventWriter
    from corral.core.runs.rundir import RunDir, runs_root

    repo = make_repo(root / f"run-{events}")
    rundir = RunDir(runs_root(repo / ".git") / RUN_ID)
    rundir.create()

    async def write() -> None:
        log, _ = await EventWriter.open(rundir.events)
        await log.append_many(header(100, 2**22 - 7))  # an engine that is gone
        written, second = log.last_seq, 0
        while written < events:
            chunk: list[object] = []
            while len(chunk) < 20_000:
                chunk += traffic(100, second, 500)
                second += 1
            batch = chunk[: events - written]
            await log.append_many(batch)  # type: ignore[arg-type]
            written += len(batch)
        await log.close()

    asyncio.run(write())
    return repo, RUN_ID


def append_tail(repo: Path, run_id: str, count: int) -> None:
    from bench_console import traffic

    from corral.core.log import EventWriter
    from corral.core.runs.rundir import RunDir, runs_root

    rundir = RunDir(runs_root(repo / ".git") / run_id)

    async def write() -> None:
        log, _ = await EventWriter.open(rundir.events)
        await log.append_many(traffic(100, 10**6, count))
        await log.close()

    asyncio.run(write())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--tail", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--before", type=Path, help="a source tree to compare `screen` with")
    parser.add_argument("--dir", type=Path, default=HERE / "results")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        mode, repo, run_id = args.child
        child(mode, Path(repo), run_id)
        return
    source = HERE.parent
    args.dir.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, str, float, float, float, float]] = []
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        for events in args.events:
            started = time.monotonic()
            repo, run_id = make_run(Path(tmp), events)
            log = runs_log(repo, run_id)
            size_mb = log.stat().st_size / 2**20
            print(f"{events:,} events written in {time.monotonic() - started:.0f}s", flush=True)
            label = f"{events:,} ({size_mb:.0f} MiB)"
            if args.before is not None:
                found = [measure("screen", repo, run_id, args.before) for _ in range(args.runs)]
                rows.append((label, "screen, before (--before tree)", *summary(found), size_mb))
            found = [measure("replay", repo, run_id, source) for _ in range(args.runs)]
            rows.append((label, "replay (the console before)", *summary(found), size_mb))
            found = [measure("cold", repo, run_id, source)]  # writes the checkpoint
            rows.append((label, "cold: no checkpoint yet", *summary(found), size_mb))
            written = log.parent / "checkpoint.json"
            print(f"checkpoint.json: {written.stat().st_size / 1024:.0f} KiB", flush=True)
            append_tail(repo, run_id, args.tail)
            for mode in ("status", "open", "screen"):
                found = [measure(mode, repo, run_id, source) for _ in range(args.runs)]
                rows.append(
                    (label, f"{mode}, checkpoint + {args.tail} events", *summary(found), size_mb)
                )
    print(
        f"\n{'run':<22} {'measure':<36} {'seconds':>8} {'in app':>7} {'peak RSS':>9} {'/ log':>6}"
    )
    print("-" * 93)
    for label, what, seconds, in_app, rss, size_mb in rows:
        app = f"{in_app:>7.2f}" if in_app else f"{'':>7}"
        print(f"{label:<22} {what:<36} {seconds:>8.2f} {app} {rss:>7.0f}MB {rss / size_mb:>6.2f}")


def runs_log(repo: Path, run_id: str) -> Path:
    from corral.core.runs.rundir import RunDir, runs_root

    return RunDir(runs_root(repo / ".git") / run_id).events


def summary(found: list[dict[str, float]]) -> tuple[float, float, float]:
    """Median seconds (from the process's start, from the app's), the largest peak RSS (MB)."""
    return (
        statistics.median(r["seconds"] for r in found),
        statistics.median(r["app_seconds"] for r in found),
        max(r["rss_mb"] for r in found),
    )


if __name__ == "__main__":
    main()
