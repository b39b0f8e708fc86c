"""The `ssh` runtime against `local`: per-attempt overhead, bundle shipping, heartbeat round trip.

    .venv/bin/python bench/bench_ssh.py [--agents 50] [--slots 8] [--files 2000] [--beats 100]

Two real sshd "hosts" on 127.0.0.1 (tests/core/remote/sshd.py), so the figures are corral's
and sshd's costs without a network's latency:

- `overhead`: `--agents` agents running `sleep 2`, spread over the two hosts (`--slots` each)
  and, for comparison, the same plan with `local` (max_parallel = 2 x slots): the run's wall
  time, and per attempt (its `agent_starting` to its `agent_finished`, minus the 2 s) the
  median and p95;
- `bundle`: a `--files`-file repository's snapshot shipped to a host the first time (the whole
  history) and after one more commit changing 10 files (only the new objects): bytes, seconds;
- `heartbeat`: `--beats` heartbeats (`core/agent/client.py heartbeat`, a connection each, as
  `corral heartbeat` makes them) from one agent, through the forwarded socket on a host and
  straight on the engine's host: median and p95 of the round trip.

Each command the runtime runs on a host opens a channel, and sshd starts the login's shell for
it: on a host whose shell start-up files are slow (this machine's root `.bashrc` runs
`pyenv init`, about 0.25 s) that cost is in every figure; the `true` round trip printed first
says how much it is.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from corral.core.log import events as ev  # noqa: E402
from corral.core.log import read_log  # noqa: E402
from corral.core.plan.hosts import HostSpec  # noqa: E402
from corral.core.remote.connection import HostConnection  # noqa: E402
from corral.core.remote.scripts import repo_dir  # noqa: E402
from corral.core.remote.shipping import ship_snapshot  # noqa: E402
from corral.core.runs.rundir import list_runs  # noqa: E402
from tests.core.remote.sshd import Host, make_host  # noqa: E402

GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@corral.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@corral.invalid",
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
}
ENV = {**os.environ, **GIT_ENV, "PYTHONPATH": str(HERE.parent)}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True, env=ENV
    ).stdout.strip()


def make_repo(path: Path, files: int) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    for i in range(files):
        target = path / f"src/d{i % 50}/f{i}.py"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(f"# file {i}\n" + "x = 1\n" * (i % 40 + 5))
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "initial")
    return path


def host_tables(hosts: tuple[Host, Host], slots: int) -> str:
    text = ""
    for host in hosts:
        text += "[[host]]\n" + "".join(
            f"{key} = {json.dumps(value)}\n" for key, value in host.spec(slots).items()
        )
    return text


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def run_plan(repo: Path, plan: Path) -> float:
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "corral.core.cli", "run", str(plan), "--quiet"],
        cwd=repo,
        env=ENV,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"the run failed:\n{done.stdout}\n{done.stderr}")
    return time.monotonic() - started


def latest_events(repo: Path) -> list[ev.Event]:
    runs = list_runs(repo / ".git")
    newest = max(runs, key=lambda r: r.run_id)
    return read_log(newest.events).events


def overhead(root: Path, hosts: tuple[Host, Host], agents: int, slots: int) -> None:
    for runtime in ("local", "ssh"):
        repo = make_repo(root / f"overhead-{runtime}", 20)
        body = "".join(
            f'[[agent]]\nid = "s{i}"\nkind = "audit"\ncommand = ["sleep", "2"]\n'
            for i in range(agents)
        )
        header = f'[run]\nname = "bench"\nruntime = "{runtime}"\nmax_parallel = {2 * slots}\n'
        header += 'min_success = "0%"\n'
        tables = host_tables(hosts, slots) if runtime == "ssh" else ""
        plan = root / f"plan-{runtime}.toml"
        plan.write_text(header + tables + body)
        wall = run_plan(repo, plan)
        events = latest_events(repo)
        starting = {e.agent: e.ts for e in events if isinstance(e, ev.AgentStarting)}
        started = {e.agent: e.ts for e in events if isinstance(e, ev.AgentStarted)}
        finished = {e.agent: e.ts for e in events if isinstance(e, ev.AgentFinished)}
        extra = [finished[a] - starting[a] - 2.0 for a in finished if a in starting]
        start = [started[a] - starting[a] for a in started if a in starting]
        end = [finished[a] - started[a] - 2.0 for a in finished if a in started]
        print(
            f"overhead {runtime:<5} {agents} x sleep 2: wall {wall:.1f}s; per attempt over the "
            f"2 s: median {statistics.median(extra):.2f}s, p95 {percentile(extra, 0.95):.2f}s "
            f"(to start: median {statistics.median(start):.2f}s; start to end over the 2 s: "
            f"median {statistics.median(end):.2f}s)"
        )


async def bundle(root: Path, host: Host, files: int) -> None:
    repo = make_repo(root / "bundle", files)
    spec = HostSpec(**host.spec(4))  # type: ignore[arg-type]
    connection = HostConnection(spec)
    where = repo_dir(spec.workdir, "bench-bundle")
    try:
        latency = [await connection.check() for _ in range(5)]
        print(f"host round trip of `true`: median {statistics.median(latency) * 1000:.0f} ms")
        first_commit = git(repo, "rev-parse", "HEAD")
        started = time.monotonic()
        first = await ship_snapshot(connection, repo, first_commit, where)
        first_s = time.monotonic() - started
        for i in range(10):
            path = repo / f"src/d{i}/f{i}.py"
            path.write_text(path.read_text() + "y = 2\n")
        git(repo, "commit", "-q", "-am", "ten files")
        second_commit = git(repo, "rev-parse", "HEAD")
        started = time.monotonic()
        second = await ship_snapshot(connection, repo, second_commit, where)
        second_s = time.monotonic() - started
        started = time.monotonic()
        again = await ship_snapshot(connection, repo, second_commit, where)
        again_s = time.monotonic() - started
    finally:
        connection.close()
    print(f"bundle {files} files, first: {first.bytes / 1024:.0f} KiB in {first_s:.2f}s")
    print(
        f"bundle incremental (10 files changed): {second.bytes / 1024:.1f} KiB in "
        f"{second_s:.2f}s; already there: {again.bytes} bytes in {again_s:.2f}s"
    )


BEATS = """
import json, os, sys, time
from corral.core.agent.client import heartbeat
took = []
for _ in range(int(sys.argv[1])):
    started = time.perf_counter()
    heartbeat()
    took.append(time.perf_counter() - started)
