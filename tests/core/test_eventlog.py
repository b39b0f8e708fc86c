"""The event log against real files, real concurrency and a real SIGKILL (docs/reliability.md E1-E5)."""

from __future__ import annotations

import asyncio
import errno
import hashlib
import math
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import pytest

from corral.core.log import (
    EventWriter,
    FollowState,
    LogContents,
    LogCorrupted,
    LogFailed,
    LogPathError,
    follow_log,
    iter_new_events,
    read_log,
    repair_torn_tail,
    verify_log,
)
from corral.core.log.events import (
    GENESIS_HASH,
    AgentFinished,
    AgentHeartbeat,
    AgentStalled,
    AgentStarted,
    Event,
    EventBase,
)

T = TypeVar("T")
REAL_FSYNC = os.fsync
REAL_WRITE = os.write


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def beat(agent: str = "a1", message: str | None = None) -> AgentHeartbeat:
    return AgentHeartbeat(agent=agent, attempt=1, source="beat", message=message)


def sha(line: bytes) -> str:
    return hashlib.sha256(line).hexdigest()


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().split(b"\n")[:-1]


def write_log(path: Path, count: int) -> None:
    """A clean log of `count` heartbeats from agents a1, a2, ... (agent name = seq)."""

    async def main() -> None:
        writer, _ = await EventWriter.open(path)
        async with writer:
            await writer.append_many([beat(f"a{n}") for n in range(1, count + 1)])

    run(main())


def same_file(fd: int, path: Path) -> bool:
    try:
        left, right = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (left.st_dev, left.st_ino) == (right.st_dev, right.st_ino)


# --- round trip, durability, group commit -------------------------------------------------


def test_concurrent_appends_round_trip_and_each_is_durable_when_append_returns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "events.jsonl"
    synced: list[int] = [0]

    def recording_fsync(fd: int) -> None:
        size = os.fstat(fd).st_size
        REAL_FSYNC(fd)
        if same_file(fd, path):
            synced.append(size)

    monkeypatch.setattr(os, "fsync", recording_fsync)
    seen_by_listener: list[int] = []

    async def main() -> EventWriter:
        writer, contents = await EventWriter.open(path)
        assert contents.events == []
        writer.add_listener(lambda event: seen_by_listener.append(event.seq))

        async def appender(task: int) -> list[int]:
            mine: list[int] = []
            for n in range(20):
                event = await writer.append(beat(f"t{task}", message=f"n{n}"))
                line = event.model_dump_json().encode() + b"\n"
                data = path.read_bytes()  # a separate reader, at the moment append returned
                at = data.find(line)
                assert at >= 0, f"seq {event.seq} is not in the file when its append returned"
                assert max(synced) >= at + len(line), f"seq {event.seq} returned before fsync"
                assert event.seq in seen_by_listener
                mine.append(event.seq)
            return mine

        per_task = await asyncio.gather(*(appender(task) for task in range(50)))
        for mine in per_task:
            assert mine == sorted(mine), "file order must be the order of append calls"
        await writer.close()
        return writer

    writer = run(main())
    contents = read_log(path)
    assert [event.seq for event in contents.events] == list(range(1, 1001))
    assert seen_by_listener == list(range(1, 1001))
    assert contents.head == writer.head == sha(lines_of(path)[-1])
    assert writer.last_seq == 1000
    assert contents.torn_tail is None
    assert verify_log(path).ok
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    messages = {(e.agent, e.message) for e in contents.events if isinstance(e, AgentHeartbeat)}
    assert len(messages) == 1000


def count_log_fsyncs(monkeypatch: pytest.MonkeyPatch, path: Path) -> list[int]:
    calls: list[int] = []

    def counting_fsync(fd: int) -> None:
        if same_file(fd, path):
            calls.append(fd)
        REAL_FSYNC(fd)

    monkeypatch.setattr(os, "fsync", counting_fsync)
    return calls


def test_group_commit_batches_concurrent_appends_into_few_fsyncs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "events.jsonl"

    async def main() -> tuple[int, int, int]:
        writer, _ = await EventWriter.open(path)
        calls = count_log_fsyncs(monkeypatch, path)

        async def appender(task: int) -> None:
            for _ in range(10):
                await writer.append(beat(f"t{task}"))

        await asyncio.gather(*(appender(task) for task in range(100)))
        concurrent = len(calls)
        for _ in range(20):
            await writer.append(beat())
        sequential = len(calls) - concurrent
        await writer.append_many([beat() for _ in range(50)])
        many = len(calls) - concurrent - sequential
        await writer.close()
        return concurrent, sequential, many

    concurrent, sequential, many = run(main())
    assert concurrent <= 100, f"1000 concurrent appends took {concurrent} fsyncs"
    assert sequential == 20, "a lone appender needs one fsync per event"
    assert many == 1
    assert verify_log(path).events == 1070


