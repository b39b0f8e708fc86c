"""Lock round trips through a live engine, beside a bare filelock loop (docs/performance.md).

    .venv/bin/python bench/bench_locks.py [--seconds 3] [--clients 1 8] [--dir DIR]

Starts a real run whose one agent spawns N client processes; each loops acquire + release of one
lock through the control socket (LockClient, a kept-open connection) for the given seconds and
records every pair's latency. Each grant and release is durable in the event log before it is
answered (docs/reliability.md L2), so expect far fewer than the in-memory floor; group commit lets
several clients share an fsync. The floor is `filelock.FileLock` acquire + release by the same
number of processes on one file, in the same run of this script. Run it on the disk the runs live
on (default: bench/results/), not tmpfs, or the fsync costs nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from scratch import make_repo, run_quietly

HERE = Path(__file__).resolve()


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, round(fraction * (len(sorted_values) - 1)))
    return sorted_values[index]


# -- the processes that do the work ------------------------------------------------------------


def corral_client(seconds: float, start_at: float, out: Path) -> None:
    """One agent-side process: acquire + release through the engine until time is up."""
    from corral.core.agent.lock_client import LockClient

    locks = LockClient.from_env()
    locks.list()  # connect before the clock starts
    latencies: list[float] = []
    while time.time() < start_at:
        time.sleep(0.001)
    end = time.perf_counter() + seconds
    while (now := time.perf_counter()) < end:
        lease = locks.acquire("bench", ttl=30, wait=60)
        locks.release(lease)
        latencies.append(time.perf_counter() - now)
    out.write_text(json.dumps(latencies))


def filelock_client(path: Path, seconds: float, start_at: float, out: Path) -> None:
    import filelock

    lock = filelock.FileLock(path)
    latencies: list[float] = []
    while time.time() < start_at:
        time.sleep(0.001)
    end = time.perf_counter() + seconds
    while (now := time.perf_counter()) < end:
        lock.acquire()
        lock.release()
        latencies.append(time.perf_counter() - now)
    out.write_text(json.dumps(latencies))


def fan_out(mode: list[str], clients: int, seconds: float, workdir: Path) -> dict[str, Any]:
    """Run `clients` processes of this script in `mode` together; their pooled figures."""
    start_at = time.time() + 0.5 + 0.05 * clients
    outs = [workdir / f"{mode[0]}-{clients}-{i}.json" for i in range(clients)]
    argv = [sys.executable, str(HERE), *mode, "--seconds", str(seconds), "--start-at"]
    procs = [subprocess.Popen([*argv, str(start_at), "--out", str(out)]) for out in outs]
    for proc in procs:
        if proc.wait() != 0:
            raise SystemExit(f"a {mode[0]} client failed ({proc.returncode})")
    latencies = sorted(x for out in outs for x in json.loads(out.read_text()))
    return {
        "clients": clients,
        "ops": len(latencies),
        "per_second": len(latencies) / seconds,
        "p50": percentile(latencies, 0.50),
        "p99": percentile(latencies, 0.99),
        "max": latencies[-1] if latencies else float("nan"),
    }


def corral_agent(clients: list[int], seconds: float, out: Path) -> None:
    """The agent of the bench run: each client count in turn, pooled into `out`."""
    work = Path(os.environ["CORRAL_OUTPUT"])
    rows = [fan_out(["--corral-client"], n, seconds, work) for n in clients]
    out.write_text(json.dumps(rows))


# -- the driver --------------------------------------------------------------------------------


def through_engine(clients: list[int], seconds: float, base: Path) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="corral-bench-locks-", dir=base) as tmp:
        repo = Path(tmp) / "repo"
        make_repo(repo, {"README.md": "bench\n"})
        out = Path(tmp) / "corral.json"
        command = [sys.executable, str(HERE), "--agent", "--seconds", str(seconds)]
        command += ["--clients", *map(str, clients), "--out", str(out)]
        plan = Path(tmp) / "plan.toml"
        plan.write_text(
            '[run]\nname = "bench-locks"\n\n[[agent]]\nid = "bench"\n'
            f"command = {json.dumps(command)}\n"
        )
        result = run_quietly(plan, repo)
        if result.returncode != 0 or not out.exists():
            raise SystemExit(f"the bench run failed:\n{result.stdout}\n{result.stderr}")
        rows: list[dict[str, Any]] = json.loads(out.read_text())
        return rows


def in_process(seconds: float, base: Path) -> dict[str, Any]:
    """The same pairs against the lock manager in this process: the log's fsync, no socket."""
    import asyncio

    from corral.core.locks.manager import LockManager
    from corral.core.locks.shared_files import make_shared_dir, shared_dir
    from corral.core.log import EventWriter
    from corral.core.log.state import RunState, apply

    async def loop(directory: Path) -> list[float]:
        writer, _ = await EventWriter.open(directory / "events.jsonl")
        state = RunState()
        writer.add_listener(lambda event: apply(state, event))
        make_shared_dir(directory)
        locks = LockManager(writer.append_many, state, grace=1.0, shared_root=shared_dir(directory))
        latencies: list[float] = []
        end = time.perf_counter() + seconds
        while (now := time.perf_counter()) < end:
            lease = await locks.acquire("a", 1, "bench", f"r{len(latencies)}", ttl=30, wait=0)
            await locks.release("a", 1, "bench", lease.token)
            latencies.append(time.perf_counter() - now)
        await locks.close()
        await writer.close()
        return sorted(latencies)

    with tempfile.TemporaryDirectory(prefix="corral-bench-manager-", dir=base) as tmp:
        latencies = asyncio.run(loop(Path(tmp)))
    return {
        "clients": 1,
        "ops": len(latencies),
        "per_second": len(latencies) / seconds,
        "p50": percentile(latencies, 0.50),
        "p99": percentile(latencies, 0.99),
        "max": latencies[-1],
    }


