"""MCP tool-call round trips through a live engine, beside `corral heartbeat` (docs/performance.md).

    .venv/bin/python bench/bench_mcp.py [--calls 300] [--dir DIR]

Starts a real run whose one agent measures, inside its attempt:
- `corral mcp agent` start-up: spawning the server until the MCP SDK's client has initialised;
- the `heartbeat` tool called through the SDK's stdio client (client -> server -> control socket
  -> engine, durable in the log -> back), and `lock_acquire` + `lock_release` as one pair;
- the same heartbeat sent straight on the socket (the relay's kept connection, no MCP), which is
  the floor the MCP layer adds to;
- `corral heartbeat`, the command an agent without MCP runs (a process per beat).
Target (issue 14): the tool call's p50 under 5 ms. Run it on the disk the runs live on (default:
bench/results/), not tmpfs, or the fsync costs nothing.
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


def figures(latencies: list[float]) -> dict[str, float]:
    values = sorted(latencies)

    def at(fraction: float) -> float:
        return values[min(len(values) - 1, round(fraction * (len(values) - 1)))]

    return {"n": len(values), "p50": at(0.5), "p99": at(0.99), "max": values[-1]}


async def through_mcp(calls: int) -> dict[str, Any]:
    from mcp import ClientSession, StdioServerParameters, stdio_client

    server = StdioServerParameters(
        command=sys.executable,
        args=["-m", "corral.core.cli", "mcp", "agent"],
        env=dict(os.environ),
    )
    started = time.perf_counter()
    async with stdio_client(server) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        startup = time.perf_counter() - started
        beats: list[float] = []
        pairs: list[float] = []
        for i in range(calls):
            now = time.perf_counter()
            result = await session.call_tool("heartbeat", {"message": f"beat {i}"})
            beats.append(time.perf_counter() - now)
            assert not result.is_error, result
        for _ in range(calls):
            now = time.perf_counter()
            got = await session.call_tool("lock_acquire", {"name": "bench", "ttl": 30, "wait": 5})
            assert got.structured_content is not None, got
            token = got.structured_content["token"]
            await session.call_tool("lock_release", {"name": "bench", "token": token})
            pairs.append(time.perf_counter() - now)
    return {"startup": startup, "heartbeat": figures(beats), "lock_pair": figures(pairs)}


def on_the_socket(calls: int) -> dict[str, float]:
    from corral.core.agent.lock_client import LockClient

    client = LockClient.from_env()
    latencies = []
    for i in range(calls):
        now = time.perf_counter()
        client.call("heartbeat", {"message": f"beat {i}"})
        latencies.append(time.perf_counter() - now)
    client.close()
    return figures(latencies)


def command_heartbeat(calls: int) -> dict[str, float]:
    argv = [sys.executable, "-m", "corral.core.entry", "heartbeat", "bench"]
    latencies = []
    for _ in range(calls):
        now = time.perf_counter()
        subprocess.run(argv, check=True)
        latencies.append(time.perf_counter() - now)
    return figures(latencies)


def agent(calls: int, out: Path) -> None:
    import anyio

    mcp = anyio.run(through_mcp, calls)
    rows = {
        **mcp,
        "socket_heartbeat": on_the_socket(calls),
        "corral_heartbeat": command_heartbeat(max(20, calls // 10)),
    }
    out.write_text(json.dumps(rows))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--dir", type=Path, default=HERE.parent / "results")
    parser.add_argument("--agent", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.agent:
        agent(args.calls, args.out)
        return
    args.dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="corral-bench-mcp-", dir=args.dir) as tmp:
        repo = make_repo(Path(tmp) / "repo", {"README.md": "bench\n"})
        out = Path(tmp) / "mcp.json"
        command = [sys.executable, str(HERE), "--agent", "--calls", str(args.calls)]
        plan = Path(tmp) / "plan.toml"
        plan.write_text(
            '[run]\nname = "bench-mcp"\n\n[[agent]]\nid = "bench"\n'
            f"command = {json.dumps([*command, '--out', str(out)])}\n"
        )
        result = run_quietly(plan, repo)
        if result.returncode != 0 or not out.exists():
            raise SystemExit(f"the bench run failed:\n{result.stdout}\n{result.stderr}")
        rows = json.loads(out.read_text())
    print(f"corral mcp agent start-up (spawn to initialised): {rows['startup'] * 1000:.0f} ms")
    print(f"{'round trip':<44} {'n':>5} {'p50':>9} {'p99':>9} {'max':>9}")
    for label, key in (
        ("heartbeat tool (MCP stdio, fsynced)", "heartbeat"),
        ("lock_acquire + lock_release tools (MCP)", "lock_pair"),
        ("heartbeat on the socket (no MCP, floor)", "socket_heartbeat"),
        ("corral heartbeat (a process per beat)", "corral_heartbeat"),
    ):
        row = rows[key]
        print(
            f"{label:<44} {row['n']:>5} {row['p50'] * 1e3:>7.2f}ms "
            f"{row['p99'] * 1e3:>7.2f}ms {row['max'] * 1e3:>7.1f}ms"
        )
    verdict = "met" if rows["heartbeat"]["p50"] < 0.005 else "NOT met"
    print(f"target p50 < 5 ms for a tool call: {verdict}")


if __name__ == "__main__":
    main()
