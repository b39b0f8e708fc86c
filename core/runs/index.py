"""The runs index: each run's folded state cached next to its log, so `corral runs` and
`corral gc` replay only what changed since they last looked.

`fold-cache.json` in a run's directory holds the RunState folded from the log's first
`offset` bytes, with what identifies that log: its inode, size, mtime and ctime, and the seq,
hash and length of the last line folded (the marks are taken after that fold's read, and only
if the log had not grown meanwhile). For each run:

- log unchanged (same inode, size, mtime, ctime): the cached state, without reading the log;
- log grown (same inode, longer, and the cached last line still hashes to the cached head): only
  the appended lines are read, verified against the chain from that head, and applied;
- anything else (no cache, unreadable, another format or fold code, a shrunk or replaced log):
  the whole log is replayed, and the cache rewritten.

The cache is an optimisation only, never trusted over the log: any doubt means a full replay.
It is keyed on a digest of the fold's own code too, so a new corral never shows a state an old
fold computed. What it does not re-check is the part of a grown log it verified before (an edit
there is found by `corral verify` and by every full replay: the engine's resume, the console,
`corral status`). It is written atomically (core/atomic.py), and a failure to write it is
ignored. The format is versioned and small (one RunState, no events); durable fold checkpoints
for the engine are a separate, later design.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ValidationError

from corral.core.atomic import write_atomic
from corral.core.log import events as ev
from corral.core.log import fold_handlers, state_models
from corral.core.log import state as state_module
from corral.core.log.event_types import agent, base, human, integrity, lock, merge, run, stream
from corral.core.log.follower import FollowState, poll_fd
from corral.core.log.reader import Cursor, LogPathError, open_log_fd, read_fd
from corral.core.log.state import IntegrityBaseline, RunState, apply, fold
from corral.core.runs.rundir import RunDir

CACHE_NAME = "fold-cache.json"
CACHE_LIMIT = 16 << 20
"""A cache larger than this is not one corral wrote; it is ignored."""
_FOLD_MODULES = (
    ev,
    *(base, run, agent, stream, human, lock, merge, integrity),  # the event models, by family
    state_models,
    fold_handlers,
    state_module,
)
_fold_digest: str | None = None


class LogMark(BaseModel):
    """Which log, and how far into it, a cached state was folded from."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int
    offset: int
    """Byte offset just past the last line folded (a torn tail after it is not)."""
    last_seq: int
    head: str
    """sha256 of the last line folded (GENESIS_HASH for none)."""
    last_prev: str
    last_line: int
    """Length of that line with its newline, to check it again before folding on from it."""


class FoldCache(BaseModel):
    """`fold-cache.json`."""

    format: Literal["corral-fold-cache"] = "corral-fold-cache"
    version: Literal[1] = 1
    fold: str
    """Digest of the fold's source (events and state modules): another fold, another cache."""
    log: LogMark
    state: RunState
    integrity: IntegrityBaseline | None = None
    """RunState leaves its integrity baseline out of its JSON; kept here so a fold can go on."""


def cache_path(rundir: RunDir) -> Path:
    return rundir.path / CACHE_NAME


def fold_digest() -> str:
    """sha256 over the files of the modules that define what `fold` computes."""
    global _fold_digest
    if _fold_digest is None:
        digest = hashlib.sha256()
        for module in _FOLD_MODULES:
            digest.update(Path(module.__file__ or "").read_bytes())
        _fold_digest = digest.hexdigest()
    return _fold_digest


def run_state(rundir: RunDir) -> RunState:
    """The run's folded state, from the cache where it still holds (see the module docstring).

    Raises LogCorrupted as a full replay would; a missing log is an empty state.
    """
    path = rundir.events
    try:
        fd = open_log_fd(path)
    except FileNotFoundError:
        return RunState()
    try:
        info = os.fstat(fd)
        cached = load_cache(rundir)
        if cached is not None and (cached.log.dev, cached.log.ino) == (info.st_dev, info.st_ino):
            mark = cached.log
            if (mark.size, mark.mtime_ns, mark.ctime_ns) == (
                info.st_size,
                info.st_mtime_ns,
                info.st_ctime_ns,
            ):
                return _restored(cached)
            if info.st_size > mark.offset and _last_line_holds(fd, mark):
                return _fold_on(fd, rundir, cached)
        contents = read_fd(fd, path)
        state = fold(contents.events)
        last = contents.events[-1] if contents.events else None
        cursor = Cursor(
            offset=contents.end,
            last_seq=contents.last_seq,
            head=contents.head,
            last_prev=last.prev if last is not None else ev.GENESIS_HASH,
        )
        read_to = contents.end + len(contents.torn_tail or b"")
        _save(rundir, fd, read_to, cursor, state, _line_length(fd, contents.end, last))
        return state
    finally:
        os.close(fd)


