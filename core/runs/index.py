"""Checkpoints: each run's folded state kept durably beside its log, so nobody replays a large
log from its start (the console, `corral status`, `corral run --resume`, `corral runs`, `gc`).

`checkpoint.json` in a run's directory holds the RunState folded from the log's first `offset`
bytes, with what proves which bytes those were: the seq, sha256 and length of the last line
folded (the anchor), the sha256 of all `offset` bytes (the prefix), and the log's inode, size,
mtime and ctime when it was taken. Folding a run (`fold_fd`):

- the caller only lists runs (`trust_unchanged`: `corral runs`, `gc`, the console's runs list):
  a log unchanged (same inode, size, mtime, ctime) is not read; a grown one whose anchor holds
  is folded on from the anchor (the tail verified against the chain) without hashing the prefix
  again or rewriting the checkpoint: a few ms, where the prefix digest costs 0.3 s for a
  1M-event log. The engine refreshes the checkpoint every CHECKPOINT_EVERY events, so that tail
  stays short; an edit before the anchor is found by everyone below, not by a listing;
- everyone else (the console, `corral status`, the engine's resume): when the anchor line is
  still where it was with the hash the checkpoint names and the log's first `offset` bytes
  still hash to the prefix digest: only the lines after the anchor
  are read, verified against the chain from the anchor and applied. The prefix digest is one
  streamed sha256 (0.2 s for a 200 MiB log, constant memory), so an edited or removed line before
  the checkpoint is found as surely as by a full replay;
- anything else (no checkpoint, unreadable, too big, another format or fold code, a shrunk,
  replaced or edited log): the whole log is replayed, streamed (parsed and applied slice by
  slice, never all held), and the checkpoint rewritten. A log whose chain is broken raises
  LogCorrupted there, as without checkpoints.

A checkpoint is never trusted over the log (docs/reliability.md E8): it only stands in for bytes
it proves unchanged, and it is keyed on a digest of the fold's own code, so a new corral never
resumes from a state an old fold computed. Who writes it: whoever folded the log and may write the run directory (the
engine every CHECKPOINT_EVERY events and when it stops, readers lazily); it is replaced
atomically (core/atomic.py, E5), is at most CHECKPOINT_LIMIT bytes, and a failure to write it (a
reader without write permission) is ignored. Two writers racing replace it whole, each with a
valid checkpoint. What it holds beyond the state: the `agent_started` events (the engine's
resume reattaches to attempts through them).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ValidationError

from corral.core.atomic import write_atomic
from corral.core.log import events as ev
from corral.core.log import fold_handlers, state_models
from corral.core.log import state as state_module
from corral.core.log.event_types import agent, base, human, integrity, lock, merge, run, stream
from corral.core.log.follower import FollowState
from corral.core.log.reader import (
    CHUNK_BYTES,
    LogContents,
    LogCorrupted,
    LogPathError,
    open_log_fd,
    scan_fd,
)
from corral.core.log.state import IntegrityBaseline, RunState, apply
from corral.core.runs.rundir import RunDir

CHECKPOINT_NAME = "checkpoint.json"
CHECKPOINT_LIMIT = 16 << 20
"""A checkpoint larger than this is neither written nor read (the state of a sane run is KBs)."""
CHECKPOINT_EVERY = 10_000
"""The engine refreshes the checkpoint each time this many events were appended."""
_REPLAY_SLICE = 1 << 20
"""Bytes parsed and applied at a time by a full replay: memory stays bounded by this."""
_FOLD_MODULES = (
    ev,
    *(base, run, agent, stream, human, lock, merge, integrity),  # the event models, by family
    state_models,
    fold_handlers,
    state_module,
)
_fold_digest: str | None = None


class LogMark(BaseModel):
    """Which log, and how far into it, a checkpointed state was folded from."""

    dev: int
    ino: int
    size: int
    """-1 when the log grew while it was read: then only the anchor and prefix vouch for it."""
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
    prefix: str
    """sha256 of the log's first `offset` bytes."""