with open(os.path.join(os.environ["CORRAL_OUTPUT"], "beats.json"), "w") as out:
    json.dump(took, out)
"""


def heartbeats(root: Path, hosts: tuple[Host, Host], beats: int) -> None:
    for runtime in ("local", "ssh"):
        repo = make_repo(root / f"beats-{runtime}", 5)
        python = sys.executable if runtime == "local" else "python3"
        env = f'env = {{ PYTHONPATH = "{HERE.parent}" }}\n' if runtime == "local" else ""
        body = f'[[agent]]\nid = "b"\nkind = "audit"\ncommand = {json.dumps([python, "-c", BEATS, str(beats)])}\n{env}'
        header = f'[run]\nname = "bench"\nruntime = "{runtime}"\nmin_success = "0%"\n'
        tables = host_tables(hosts, 2) if runtime == "ssh" else ""
        plan = root / f"beats-{runtime}.toml"
        plan.write_text(header + tables + body)
        run_plan(repo, plan)
        runs = list_runs(repo / ".git")
        took = json.loads((runs[0].output_dir("b", 1) / "beats.json").read_text())
        print(
            f"heartbeat {runtime:<5} x{beats}: median {statistics.median(took) * 1000:.1f} ms, "
            f"p95 {percentile(took, 0.95) * 1000:.1f} ms"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--slots", type=int, default=8)
    parser.add_argument("--files", type=int, default=2000)
    parser.add_argument("--beats", type=int, default=100)
    parser.add_argument("--only", choices=("overhead", "bundle", "heartbeat"), default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-ssh-") as scratch:
        root = Path(scratch)
        hosts = (make_host(root, "alpha"), make_host(root, "beta"))
        for host in hosts:
            host.start()
        try:
            if args.only in (None, "bundle"):
                asyncio.run(bundle(root, hosts[0], args.files))
            if args.only in (None, "heartbeat"):
                heartbeats(root, hosts, args.beats)
            if args.only in (None, "overhead"):
                overhead(root, hosts, args.agents, args.slots)
        finally:
            for host in hosts:
                host.stop()


if __name__ == "__main__":
    main()