def _restored(cached: FoldCache) -> RunState:
    state = cached.state
    state.integrity = cached.integrity
    return state


def _fold_on(fd: int, rundir: RunDir, cached: FoldCache) -> RunState:
    """Verify and apply just the lines appended since the cached point."""
    mark = cached.log
    follow = FollowState(
        offset=mark.offset,
        last_seq=mark.last_seq,
        head=mark.head,
        last_prev=mark.last_prev,
        after_seq=mark.last_seq,
        file_id=(mark.dev, mark.ino),
    )
    state = _restored(cached)
    last_line = mark.last_line
    while True:
        start = follow.offset
        events = poll_fd(fd, rundir.events, follow)
        for event in events:
            apply(state, event)
        if follow.offset > start:
            last_line = _line_length(fd, follow.offset, events[-1] if events else None)
        if follow.caught_up:
            break
    _save(rundir, fd, follow.seen_size, follow, state, last_line)
    return state


def _line_length(fd: int, end: int, last: ev.Event | None) -> int:
    """Length (with its newline) of the line that ends at `end`: found from the line's start,
    which is where the newline before it is."""
    if last is None or end == 0:
        return 0
    start = end - 1
    step = 4096
    while start > 0:
        lo = max(0, start - step)
        block = os.pread(fd, start - lo, lo)
        cut = block.rfind(b"\n")
        if cut >= 0:
            return end - (lo + cut + 1)
        start = lo
        step *= 2
    return end


def _last_line_holds(fd: int, mark: LogMark) -> bool:
    """The cached last line is still where it was, with the hash the cache names."""
    if mark.last_seq == 0:
        return mark.offset == 0
    if mark.last_line <= 0 or mark.last_line > mark.offset:
        return False
    line = os.pread(fd, mark.last_line, mark.offset - mark.last_line)
    return line.endswith(b"\n") and hashlib.sha256(line[:-1]).hexdigest() == mark.head


def load_cache(rundir: RunDir) -> FoldCache | None:
    """The run's cache if it is one this corral wrote; None for any doubt."""
    try:
        fd = open_log_fd(cache_path(rundir))  # no symlink, a regular file, never blocking
    except (OSError, LogPathError):
        return None
    try:
        size = os.fstat(fd).st_size
        if size > CACHE_LIMIT:
            return None
        data = os.pread(fd, size, 0)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        cached = FoldCache.model_validate_json(data)
    except ValidationError:
        return None
    return cached if cached.fold == fold_digest() else None


def _save(
    rundir: RunDir, fd: int, read_to: int, cursor: Cursor, state: RunState, last_line: int
) -> None:
    """Cache `state`, folded from the log's first `cursor.offset` bytes, when the log is still
    the `read_to` bytes that were read: a log that grew meanwhile is folded on next time.
    The marks are taken after the read, so any later write moves them."""
    info = os.fstat(fd)
    if info.st_size != read_to:
        return
    mark = LogMark(
        dev=info.st_dev,
        ino=info.st_ino,
        size=info.st_size,
        mtime_ns=info.st_mtime_ns,
        ctime_ns=info.st_ctime_ns,
        offset=cursor.offset,
        last_seq=cursor.last_seq,
        head=cursor.head,
        last_prev=cursor.last_prev,
        last_line=last_line,
    )
    cached = FoldCache(fold=fold_digest(), log=mark, state=state, integrity=state.integrity)
    # an optimisation only: a read-only run directory lists as before, just slower
    with contextlib.suppress(OSError):
        write_atomic(cache_path(rundir), cached.model_dump_json().encode())