class Checkpoint(BaseModel):
    """`checkpoint.json`."""

    format: Literal["corral-checkpoint"] = "corral-checkpoint"
    version: Literal[1] = 1
    fold: str
    """Digest of the fold's source (events and state modules): another fold, another cache."""
    log: LogMark
    state: RunState
    integrity: IntegrityBaseline | None = None
    """RunState leaves its integrity baseline out of its JSON; kept here so a fold can go on."""
    started: list[str] = []
    """The log's `agent_started` lines, as written (parsed like the log's own lines)."""


@dataclass
class Folded:
    """A run's state and where its log was read to, so a follower can go on from there."""

    state: RunState
    follow: FollowState
    """After the last verified line; `after_seq` is its seq."""
    started: dict[tuple[str, int], ev.AgentStarted] = field(default_factory=dict)
    tail: list[ev.Event] = field(default_factory=list)
    """The events read after the checkpoint (all of them after a full replay: none kept)."""
    from_seq: int = 0
    """Seq of the checkpoint folded on from; 0 for a full replay."""
    from_offset: int = -1
    """Where the events of `tail` start in the log; -1: `tail` holds none of the log's lines."""
    torn_tail: bytes | None = None


def checkpoint_path(rundir: RunDir) -> Path:
    return rundir.path / CHECKPOINT_NAME


def fold_digest() -> str:
    """sha256 over the files of the modules that define what `fold` computes."""
    global _fold_digest
    if _fold_digest is None:
        digest = hashlib.sha256()
        for module in _FOLD_MODULES:
            digest.update(Path(module.__file__ or "").read_bytes())
        _fold_digest = digest.hexdigest()
    return _fold_digest


def run_state(rundir: RunDir, *, trust_unchanged: bool = True) -> RunState:
    """The run's folded state, through its checkpoint where that still holds (see the module
    docstring). Raises LogCorrupted as a full replay would; a missing log is an empty state."""
    try:
        fd = open_log_fd(rundir.events)
    except FileNotFoundError:
        return RunState()
    try:
        return fold_fd(fd, rundir, trust_unchanged=trust_unchanged).state
    finally:
        os.close(fd)


def fold_fd(fd: int, rundir: RunDir, *, trust_unchanged: bool = False, save: bool = True) -> Folded:
    """Fold the log open on `fd` from its checkpoint, or in full when none holds."""
    info = os.fstat(fd)
    cached = load_checkpoint(rundir)
    if cached is not None and (cached.log.dev, cached.log.ino) == (info.st_dev, info.st_ino):
        mark = cached.log
        unchanged = (mark.size, mark.mtime_ns, mark.ctime_ns) == (
            info.st_size,
            info.st_mtime_ns,
            info.st_ctime_ns,
        )
        if unchanged and trust_unchanged:
            return _restored(cached)
        if info.st_size >= mark.offset and _last_line_holds(fd, mark):
            if trust_unchanged:  # a listing: the prefix is not hashed again, nothing written
                folded = _fold_on(fd, rundir, cached, None)
                if not save or len(folded.tail) < CHECKPOINT_EVERY:
                    return folded
                # a long tail (no engine refreshing the checkpoint): checkpoint it after all
            prefix = _prefix_digest(fd, mark.offset)
            if prefix.hexdigest() == mark.prefix:
                folded = _fold_on(fd, rundir, cached, prefix)
                if save and folded.follow.offset > mark.offset:
                    _save(rundir, fd, folded, prefix)
                return folded
    prefix = hashlib.sha256()
    folded = replay_fd(fd, rundir.events, prefix)
    if save:
        _save(rundir, fd, folded, prefix)
    return folded


def refresh(rundir: RunDir) -> None:
    """Bring the checkpoint up to the log's end (the engine, every CHECKPOINT_EVERY events)."""
    try:
        fd = open_log_fd(rundir.events)
    except (OSError, LogPathError):
        return
    try:
        fold_fd(fd, rundir)
    except OSError:
        pass  # an optimisation only; the engine's own reads and appends report a failing disk
    finally:
        os.close(fd)


