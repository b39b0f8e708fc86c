"""Following a 1M-event log: what an idle poll, one new event and the first read cost.

    .venv/bin/python bench/bench_follow.py [--events 1000000] [--dir DIR] [--polls 20000]

`corral logs -f` and the console (tui/bridge.py) both follow the run's log with the same
`LogFollower` (core/log/follower.py): it keeps the file open and remembers the offset, seq and
hash of the last verified line. This prints, on a log of `--events` valid chained lines:

- the first read: `LogFollower.replay` (parse, seq and hash check of every line);
- an idle poll: wall time, and the system calls it makes, counted twice: by wrapping the `os`
  functions that touch a file (fstat, stat, open, read, pread, lseek) in this process, and, when
  `strace` can attach here, by `strace -c` around a child that only polls;
- one new event appended at the tail and picked up: wall time and calls;
- an idle `iter_new_events`, which opens the file per call (the console's runs list);
- the real `corral logs -f` on that run, idle, under `strace -c` (its output log is absent, so
  each 0.2 s poll is one failed open of it, one fstat of the event log and the sleep);
- the runs index (core/runs/index.py) on that run: the first full replay and fold (what
  `corral runs` and `corral gc` did for every run on every call, and `logs -f` on every poll,
  before), an unchanged log, and one event appended.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from corral.core.log import FollowState, LogFollower, iter_new_events
from corral.core.log.events import (
    GENESIS_HASH,
    AgentHeartbeat,
    AgentSummary,
    EngineInfo,
    RunStarted,
)
from corral.core.runs import index
from corral.core.runs.rundir import RunDir, runs_root

RUN_ID = "20260101-000000-bench0"
COUNTED = ("fstat", "stat", "open", "read", "pread", "lseek")
_SEQ, _PREV, _TS = 987654321, "f" * 64, 1234567.5


def line_template() -> tuple[bytes, bytes, bytes, bytes]:
    """The writer's own bytes for a heartbeat, cut around seq, prev and ts."""
    beat = AgentHeartbeat(seq=_SEQ, prev=_PREV, ts=_TS, agent="agent-07", attempt=1, source="beat")
    line = beat.model_dump_json().encode()
    a, rest = line.split(str(_SEQ).encode(), 1)
    b, rest = rest.split(_PREV.encode(), 1)
    c, d = rest.split(repr(_TS).encode(), 1)
    return a, b, c, d


def chained(count: int, first: int, head: str) -> tuple[bytes, str]:
    """`count` valid lines from seq `first` chained on `head` (fast: no model per line)."""
    a, b, c, d = line_template()
    sha256 = hashlib.sha256
    out = []
    for seq in range(first, first + count):
        line = b"".join((a, b"%d" % seq, b, head.encode(), c, repr(1.7e9 + seq).encode(), d))
        head = sha256(line).hexdigest()
        out.append(line)
    return b"\n".join(out) + b"\n", head


def run_started() -> bytes:
    """Seq 1: the run and its one agent, so the log folds like a real one."""
    agent = AgentSummary(id="agent-07", kind="coding", command=["true"])
    engine = EngineInfo(pid=1, start_time=0.0, host="bench", user="bench")
    return (
        RunStarted(
            seq=1,
            prev=GENESIS_HASH,
            run_id="bench",
            name="bench",
            repo="/r",
            base_ref="main",
            snapshot="0" * 40,
            plan_sha256="0" * 64,
            agents=[agent],
            max_parallel=1,
            required_successes=0,
            worktree_root="/w",
            engine=engine,
        )
        .model_dump_json()
        .encode()
    )


def write_log(path: Path, events: int) -> str:
    first_line = run_started()
    head = hashlib.sha256(first_line).hexdigest()
    with path.open("wb") as f:
        f.write(first_line + b"\n")
        for first in range(2, events + 1, 100_000):
            data, head = chained(min(100_000, events + 1 - first), first, head)
            f.write(data)
    return head