def test_new_log_is_created_durably_with_its_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kinds: list[str] = []

    def recording_fsync(fd: int) -> None:
        kinds.append("dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "file")
        REAL_FSYNC(fd)

    monkeypatch.setattr(os, "fsync", recording_fsync)

    async def main() -> None:
        writer, _ = await EventWriter.open(tmp_path / "events.jsonl")
        await writer.close()

    run(main())
    assert kinds == ["file", "dir"]


def test_reopen_continues_the_chain_and_close_flushes_queued_appends(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    write_log(path, 3)

    async def main() -> None:
        writer, contents = await EventWriter.open(path)
        assert [e.seq for e in contents.events] == [1, 2, 3]
        assert writer.last_seq == 3
        assert writer.head == contents.head
        assert writer.repaired_tail is None
        queued = [asyncio.ensure_future(writer.append(beat(f"q{n}"))) for n in range(5)]
        await asyncio.sleep(0)  # let them queue; close must still write them
        await writer.close()
        assert [(await f).seq for f in queued] == [4, 5, 6, 7, 8]
        with pytest.raises(RuntimeError, match="closed"):
            await writer.append(beat())

    run(main())
    contents = read_log(path)
    assert contents.last_seq == 8
    assert contents.events[3].prev == sha(lines_of(path)[2])


def test_events_refuse_nan_at_creation() -> None:
    with pytest.raises(ValueError, match="finite number"):
        AgentStalled(agent="a", attempt=1, silent_for=math.nan)


def test_a_refused_event_leaves_the_chain_and_the_writer_intact(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    handled: list[dict[str, Any]] = []

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: handled.append(ctx))
        writer, _ = await EventWriter.open(path)
        first = await writer.append(beat())
        with pytest.raises(ValueError, match="would not read back"):
            # models refuse NaN themselves; model_construct gets one past them to the writer's check
            await writer.append(
                AgentStalled.model_construct(agent="a", attempt=1, silent_for=math.nan)
            )
        with pytest.raises(ValueError, match="already appended as seq 1"):
            await writer.append(first)
        with pytest.raises(TypeError, match="not an event type"):
            await writer.append(EventBase())
        bad = [beat(), AgentStalled.model_construct(agent="a", attempt=1, silent_for=math.inf)]
        with pytest.raises(ValueError, match="would not read back"):
            await writer.append_many(bad)
        assert bad[0].seq == 0, "a refused batch is not stamped"

        def broken_listener(event: Event) -> None:
            raise RuntimeError("listener bug")

        writer.add_listener(broken_listener)
        second = await writer.append(beat())
        assert second.seq == 2
        assert second.prev == sha(first.model_dump_json().encode())
        await writer.close()

    run(main())
    assert verify_log(path).ok
    assert [str(ctx["exception"]) for ctx in handled] == ["listener bug"]


def test_a_cancelled_append_is_still_written_and_the_writer_carries_on(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"

    async def main() -> None:
        writer, _ = await EventWriter.open(path)
        task = asyncio.ensure_future(writer.append(beat("cancelled")))
        await asyncio.sleep(0)  # queued
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        after = await writer.append(beat("after"))
        assert after.seq == 2
        assert writer.failed is None
        await writer.close()

    run(main())
    events = read_log(path).events
    assert [e.agent for e in events if isinstance(e, AgentHeartbeat)] == ["cancelled", "after"]


# --- torn tail ---------------------------------------------------------------------------


def test_torn_tail_is_reported_then_quarantined_and_the_chain_continues(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    write_log(path, 3)
    clean_size = path.stat().st_size
    fragment = b'{"seq":4,"prev":"ab'
    with path.open("ab") as f:
        f.write(fragment)

    contents = read_log(path)
    assert contents.last_seq == 3
    assert contents.torn_tail == fragment
    assert contents.end == clean_size
    result = verify_log(path)
    assert (result.ok, result.status, result.first_bad_seq) == (False, "torn_tail", None)
    assert result.torn_tail_bytes == len(fragment)
    assert result.events == 3
    assert result.head == contents.head

    async def reopen_and_append() -> tuple[Path | None, Event]:
        writer, reopened = await EventWriter.open(path)
        assert reopened.torn_tail == fragment
        assert reopened.last_seq == 3
        async with writer:
            return writer.repaired_tail, await writer.append(beat("after"))

    quarantined, event = run(reopen_and_append())
    assert quarantined == tmp_path / "events.jsonl.torn-1"
    assert quarantined.read_bytes() == fragment
    assert event.seq == 4
    assert event.prev == contents.head
    assert verify_log(path).ok
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []

    with path.open("ab") as f:  # a second torn tail never overwrites the first quarantine
        f.write(b"second")
    second = repair_torn_tail(path)
    assert second == tmp_path / "events.jsonl.torn-2"
    assert second.read_bytes() == b"second"
    assert quarantined.read_bytes() == fragment
    assert repair_torn_tail(path) is None
    assert repair_torn_tail(tmp_path / "missing.jsonl") is None
    assert verify_log(path).ok


def test_a_log_that_is_only_a_torn_line_repairs_to_empty(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b'{"seq":1,')

    async def main() -> Event:
        writer, contents = await EventWriter.open(path)
        assert contents.events == []
        async with writer:
            return await writer.append(beat())

    event = run(main())
    assert (event.seq, event.prev) == (1, GENESIS_HASH)
    assert (tmp_path / "events.jsonl.torn-1").read_bytes() == b'{"seq":1,'


# --- corruption ----------------------------------------------------------------------------


def edit_agent(lines: list[bytes]) -> list[bytes]:
    lines[4] = lines[4].replace(b'"agent":"a5"', b'"agent":"X5"')
    return lines


def edit_prev_of_6(lines: list[bytes]) -> list[bytes]:
    at = lines[5].index(b'"prev":"') + len(b'"prev":"')
    flipped = b"1" if lines[5][at : at + 1] == b"0" else b"0"
    lines[5] = lines[5][:at] + flipped + lines[5][at + 1 :]
    return lines


CORRUPTIONS: dict[str, tuple[Callable[[list[bytes]], list[bytes]], int, int, str]] = {
    # name: (edit, first bad seq, seq where it was detected, words in the message)
    "edited line 5": (edit_agent, 5, 6, "seq 6 does not carry the hash of seq 5"),
    "deleted line 5": (lambda ls: ls[:4] + ls[5:], 5, 5, "seq 5 is missing"),
    "garbage line 5": (lambda ls: [*ls[:4], b"not json", *ls[5:]], 5, 5, "not a valid event"),
    "empty line 5": (lambda ls: [*ls[:4], b"", *ls[5:]], 5, 5, "not a valid event"),
    "duplicated line 5": (lambda ls: [*ls[:5], ls[4], *ls[5:]], 6, 6, "carries seq 5"),
    "edited first line": (lambda ls: [ls[0].replace(b'"a1"', b'"Z1"'), *ls[1:]], 1, 2, "seq 1"),
    "edited prev of 6": (edit_prev_of_6, 5, 6, "or the prev field of seq 6"),
}


@pytest.mark.parametrize("name", list(CORRUPTIONS))
def test_corruption_in_the_middle_names_the_first_bad_seq(tmp_path: Path, name: str) -> None:
    edit, bad_seq, detected_at, words = CORRUPTIONS[name]
    path = tmp_path / "events.jsonl"
    write_log(path, 10)
    good = lines_of(path)
    path.write_bytes(b"".join(line + b"\n" for line in edit(list(good))))

    with pytest.raises(LogCorrupted) as caught:
        read_log(path)
    assert caught.value.seq == bad_seq
    assert caught.value.detected_at == detected_at
    assert words in caught.value.reason
    assert str(caught.value).startswith(f"events.jsonl is corrupted at seq {bad_seq}: ")
    assert "corral verify RUN" in str(caught.value)

    result = verify_log(path)
    assert (result.ok, result.status, result.first_bad_seq) == (False, "corrupted", bad_seq)
    assert result.problem == str(caught.value)
    trusted = bad_seq - 1
    assert result.events == trusted
    assert result.head == (sha(good[trusted - 1]) if trusted else GENESIS_HASH)

    with pytest.raises(LogCorrupted):
        run(EventWriter.open(path))
    assert not list(tmp_path.glob("*.torn-*")), "a corrupted log is never repaired"


# --- E3: write and fsync failures -----------------------------------------------------------


def test_fsync_failure_makes_the_log_read_only_for_good(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "events.jsonl"
    write_log(path, 2)
    fsyncs: list[int] = []

    def full_disk(fd: int) -> None:
        fsyncs.append(fd)
        raise OSError(errno.ENOSPC, "No space left on device")

    async def main() -> None:
        writer, _ = await EventWriter.open(path)
        durable: list[Event] = []
        writer.add_listener(durable.append)
        head_before = writer.head
        monkeypatch.setattr(os, "fsync", full_disk)
        in_flight = await asyncio.gather(
            *(writer.append(beat(f"f{n}")) for n in range(10)), return_exceptions=True
        )
        assert all(isinstance(result, LogFailed) for result in in_flight), in_flight
        first = in_flight[0]
        assert isinstance(first, LogFailed)
        assert first.durable_seq == 2
        assert "read-only" in str(first)
        assert "No space left" in str(first)
        assert isinstance(writer.failed, OSError)
        assert writer.failed.errno == errno.ENOSPC
        size = path.stat().st_size
        calls = len(fsyncs)
        with pytest.raises(LogFailed):
            await writer.append(beat("later"))
        with pytest.raises(LogFailed):
            await writer.append_many([beat("later")])
        assert path.stat().st_size == size, "nothing is written after the failure"
        assert len(fsyncs) == calls, "an fsync is never retried"
        assert durable == [], "listeners only see durable events"
        assert (writer.last_seq, writer.head) == (2, head_before)
        await writer.close()

    run(main())
    assert len(fsyncs) == 1


def test_a_short_write_fails_the_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "events.jsonl"
    write_log(path, 1)

    def short_write(fd: int, data: bytes) -> int:
        if same_file(fd, path):
            return REAL_WRITE(fd, bytes(data)[:10])
        return REAL_WRITE(fd, data)

    async def main() -> None:
        writer, _ = await EventWriter.open(path)
        monkeypatch.setattr(os, "write", short_write)
        with pytest.raises(LogFailed, match="short write"):
            await writer.append(beat())
        with pytest.raises(LogFailed):
            await writer.append(beat())
        await writer.close()

    run(main())
    monkeypatch.undo()
    assert read_log(path).torn_tail is not None, "the partial line is a torn tail, repaired later"


# --- the path ------------------------------------------------------------------------------


@pytest.mark.parametrize("target_exists", [True, False])
def test_a_symlink_at_the_log_path_is_not_followed(tmp_path: Path, target_exists: bool) -> None:
    target = tmp_path / "elsewhere"
    if target_exists:
        target.write_bytes(b"")
    path = tmp_path / "events.jsonl"
    path.symlink_to(target)
    with pytest.raises(LogPathError, match="is a symbolic link"):
        run(EventWriter.open(path))
    with pytest.raises(LogPathError, match="is a symbolic link"):
        read_log(path)
    assert target.exists() == target_exists
    if target_exists:
        assert target.read_bytes() == b""


def test_a_missing_log_reads_empty_and_verifies_as_missing(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    assert read_log(path) == LogContents(events=[], head=GENESIS_HASH)
    assert verify_log(path).status == "missing"
    (tmp_path / "dir.jsonl").mkdir()
    with pytest.raises(LogPathError, match="not a regular file"):
        read_log(tmp_path / "dir.jsonl")


# --- a writer killed with SIGKILL ---------------------------------------------------------

CHILD = """
import asyncio, sys
from pathlib import Path
from corral.core.log import EventWriter
from corral.core.log.events import AgentHeartbeat

async def main() -> None:
    writer, _ = await EventWriter.open(Path(sys.argv[1]))
    limit = int(sys.argv[2])  # 0: forever
    issued = 0

    async def worker(n: int) -> None:
        nonlocal issued
        while limit == 0 or issued < limit:
            issued += 1
            event = await writer.append(
                AgentHeartbeat(agent=f"w{n}", attempt=1, source="beat", message="x" * (n * 97))
            )
            sys.stdout.write(f"{event.seq}\\n")
            sys.stdout.flush()

    await asyncio.gather(*(worker(n) for n in range(8)))
    await writer.close()

asyncio.run(main())
"""


def start_writer(path: Path, limit: int = 0) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), str(limit)], stdout=subprocess.PIPE
    )


def test_a_writer_killed_mid_stream_loses_nothing_it_acknowledged(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    acknowledged: list[int] = []
    with start_writer(path) as child:
        assert child.stdout is not None
        try:
            while len(acknowledged) < 400:
                line = child.stdout.readline()
                assert line, "the writer exited before it was killed"
                acknowledged.append(int(line))
            os.kill(child.pid, signal.SIGKILL)
            rest = child.stdout.read()
        finally:
            child.kill()
    assert child.returncode == -signal.SIGKILL
    acknowledged += [int(line) for line in rest.split(b"\n") if line]

    contents = read_log(path)  # clean, or with only a torn tail
    assert max(acknowledged) <= contents.last_seq
    assert [e.seq for e in contents.events] == list(range(1, contents.last_seq + 1))

    async def reopen() -> tuple[Path | None, Event]:
        writer, reopened = await EventWriter.open(path)
        assert reopened.last_seq == contents.last_seq
        async with writer:
            return writer.repaired_tail, await writer.append(beat("resumed"))

    repaired, event = run(reopen())
    assert (repaired is not None) == (contents.torn_tail is not None)
    assert event.seq == contents.last_seq + 1
    assert event.prev == contents.head
    assert verify_log(path).ok


# --- following from another process -------------------------------------------------------


def test_a_follower_sees_every_event_of_another_process_once_in_order(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    total = 1500
    state = FollowState()
    assert iter_new_events(path, state) == [], "a log not created yet is just empty"
    seen: list[int] = []
    polls = 0
    deadline = time.monotonic() + 60
    with start_writer(path, limit=total) as child:
        try:
            while len(seen) < total:
                assert time.monotonic() < deadline, f"follower stuck at {len(seen)} events"
                batch = iter_new_events(path, state)
                seen += [event.seq for event in batch]
                polls += 1
                if not batch:
                    time.sleep(0.001)
        finally:
            assert child.wait(timeout=60) == 0
    assert seen == list(range(1, total + 1))
    assert polls > 1, "the follower read while the writer was writing"
    assert iter_new_events(path, state) == []
    assert state.head == read_log(path).head


def test_a_follower_waits_for_the_newline_of_a_partial_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    write_log(path, 10)
    lines = lines_of(path)
    path.write_bytes(b"".join(line + b"\n" for line in lines[:9]) + lines[9][:30])
    state = FollowState(after_seq=5)
    assert [e.seq for e in iter_new_events(path, state)] == [6, 7, 8, 9]
    assert iter_new_events(path, state) == []
    assert state.caught_up
    with path.open("ab") as f:
        f.write(lines[9][30:])
    assert iter_new_events(path, state) == []
    with path.open("ab") as f:
        f.write(b"\n")
    assert [e.seq for e in iter_new_events(path, state)] == [10]

    small = FollowState()  # catching up in slices still returns everything once
    got: list[int] = []
    while not small.caught_up:
        got += [e.seq for e in iter_new_events(path, small, max_bytes=1)]
    assert got == list(range(1, 11))


def test_a_follower_stops_on_corruption_and_on_a_replaced_file(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    write_log(path, 4)
    state = FollowState.after(read_log(path))
    assert iter_new_events(path, state) == []
    with path.open("ab") as f:
        f.write(b'{"seq":9}\n')
    with pytest.raises(LogCorrupted) as caught:
        iter_new_events(path, state)
    assert caught.value.seq == 5
    write_log(tmp_path / "other.jsonl", 6)
    os.replace(tmp_path / "other.jsonl", path)
    with pytest.raises(LogCorrupted, match="replaced"):
        iter_new_events(path, state)
    with pytest.raises(LogCorrupted, match="shrank"):
        iter_new_events(path, FollowState(offset=10**9))


def test_async_follow_sees_a_live_writer_exactly_once(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"

    async def produce(writer: EventWriter) -> None:
        for burst in range(20):
            await asyncio.gather(*(writer.append(beat(f"b{burst}")) for _ in range(25)))
            await asyncio.sleep(0)
        await writer.append_many(
            [
                AgentStarted(agent="s", attempt=1, pid=1, proc_start_time=0.0),
                AgentFinished(agent="s", attempt=1, outcome="succeeded"),
            ]
        )

    async def consume(after: int, until: int) -> list[int]:
        seen: list[int] = []
        async for event in follow_log(path, after_seq=after, poll=0.001):
            seen.append(event.seq)
            if event.seq == until:
                break
        return seen

    async def main() -> tuple[list[int], list[int]]:
        writer, _ = await EventWriter.open(path)
        async with writer:
            followers = asyncio.gather(consume(0, 502), consume(300, 502))
            await produce(writer)
            return await asyncio.wait_for(followers, timeout=30)

    everything, tail = run(main())
    assert everything == list(range(1, 503))
    assert tail == list(range(301, 503))
