"""Event log benchmark: durable appends per second and 1M-line replay (docs/performance.md).

    .venv/bin/python bench/bench_eventlog.py [--events 1000000] [--dir DIR]

Run it on the disk the runs live on (the default directory is bench/results/, next to this
file): on tmpfs an fsync costs nothing and the append figures mean nothing. The machines are
noisy, so read the ratios between rows of one run rather than absolute figures.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import random
import resource
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from corral.core.log import (
    EventWriter,
    FollowState,
    iter_new_events,
    read_log,
    verify_log,
)
from corral.core.log.events import (
    GENESIS_HASH,
    AgentFinished,
    AgentHeartbeat,
    AgentStarted,
    EventAdapter,
    EventBase,
    HeartbeatSource,
)

if TYPE_CHECKING:
    from _typeshed import FileDescriptorLike

SOURCES: tuple[HeartbeatSource, ...] = ("beat", "beat", "output", "cpu")
Row = tuple[str, int, float, str]
"""(what, count, seconds, note)"""


def realistic_event(rng: random.Random, n: int) -> EventBase:
    """90% heartbeats (some with progress and a message), 5% starts, 5% finishes."""
    agent = f"agent-{rng.randrange(100):02d}"
    roll = rng.random()
    if roll < 0.05:
        return AgentStarted(
            agent=agent, attempt=1, pid=10_000 + n % 50_000, proc_start_time=1.7e9 + n
        )
    if roll < 0.10:
        return AgentFinished(
            agent=agent,
            attempt=1,
            outcome=rng.choice(["succeeded", "failed", "timed_out"]),
            exit_code=rng.choice([0, 1, None]),
            duration=rng.uniform(1, 3600),
        )
    source = rng.choice(SOURCES)
    if source == "beat":
        return AgentHeartbeat(
            agent=agent,
            attempt=1,
            source="beat",
            progress=round(rng.random(), 3),
            message=rng.choice(["running tests", "editing src/app.py", "reading the diff"]),
        )
    return AgentHeartbeat(agent=agent, attempt=1, source=source)


async def appends_one_at_a_time(path: Path, count: int) -> tuple[float, int]:
    """One appender awaiting each append: every event pays a full fsync."""
    rng = random.Random(1)
    writer, _ = await EventWriter.open(path)
    fsyncs = count_fsyncs()
    start = time.perf_counter()
    for n in range(count):
        await writer.append(realistic_event(rng, n))
    elapsed = time.perf_counter() - start
    await writer.close()
    return elapsed, fsyncs()


async def appends_concurrently(
    path: Path, count: int, appenders: int, *, real_fsync: bool = True
) -> tuple[float, int]:
    """`appenders` tasks appending at once: group commit shares each fsync. With
    `real_fsync=False` the fsync is a no-op: what the writer's own CPU allows (not durable)."""
    rng = random.Random(2)
    events = [realistic_event(rng, n) for n in range(count)]
    writer, _ = await EventWriter.open(path)
    fsyncs = count_fsyncs(real=real_fsync)

    async def appender(first: int) -> None:
        for n in range(first, count, appenders):
            await writer.append(events[n])

    start = time.perf_counter()
    await asyncio.gather(*(appender(first) for first in range(appenders)))
    elapsed = time.perf_counter() - start
    await writer.close()
    return elapsed, fsyncs()


_real_fsync = os.fsync


def count_fsyncs(*, real: bool = True) -> Callable[[], int]:
    """Count os.fsync calls from now on; the returned function reads the count."""
    calls = [0]

    def counting(fd: FileDescriptorLike) -> None:
        calls[0] += 1
        if real:
            _real_fsync(fd)

    os.fsync = counting
    return lambda: calls[0]


def write_replay_log(path: Path, count: int) -> None:
    """The same bytes the writer would produce, without paying an fsync per batch."""
    rng = random.Random(3)
    head = GENESIS_HASH
    with path.open("wb") as f:
        for seq in range(1, count + 1):
            event = realistic_event(rng, seq)
            event.seq, event.prev = seq, head
            line = event.model_dump_json().encode()
            head = hashlib.sha256(line).hexdigest()
            f.write(line + b"\n")
        f.flush()
        os.fsync(f.fileno())


def parse_only(path: Path) -> int:
    """The floor docs/performance.md quotes: `validate_json` per line, nothing else."""
    validate = EventAdapter.validate_json
    count = 0
    with path.open("rb") as f:
        for line in f:
            validate(line)
            count += 1
    return count