def log_reader(rundir: RunDir, out: list[Folded]) -> Callable[[int, Path], LogContents]:
    """A reader for `EventWriter.open` that folds through the checkpoint: the contents it returns
    hold only the events after the checkpoint, and the fold is appended to `out`."""

    def read(fd: int, path: Path) -> LogContents:
        folded = fold_fd(fd, rundir)
        out.append(folded)
        cur = folded.follow
        return LogContents(
            events=folded.tail,
            head=cur.head,
            torn_tail=folded.torn_tail,
            end=cur.offset,
            seq=cur.last_seq,
        )

    return read


def _restored(cached: Checkpoint) -> Folded:
    state = cached.state.model_copy(deep=True)  # `cached` may be folded on again
    state.integrity = cached.integrity
    mark = cached.log
    follow = FollowState(
        offset=mark.offset,
        last_seq=mark.last_seq,
        head=mark.head,
        last_prev=mark.last_prev,
        after_seq=mark.last_seq,
        file_id=(mark.dev, mark.ino),
    )
    started = {}
    for line in cached.started:
        event = ev.EventAdapter.validate_json(line)
        if isinstance(event, ev.AgentStarted):
            started[(event.agent, event.attempt)] = event
    return Folded(
        state=state,
        follow=follow,
        started=started,
        from_seq=mark.last_seq,
        from_offset=mark.offset,
    )


def _prefix_digest(fd: int, end: int) -> hashlib._Hash:
    """sha256 of the first `end` bytes, streamed (hashlib drops the GIL while it hashes)."""
    digest = hashlib.sha256()
    pos = 0
    while pos < end:
        chunk = os.pread(fd, min(CHUNK_BYTES, end - pos), pos)
        if not chunk:
            break
        digest.update(chunk)
        pos += len(chunk)
    return digest


def _extend_digest(fd: int, digest: hashlib._Hash, start: int, end: int) -> None:
    pos = start
    while pos < end:
        chunk = os.pread(fd, min(CHUNK_BYTES, end - pos), pos)
        if not chunk:
            break
        digest.update(chunk)
        pos += len(chunk)


def _fold_on(fd: int, rundir: RunDir, cached: Checkpoint, prefix: hashlib._Hash | None) -> Folded:
    """Verify and apply just the lines after the checkpoint's anchor."""
    folded = _restored(cached)
    follow = folded.follow
    start = follow.offset
    events: list[ev.Event] = []
    try:
        rest = scan_fd(fd, follow, events, end=os.fstat(fd).st_size)
    except LogCorrupted as exc:
        exc.path = rundir.events
        raise
    for event in events:
        apply(folded.state, event)
        if isinstance(event, ev.AgentStarted):
            folded.started[(event.agent, event.attempt)] = event
    follow.after_seq = follow.last_seq
    folded.tail = events
    folded.torn_tail = rest or None
    if prefix is not None:
        _extend_digest(fd, prefix, start, follow.offset)
    return folded


def replay_fd(fd: int, path: Path, prefix: hashlib._Hash) -> Folded:
    """The whole log verified and folded slice by slice (no event list kept); `prefix` is fed
    the bytes of every verified line."""
    state = RunState()
    follow = FollowState()
    started: dict[tuple[str, int], ev.AgentStarted] = {}
    size = os.fstat(fd).st_size
    window = _REPLAY_SLICE
    try:
        while True:
            start = follow.offset
            end = min(size, start + window)
            events: list[ev.Event] = []
            rest = scan_fd(fd, follow, events, end=end)
            for event in events:
                apply(state, event)
                if isinstance(event, ev.AgentStarted):
                    started[(event.agent, event.attempt)] = event
            _extend_digest(fd, prefix, start, follow.offset)
            if end >= size:
                break
            # the slice ends inside a line: read on from its start (a longer one if needed)
            window = _REPLAY_SLICE if follow.offset > start else window * 2
    except LogCorrupted as exc:
        exc.path = path
        raise
    follow.after_seq = follow.last_seq
    return Folded(state=state, follow=follow, started=started, torn_tail=rest or None)