@contextmanager
def counting() -> Iterator[dict[str, int]]:
    """Count calls of the `os` functions in COUNTED made inside the block."""
    counts = dict.fromkeys(COUNTED, 0)
    real = {name: getattr(os, name) for name in COUNTED}

    def wrap(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            counts[name] += 1
            return fn(*args, **kwargs)

        return call

    for name, fn in real.items():
        setattr(os, name, wrap(name, fn))
    try:
        yield counts
    finally:
        for name, fn in real.items():
            setattr(os, name, fn)


def per_call(counts: dict[str, int], n: int) -> str:
    return ", ".join(f"{name} {count / n:g}" for name, count in counts.items() if count) or "none"


STRACE_CHILD = """
import sys
from pathlib import Path
from corral.core.log import LogFollower
import gc
follower, contents = LogFollower.replay(Path(sys.argv[1]))
del contents  # freed before strace attaches, so it counts only the polls
gc.collect()
follower.poll()
sys.stdout.write("ready\\n"); sys.stdout.flush(); sys.stdin.readline()
for _ in range(int(sys.argv[2])):
    follower.poll()
sys.stdout.write("done\\n"); sys.stdout.flush(); sys.stdin.readline()
"""


def strace_attached(pid: int, work: Callable[[], None]) -> str:
    """System calls of process `pid` while `work()` runs, by `strace -c -p` (summed by name)."""
    if shutil.which("strace") is None:
        return "strace not installed"
    report = Path(tempfile.mkdtemp()) / "strace.txt"
    tracer = subprocess.Popen(
        ["strace", "-c", "-f", "-o", str(report), "-p", str(pid)],
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(0.5)  # strace has no ready signal
    if tracer.poll() is not None:
        why = tracer.stderr.read().strip() if tracer.stderr else ""
        return f"strace could not attach ({why})"
    work()
    tracer.terminate()
    tracer.wait(timeout=30)
    calls = {}
    for row in (line.split() for line in report.read_text().splitlines()):
        if len(row) >= 5 and row[3].isdigit() and row[-1] != "total":
            calls[row[-1]] = int(row[3])
    return ", ".join(f"{name} {n}" for name, n in sorted(calls.items(), key=lambda kv: -kv[1]))


def strace_idle(log: Path, polls: int) -> str:
    """`strace -c` of `polls` idle polls in a child, attached once it has replayed the log."""
    child = subprocess.Popen(
        [sys.executable, "-c", STRACE_CHILD, str(log), str(polls)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None
    assert child.stdout is not None
    stdin, stdout = child.stdin, child.stdout

    def polls_done() -> None:
        stdin.write("go\n")
        stdin.flush()
        stdout.readline()

    try:
        stdout.readline()
        return strace_attached(child.pid, polls_done)
    finally:
        stdin.write("end\n")
        stdin.flush()
        child.wait(timeout=30)


def sleeping(pid: int) -> bool:
    """The process is asleep (its state in /proc is S), as `logs -f` is between polls."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat[stat.rindex(")") + 2] == "S"


def strace_logs_follow(repo: Path, run_id: str, seconds: float) -> str:
    """The real `corral logs -f` on the big run, traced for `seconds` once it follows."""
    command = [sys.executable, "-m", "corral.core.cli", "--repo", str(repo)]
    child = subprocess.Popen([*command, "logs", "-f", run_id, "agent-07"])
    try:
        deadline = time.monotonic() + 600
        quiet = 0
        while quiet < 10:  # asleep ten samples running: the replay is over, it polls
            if time.monotonic() > deadline or child.poll() is not None:
                return "`corral logs -f` did not start following"
            quiet = quiet + 1 if sleeping(child.pid) else 0
            time.sleep(0.05)
        start = time.monotonic()
        traced = strace_attached(child.pid, lambda: time.sleep(seconds))
        polls = (time.monotonic() - start) / 0.2
        return f"{traced} (about {polls:.0f} polls of 0.2 s)"
    finally:
        child.kill()
        child.wait(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--polls", type=int, default=20_000)
    parser.add_argument("--dir", type=Path, default=None)
    parser.add_argument("--trace-seconds", type=float, default=3.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        repo = Path(scratch) / "repo"
        subprocess.run(["git", "init", "-q", str(repo)], check=True)
        rundir = RunDir(runs_root(repo / ".git") / RUN_ID)
        rundir.create()
        log = rundir.events
        start = time.perf_counter()
        head = write_log(log, args.events)
        size = log.stat().st_size
        print(
            f"log: {args.events:,} events, {size / 2**20:.0f} MiB, written in "
            f"{time.perf_counter() - start:.1f}s"
        )

        start = time.perf_counter()
        follower, contents = LogFollower.replay(log)
        first = time.perf_counter() - start
        assert contents.last_seq == args.events
        assert contents.head == head
        del contents
        print(f"first read (LogFollower.replay, verified): {first:.2f} s")

        with follower:
            follower.poll()
            with counting() as counts:
                start = time.perf_counter()
                for _ in range(args.polls):
                    follower.poll()
                idle = (time.perf_counter() - start) / args.polls
            print(f"idle poll: {idle * 1e6:.1f} us; calls per poll: {per_call(counts, args.polls)}")
            print(
                f"idle poll under strace -c ({args.polls:,} polls): {strace_idle(log, args.polls)}"
            )

            rounds = 1000
            tail = follower.state.head
            picked = 0.0
            with counting() as counts:
                for n in range(rounds):
                    data, tail = chained(1, args.events + 1 + n, tail)
                    with log.open("ab") as f:
                        f.write(data)
                    start = time.perf_counter()
                    got = follower.poll()
                    picked += time.perf_counter() - start
                    assert [e.seq for e in got] == [args.events + 1 + n]
            print(
                f"one new event at the tail: {picked / rounds * 1e6:.1f} us; calls per pickup: "
                f"{per_call(counts, rounds)}"
            )

        state = FollowState(after_seq=args.events + rounds)
        while not state.caught_up:
            iter_new_events(log, state)
        iter_new_events(log, state)
        with counting() as counts:
            start = time.perf_counter()
            for _ in range(args.polls):
                iter_new_events(log, state)
            reopen = (time.perf_counter() - start) / args.polls
        print(
            f"idle iter_new_events (opens per call): {reopen * 1e6:.1f} us; calls per poll: "
            f"{per_call(counts, args.polls)} (plus close)"
        )
        print(
            f"`corral logs -f` (the real command, idle, under strace -c): "
            f"{strace_logs_follow(repo, RUN_ID, args.trace_seconds)}"
        )

        start = time.perf_counter()
        index.run_state(rundir)
        full = time.perf_counter() - start
        start = time.perf_counter()
        index.run_state(rundir)
        unchanged = time.perf_counter() - start
        data, tail = chained(1, args.events + rounds + 1, tail)
        with log.open("ab") as f:
            f.write(data)
        start = time.perf_counter()
        folded = index.run_state(rundir)
        grown = time.perf_counter() - start
        assert folded.last_seq == args.events + rounds + 1
        print(
            f"runs index (`corral runs`, `corral gc`, per run): full replay + fold {full:.2f} s "
            f"(every listing, before), unchanged {unchanged * 1e3:.1f} ms, one event appended "
            f"{grown * 1e3:.1f} ms"
        )


if __name__ == "__main__":
    main()