def timed(func: Callable[[], object], repeat: int) -> float:
    """Median seconds of `repeat` calls."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        func()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def filesystem_of(directory: Path) -> str:
    try:
        out = subprocess.run(
            ["df", "--output=fstype", str(directory)], capture_output=True, text=True, check=True
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out[-1] if out else "unknown"


def print_table(rows: list[Row]) -> None:
    print(f"{'what':<52} {'count':>9} {'seconds':>8} {'per second':>11}  note")
    for what, count, seconds, note in rows:
        print(f"{what:<52} {count:>9,} {seconds:>8.3f} {count / seconds:>11,.0f}  {note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=1_000_000, help="lines in the replay log")
    parser.add_argument("--fsync-events", type=int, default=5_000, help="one-at-a-time appends")
    parser.add_argument("--group-events", type=int, default=100_000, help="concurrent appends")
    parser.add_argument("--appenders", type=int, default=100, help="concurrent appender tasks")
    parser.add_argument("--repeat", type=int, default=3, help="replay timings: median of N")
    parser.add_argument(
        "--dir", type=Path, default=Path(__file__).parent / "results", help="scratch directory"
    )
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    print(f"scratch: {args.dir} ({filesystem_of(args.dir)}), {os.cpu_count()} cpus")

    rows: list[Row] = []
    with tempfile.TemporaryDirectory(dir=args.dir) as scratch:
        root = Path(scratch)

        elapsed, fsyncs = asyncio.run(appends_one_at_a_time(root / "a.jsonl", args.fsync_events))
        os.fsync = _real_fsync
        rows.append(
            (
                "(a) append, 1 appender, fsync per event",
                args.fsync_events,
                elapsed,
                f"{fsyncs:,} fsyncs",
            )
        )

        elapsed, fsyncs = asyncio.run(
            appends_concurrently(root / "b.jsonl", args.group_events, args.appenders)
        )
        os.fsync = _real_fsync
        rows.append(
            (
                f"(b) append, {args.appenders} appenders, group commit",
                args.group_events,
                elapsed,
                f"{fsyncs:,} fsyncs, {args.group_events / fsyncs:.0f}/fsync",
            )
        )
        assert verify_log(root / "b.jsonl").events == args.group_events

        elapsed, fsyncs = asyncio.run(
            appends_concurrently(
                root / "c.jsonl", args.group_events, args.appenders, real_fsync=False
            )
        )
        os.fsync = _real_fsync
        rows.append(
            (
                "(c) as (b) with fsync stubbed: writer CPU ceiling",
                args.group_events,
                elapsed,
                "NOT durable; the cost of the code alone",
            )
        )

        log = root / "replay.jsonl"
        start = time.perf_counter()
        write_replay_log(log, args.events)
        size = log.stat().st_size
        print(
            f"replay log: {args.events:,} events, {size / 2**20:.0f} MiB, "
            f"written in {time.perf_counter() - start:.1f}s"
        )

        seconds = timed(lambda: parse_only(log), args.repeat)
        rows.append(
            ("replay floor: validate_json per line only", args.events, seconds, "no chain check")
        )
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        seconds = timed(lambda: read_log(log), args.repeat)
        grown = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 2**10
        rows.append(
            (
                "replay: read_log (parse + seq + hash chain)",
                args.events,
                seconds,
                f"peak RSS +{grown:,.0f} MiB (events kept)",
            )
        )
        seconds = timed(lambda: verify_log(log), args.repeat)
        rows.append(("verify_log (same checks, events dropped)", args.events, seconds, ""))

        def skip_to_end() -> None:
            state = FollowState(after_seq=args.events)
            while not state.caught_up:
                iter_new_events(log, state)

        seconds = timed(skip_to_end, args.repeat)
        rows.append(
            (
                "follower catch-up, after_seq=last (hash only)",
                args.events,
                seconds,
                "then each idle poll is one fstat",
            )
        )
        state = FollowState(after_seq=args.events)
        while not state.caught_up:
            iter_new_events(log, state)
        polls = 10_000
        seconds = timed(lambda: [iter_new_events(log, state) for _ in range(polls)], 1)
        rows.append(("follower idle poll on the 1M-line log", polls, seconds, ""))

    print_table(rows)


if __name__ == "__main__":
    main()
