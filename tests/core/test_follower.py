"""LogFollower: an open file, one fstat per idle poll, only new lines read and verified."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from corral.core.log import LogCorrupted, LogFollower, read_log, repair_torn_tail
from corral.core.log.events import GENESIS_HASH, AgentHeartbeat


def chained_lines(count: int, *, first: int = 1, head: str = GENESIS_HASH) -> tuple[bytes, str]:
    """`count` valid heartbeat lines from seq `first`, chained on `head`; and the new head."""
    out = []
    for seq in range(first, first + count):
        beat = AgentHeartbeat(
            seq=seq, prev=head, ts=float(seq), agent="a", attempt=1, source="beat"
        )
        line = beat.model_dump_json().encode()
        head = hashlib.sha256(line).hexdigest()
        out.append(line + b"\n")
    return b"".join(out), head


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    path = tmp_path / "events.jsonl"
    data, _ = chained_lines(50)
    path.write_bytes(data)
    return path


class Calls:
    """Counts the calls a follower makes of the os functions that touch the file."""

    NAMES = ("fstat", "stat", "read", "pread", "open", "lseek")

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.counts = dict.fromkeys(self.NAMES, 0)
        for name in self.NAMES:
            monkeypatch.setattr(os, name, self._counting(name, getattr(os, name)))

    def _counting(self, name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.counts[name] += 1
            return real(*args, **kwargs)

        return call

    def reset(self) -> None:
        self.counts = dict.fromkeys(self.NAMES, 0)


@pytest.fixture
def follower(log: Path) -> Iterator[LogFollower]:
    follower, contents = LogFollower.replay(log)
    assert contents.last_seq == 50
    with follower:
        yield follower


def test_idle_polls_cost_one_fstat_and_no_read(
    follower: LogFollower, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert follower.poll() == []  # the first poll after the replay notes size and mtime
    calls = Calls(monkeypatch)
    for _ in range(100):
        assert follower.poll() == []
    assert calls.counts == {**dict.fromkeys(Calls.NAMES, 0), "fstat": 100}


def test_appended_events_are_picked_up_once_reading_only_the_new_bytes(
    log: Path, follower: LogFollower, monkeypatch: pytest.MonkeyPatch
) -> None:
    follower.poll()
    data, head = chained_lines(3, first=51, head=read_log(log).head)
    append(log, data)
    calls = Calls(monkeypatch)
    assert [e.seq for e in follower.poll()] == [51, 52, 53]
    assert calls.counts["fstat"] == 1
    assert calls.counts["pread"] == 1
    assert follower.state.head == head
    assert follower.poll() == []


def test_a_torn_tail_is_waited_for_until_its_newline(log: Path, follower: LogFollower) -> None:
    data, _ = chained_lines(2, first=51, head=read_log(log).head)
    first_end = data.index(b"\n") + 1
    append(log, data[: first_end + 20])
    assert [e.seq for e in follower.poll()] == [51]
    assert follower.poll() == []
    append(log, data[first_end + 20 : -1])
    assert follower.poll() == []
    append(log, b"\n")
    assert [e.seq for e in follower.poll()] == [52]


def test_a_repaired_torn_tail_is_no_error(log: Path, follower: LogFollower) -> None:
    """The engine quarantines an unterminated tail and cuts it off (E4): the file shrinks, but
    not below what the follower verified, and the lines written after it are followed."""
    data, _ = chained_lines(1, first=51, head=read_log(log).head)
    append(log, data[:-10])
    assert follower.poll() == []
    assert repair_torn_tail(log) is not None
    assert follower.poll() == []
    append(log, data)
    assert [e.seq for e in follower.poll()] == [51]


def test_corruption_in_appended_lines_is_reported_as_a_full_verify_would(
    log: Path, follower: LogFollower
) -> None:
    data, _ = chained_lines(3, first=51, head="0" * 64)  # does not chain on seq 50
    append(log, data)
    with pytest.raises(LogCorrupted) as caught:
        follower.poll()
    with pytest.raises(LogCorrupted) as full:
        read_log(log)
    assert (caught.value.seq, caught.value.reason) == (full.value.seq, full.value.reason)
    assert caught.value.path == log


def test_a_replaced_or_truncated_file_stops_the_follower(log: Path, tmp_path: Path) -> None:
    replaced, _ = LogFollower.replay(log)
    with replaced:
        other = tmp_path / "other.jsonl"
        other.write_bytes(chained_lines(60)[0])
        os.replace(other, log)
        with pytest.raises(LogCorrupted, match="replaced"):
            replaced.poll()
    truncated, _ = LogFollower.replay(log)
    with truncated:
        os.truncate(log, 100)
        with pytest.raises(LogCorrupted, match="shrank"):
            truncated.poll()


def test_a_log_created_after_the_follower_started_is_followed(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    follower, contents = LogFollower.replay(path)
    with follower:
        assert contents.events == []
        assert follower.poll() == []
        assert follower.caught_up
        path.write_bytes(chained_lines(5)[0])
        assert [e.seq for e in follower.poll()] == [1, 2, 3, 4, 5]


def test_catching_up_in_slices_returns_every_event_once(log: Path) -> None:
    with LogFollower(log) as follower:
        seen: list[int] = []
        seen += [e.seq for e in follower.poll(max_bytes=1)]
        while not follower.caught_up:
            seen += [e.seq for e in follower.poll(max_bytes=1)]
    assert seen == list(range(1, 51))
