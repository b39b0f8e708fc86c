"""Following `events.jsonl` from another process (the console, `corral logs -f`, `corral runs`).

The follower never trusts a line it has not checked, and never reads a byte twice: it remembers
where it is (`FollowState`: the offset past the last verified line, that line's seq and hash,
and the size and mtime the file had when it last read), and each poll reads only what was
appended, verifies just those lines against the chain and hands back complete events. A line
still being written (no newline yet) is left for the next poll.

`LogFollower` keeps the file open, so an idle poll is one `os.fstat` and nothing else, whatever
the size of the log (bench/bench_follow.py counts it on a 1M-line log). `iter_new_events` is the
same step for a caller that follows many logs and must not hold a descriptor for each (the
console's runs list): it opens the file per call.

A follower that finds the file shrunk below what it verified, or replaced by another file, stops
with LogCorrupted rather than starting over: it has handed out those events already (the console
folded them, `logs -f` acted on them), and a log that loses its history is exactly what the
chain exists to expose. Re-attaching (a fresh replay) reads the new file from its start. A
shrink that only removes an unterminated tail (the engine's repair, E4) is no error.

Note (E2): a follower reads the page cache, so it can see a line a few milliseconds before the
engine's fsync for it returns; only a machine crash (not an engine crash) could then take it
back, and the chain check would report that on the next poll.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from corral.core.log.events import GENESIS_HASH, Event
from corral.core.log.reader import (
    Cursor,
    LogContents,
    LogCorrupted,
    open_log_fd,
    read_fd,
    scan_fd,
)

POLL_SECONDS = 0.05
"""Follow latency when idle; the console redraws at a bounded rate anyway (docs/performance.md)."""
BATCH_BYTES = 4 << 20
"""Bytes verified per poll, so catching up on a big log yields events early and in slices."""


@dataclass
class FollowState(Cursor):
    """Where a follower is: events with seq <= `after_seq` are checked but not returned."""

    after_seq: int = 0
    file_id: tuple[int, int] | None = None
    """(st_dev, st_ino) of the followed file, to notice it being replaced."""
    caught_up: bool = False
    """True when the last poll reached the end of the file."""
    seen_size: int = -1
    """File size at the last read (past `offset` when a partial line was there)."""
    seen_mtime_ns: int = -1
    """File mtime at the last read: size and mtime unchanged means nothing to read."""

    @classmethod
    def after(cls, contents: LogContents) -> FollowState:
        """Continue right after a `read_log` replay without reading the log again."""
        return cls(
            offset=contents.end,
            last_seq=contents.last_seq,
            head=contents.head,
            last_prev=contents.events[-1].prev if contents.events else GENESIS_HASH,
            after_seq=contents.last_seq,
        )


def poll_fd(
    fd: int, path: Path, state: FollowState, *, max_bytes: int = BATCH_BYTES, held: bool = False
) -> list[Event]:
    """One follow step on an open descriptor: one `fstat`, and reads only if the file changed.

    `held`: the descriptor stays open between polls (LogFollower), so a replaced file shows as
    our inode losing its last name (st_nlink 0) rather than as another inode at `path`.
    """
    info = os.fstat(fd)
    if held and info.st_nlink == 0:
        raise _replaced(path, state, "was replaced or removed")
    file_id = (info.st_dev, info.st_ino)
    if state.file_id is None:
        state.file_id = file_id
    elif state.file_id != file_id:
        raise _replaced(path, state, "was replaced by another file")
    size = info.st_size
    if size < state.offset:
        raise _replaced(path, state, f"shrank below the {state.offset} bytes already read")
    if size == state.seen_size and info.st_mtime_ns == state.seen_mtime_ns:
        state.caught_up = True
        return []
    events: list[Event] = []
    try:
        # A partial last line is read again next time the file changes (it is short, and a
        # repair may have cut it meanwhile).
        rest = scan_fd(
            fd, state, events, end=size, parse_after=state.after_seq, max_bytes=max_bytes
        )
    except LogCorrupted as exc:
        exc.path = path
        raise
    state.caught_up = state.offset + len(rest) >= size
    if state.caught_up:
        state.seen_size, state.seen_mtime_ns = size, info.st_mtime_ns
    return [event for event in events if event.seq > state.after_seq]


def _replaced(path: Path, state: FollowState, what: str) -> LogCorrupted:
    exc = LogCorrupted(
        state.last_seq,
        f"the file {what} while it was followed (events up to seq {state.last_seq} were read)",
    )
    exc.path = path
    return exc


def iter_new_events(path: Path, state: FollowState, *, max_bytes: int = BATCH_BYTES) -> list[Event]:
    """The verified events appended since the last call, in order (a list, possibly empty);
    opens the file for this call only (LogFollower keeps it open).

    Updates `state` in place; a missing file yields nothing (the engine has not created it yet).
    Raises LogCorrupted when a new line breaks the chain, or when the file shrank or was
    replaced under the follower (lines it already returned are gone).
    """
    try:
        fd = open_log_fd(path)
    except FileNotFoundError:
        state.caught_up = True
        return []
    try:
        return poll_fd(fd, path, state, max_bytes=max_bytes)
    finally:
        os.close(fd)


class LogFollower:
    """A followed log with its file kept open: `poll()` costs one `fstat` while nothing is
    appended. Close it (or use it as a context manager) when done."""

    def __init__(self, path: Path, state: FollowState | None = None) -> None:
        self.path = path
        self.state = state if state is not None else FollowState()
        self._fd: int | None = None

    @classmethod
    def after(cls, path: Path, contents: LogContents) -> LogFollower:
        """Follow on from a `read_log(path)` replay."""
        return cls(path, FollowState.after(contents))

    @classmethod
    def on(cls, path: Path, fd: int, state: FollowState) -> LogFollower:
        """Follow through `fd` (which it then owns) from `state`, reached by another reader
        (a fold from the run's checkpoint, core/runs/index.py)."""
        follower = cls(path, state)
        follower._fd = fd
        return follower

    @classmethod
    def replay(cls, path: Path) -> tuple[LogFollower, LogContents]:
        """Read the whole log (verified, as `read_log`) and follow on through the same open
        file, so nothing can slip in between the replay and the first poll."""
        follower = cls(path)
        try:
            fd = open_log_fd(path)
        except FileNotFoundError:
            return follower, LogContents(events=[])
        try:
            contents = read_fd(fd, path)
        except BaseException:
            os.close(fd)
            raise
        follower.state = FollowState.after(contents)
        follower._fd = fd
        return follower, contents

    @property
    def caught_up(self) -> bool:
        return self.state.caught_up

    def poll(self, *, max_bytes: int = BATCH_BYTES) -> list[Event]:
        """The verified events appended since the last poll (see `iter_new_events`)."""
        if self._fd is None:
            try:
                self._fd = open_log_fd(self.path)
            except FileNotFoundError:
                self.state.caught_up = True
                return []
        return poll_fd(self._fd, self.path, self.state, max_bytes=max_bytes, held=True)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> LogFollower:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def follow_log_sync(
    path: Path, after_seq: int = 0, *, poll: float = POLL_SECONDS, state: FollowState | None = None
) -> Iterator[Event]:
    """Yield verified events with seq > `after_seq` forever, as they are appended. Stop by
    breaking out of the loop (the file is closed then)."""
    with LogFollower(path, state if state is not None else FollowState(after_seq=after_seq)) as f:
        while True:
            yield from f.poll()
            if f.caught_up:
                time.sleep(poll)


async def follow_log(
    path: Path, after_seq: int = 0, *, poll: float = POLL_SECONDS, state: FollowState | None = None
) -> AsyncIterator[Event]:
    """Async `follow_log_sync`: reads happen in a thread, so catching up on a large log never
    blocks the event loop. Stop by breaking out or cancelling."""
    with LogFollower(path, state if state is not None else FollowState(after_seq=after_seq)) as f:
        while True:
            for event in await asyncio.to_thread(f.poll):
                yield event
            if f.caught_up:
                await asyncio.sleep(poll)