def recent_events(
    fd: int, folded: Folded, max_bytes: int
) -> tuple[list[ev.Event], ev.Event | None]:
    """The log's latest events, read backwards from the end of what `folded` verified (at most
    `max_bytes` before its tail, then its tail), and seq 1: what an event tail shows, without
    parsing the log. Those bytes were verified by the fold (the prefix digest or the replay)."""
    end = folded.from_offset if folded.from_offset >= 0 else folded.follow.offset
    start = max(0, end - max_bytes)
    data = os.pread(fd, end - start, start) if end > start else b""
    if start > 0:
        data = data[data.find(b"\n") + 1 :]
    validate = ev.EventAdapter.validate_json
    recent = [validate(line) for line in data.split(b"\n") if line]
    if folded.from_offset >= 0:
        recent.extend(folded.tail)
    first: ev.Event | None = recent[0] if recent and recent[0].seq == 1 else None
    if first is None and folded.follow.offset > 0:
        first = validate(os.pread(fd, _line_length(fd, _first_newline(fd)), 0)[:-1])
    return recent, first


def _first_newline(fd: int) -> int:
    """Offset just past the log's first newline."""
    pos, step = 0, 1 << 16
    while True:
        block = os.pread(fd, step, pos)
        cut = block.find(b"\n")
        if cut >= 0 or not block:
            return pos + cut + 1 if cut >= 0 else pos
        pos += len(block)


def _line_length(fd: int, end: int) -> int:
    """Length (with its newline) of the line that ends at `end`: found from the line's start,
    which is where the newline before it is."""
    if end == 0:
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
    """The checkpoint's anchor line is still where it was, with the hash it names."""
    if mark.last_seq == 0:
        return mark.offset == 0
    if mark.last_line <= 0 or mark.last_line > mark.offset:
        return False
    line = os.pread(fd, mark.last_line, mark.offset - mark.last_line)
    if not line.endswith(b"\n") or hashlib.sha256(line[:-1]).hexdigest() != mark.head:
        return False
    return line.startswith(b'{"seq":%d,' % mark.last_seq)


def load_checkpoint(rundir: RunDir) -> Checkpoint | None:
    """The run's checkpoint if it is one this corral wrote; None for any doubt."""
    try:
        fd = open_log_fd(checkpoint_path(rundir))  # no symlink, a regular file, never blocking
    except (OSError, LogPathError):
        return None
    try:
        size = os.fstat(fd).st_size
        if size > CHECKPOINT_LIMIT:
            return None
        data = os.pread(fd, size, 0)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        cached = Checkpoint.model_validate_json(data)
    except ValidationError:
        return None
    return cached if cached.fold == fold_digest() else None


def _save(rundir: RunDir, fd: int, folded: Folded, prefix: hashlib._Hash) -> None:
    """Checkpoint `folded`, the fold of the log's first `follow.offset` bytes (whose digest is
    `prefix`). The size and times are marked only when the log did not grow since it was read
    (taken after the read, so any later write moves them)."""
    cur = folded.follow
    info = os.fstat(fd)
    read_to = cur.offset + len(folded.torn_tail or b"")
    still = info.st_size == read_to
    mark = LogMark(
        dev=info.st_dev,
        ino=info.st_ino,
        size=info.st_size if still else -1,
        mtime_ns=info.st_mtime_ns if still else -1,
        ctime_ns=info.st_ctime_ns if still else -1,
        offset=cur.offset,
        last_seq=cur.last_seq,
        head=cur.head,
        last_prev=cur.last_prev,
        last_line=_line_length(fd, cur.offset),
        prefix=prefix.hexdigest(),
    )
    started = [event.model_dump_json() for event in folded.started.values()]
    state = folded.state
    checkpoint = Checkpoint(
        fold=fold_digest(), log=mark, state=state, integrity=state.integrity, started=started
    )
    data = checkpoint.model_dump_json().encode()
    if len(data) > CHECKPOINT_LIMIT:
        return
    # an optimisation only: a reader without write permission just folds from further back
    with contextlib.suppress(OSError):
        write_atomic(checkpoint_path(rundir), data)