def floor(clients: list[int], seconds: float, base: Path) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="corral-bench-filelock-", dir=base) as tmp:
        lock = Path(tmp) / "bench.lock"
        return [fan_out(["--filelock", str(lock)], n, seconds, Path(tmp)) for n in clients]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--dir", type=Path, default=HERE.parent / "results")
    parser.add_argument("--agent", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--corral-client", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--filelock", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--start-at", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.corral_client:
        return corral_client(args.seconds, args.start_at, args.out)
    if args.filelock:
        return filelock_client(args.filelock, args.seconds, args.start_at, args.out)
    if args.agent:
        return corral_agent(args.clients, args.seconds, args.out)
    args.dir.mkdir(parents=True, exist_ok=True)
    engine = through_engine(args.clients, args.seconds, args.dir)
    manager = in_process(args.seconds, args.dir)
    bare = floor(args.clients, args.seconds, args.dir)
    print(f"{'method':<34} {'clients':>7} {'pairs/s':>9} {'p50':>9} {'p99':>9} {'max':>9}")
    for label, rows in (
        ("corral lock (socket, fsynced)", engine),
        ("lock manager in-process (fsynced)", [manager]),
        ("filelock.FileLock (the floor)", bare),
    ):
        for row in rows:
            print(
                f"{label:<34} {row['clients']:>7} {row['per_second']:>9.0f} "
                f"{row['p50'] * 1e6:>7.0f}us {row['p99'] * 1e6:>7.0f}us "
                f"{row['max'] * 1e3:>7.1f}ms"
            )
    for ours, theirs in zip(engine, bare, strict=True):
        print(
            f"ratio corral/filelock at {ours['clients']} client(s): "
            f"{ours['per_second'] / theirs['per_second']:.2f}x throughput, "
            f"p50 {ours['p50'] / theirs['p50']:.1f}x, p99 {ours['p99'] / theirs['p99']:.2f}x"
        )
    return None


if __name__ == "__main__":
    main()
