"""Following `events.jsonl` from another process (the console, `corral logs -f`).

The follower never trusts a line it has not checked: each poll reads only the bytes appended
since the last one (the byte offset and the last hash are remembered in `FollowState`), verifies
them against the chain, and hands back complete events. A line still being written (no newline
yet) is left for the next poll. Polling a 1M-line log therefore costs one `fstat` when nothing
changed.

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

from corral.core.log.events import GENESIS_HASH, Event
from corral.core.log.reader import (
    Cursor,
    LogContents,
    LogCorrupted,
    open_log_fd,
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


def iter_new_events(path: Path, state: FollowState, *, max_bytes: int = BATCH_BYTES) -> list[Event]:
    """The verified events appended since the last call, in order (a list, possibly empty).

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
        info = os.fstat(fd)
        file_id = (info.st_dev, info.st_ino)
        if state.file_id is None:
            state.file_id = file_id
        elif state.file_id != file_id:
            raise _replaced(path, state, "was replaced by another file")
        if info.st_size < state.offset:
            raise _replaced(path, state, f"shrank below the {state.offset} bytes already read")
        if info.st_size == state.offset:
            state.caught_up = True
            return []
        events: list[Event] = []
        try:
            fragment = scan_fd(
                fd,
                state,
                events,
                end=info.st_size,
                parse_after=state.after_seq,
                max_bytes=max_bytes,
            )
        except LogCorrupted as exc:
            exc.path = path
            raise
        state.caught_up = state.offset + len(fragment) >= info.st_size
        return [event for event in events if event.seq > state.after_seq]
    finally:
        os.close(fd)


def _replaced(path: Path, state: FollowState, what: str) -> LogCorrupted:
    exc = LogCorrupted(
        state.last_seq,
        f"the file {what} while it was followed (events up to seq {state.last_seq} were read)",
    )
    exc.path = path
    return exc


def follow_log_sync(
    path: Path, after_seq: int = 0, *, poll: float = POLL_SECONDS, state: FollowState | None = None
) -> Iterator[Event]:
    """Yield verified events with seq > `after_seq` forever, as they are appended (`corral logs
    -f`). Stop by breaking out of the loop."""
    state = state if state is not None else FollowState(after_seq=after_seq)
    while True:
        yield from iter_new_events(path, state)
        if state.caught_up:
            time.sleep(poll)


async def follow_log(
    path: Path, after_seq: int = 0, *, poll: float = POLL_SECONDS, state: FollowState | None = None
) -> AsyncIterator[Event]:
    """Async `follow_log_sync` for the console: reads happen in a thread, so catching up on a
    large log never blocks the event loop. Stop by breaking out or cancelling."""
    state = state if state is not None else FollowState(after_seq=after_seq)
    while True:
        for event in await asyncio.to_thread(iter_new_events, path, state):
            yield event
        if state.caught_up:
            await asyncio.sleep(poll)
