"""Reading `events.jsonl`: replay, verification, torn-tail repair (E4) and the errors they raise.

Every complete line is parsed straight with `EventAdapter.validate_json` (the fastest replay,
docs/performance.md) and checked against the sequence numbers and the hash chain: line N carries the
sha256 of line N-1's bytes (without the newline) in `prev`. An unterminated last fragment is a
torn tail (a write cut short by a crash) and is not an error; anything else is corruption, and
the reader stops there and names the sequence number. The writer lives in `writer`,
incremental following in `follower`; import all of them from `corral.core.log`.
"""

from __future__ import annotations

import contextlib
import errno
import gc
import hashlib
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import ValidationError

from corral.core.atomic import fsync_dir
from corral.core.log.events import GENESIS_HASH, Event, EventAdapter
from corral.core.log.log_errors import LogCorrupted as LogCorrupted
from corral.core.log.log_errors import LogPathError as LogPathError
from corral.core.log.log_format import check_format

CHUNK_BYTES = 8 << 20
"""Read size: big enough that a 1M-line replay makes few system calls, small enough for memory."""
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK
_PREFIX = re.compile(rb'\{"seq":(\d+),"prev":"([0-9a-f]{64})"')
"""The head of every line `model_dump_json` writes; lets a follower skip old lines unparsed."""


@dataclass
class LogContents:
    """Everything `read_log` found: the verified events, the chain head and any torn tail."""

    events: list[Event]
    head: str = GENESIS_HASH
    """sha256 of the last complete line; GENESIS_HASH for an empty log."""
    torn_tail: bytes | None = None
    """The unterminated last fragment, if a crash cut a write short."""
    end: int = 0
    """Byte offset just past the last complete line, where a follower continues."""
    seq: int | None = None
    """Seq of the last complete line, when `events` holds only the last ones (a checkpoint's
    tail, core/runs/index.py); None: the seq of the last event."""

    @property
    def last_seq(self) -> int:
        if self.seq is not None:
            return self.seq
        return self.events[-1].seq if self.events else 0


@dataclass
class VerifyResult:
    """What `corral verify` prints. A torn tail is a problem (`ok` is False) but not corruption:
    `status` tells them apart, and `first_bad_seq` is only set for corruption."""

    ok: bool
    events: int
    head: str
    first_bad_seq: int | None = None
    problem: str = ""
    status: Literal["ok", "torn_tail", "corrupted", "missing"] = "ok"
    torn_tail_bytes: int = 0


@dataclass
class Cursor:
    """How far a scan got: the end of the last verified line, its seq and its hash."""

    offset: int = 0
    """Byte offset just past the last verified line."""
    last_seq: int = 0
    head: str = GENESIS_HASH
    last_prev: str = GENESIS_HASH
    """`prev` of the last verified line: the head before it, if that line proves edited."""


def open_log_fd(path: Path, flags: int = _READ_FLAGS, mode: int = 0o600) -> int:
    """Open without following a symlink and insist on a regular file (L8): a planted link or
    FIFO must not redirect or block the engine."""
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise LogPathError(
                f"{path} is a symbolic link; corral never follows links for its event log, since "
                f"a planted link could redirect the engine's writes. Remove the link (`rm {path}`) "
                "and resume the run"
            ) from exc
        raise
    try:
        mode_bits = os.fstat(fd).st_mode
    except BaseException:
        os.close(fd)
        raise
    if not stat.S_ISREG(mode_bits):
        os.close(fd)
        raise LogPathError(
            f"{path} is not a regular file; the event log must be a plain file. Move it away "
            "and resume the run"
        )
    return fd


def _error_summary(exc: ValidationError) -> str:
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    return f"{where}: {first['msg']}" if where else str(first["msg"])


def verify_lines(
    lines: list[bytes], cur: Cursor, out: list[Event] | None, parse_after: int = 0
) -> None:
    """Check `lines` (complete, without newlines) against the chain in `cur`, advancing it line
    by line so that, when one fails, `cur` names the last line that passed its own checks.

    Lines with seq <= `parse_after` are only hashed and matched against a strict prefix (their
    bytes are still covered by the next line's `prev`); the others are fully parsed and appended
    to `out`.
    """
    seq, head, offset, last_prev = cur.last_seq, cur.head, cur.offset, cur.last_prev
    validate = EventAdapter.validate_json
    sha256 = hashlib.sha256
    try:
        for line in lines:
            expected = seq + 1
            event: Event | None = None
            if expected == 1:  # once a log: refuse a newer format before parsing it
                check_format(line)
            match = _PREFIX.match(line) if expected <= parse_after else None
            if match is not None:
                line_seq, prev = int(match[1]), match[2].decode()
            else:
                try:
                    event = validate(line)
                except ValidationError as exc:
                    raise LogCorrupted(
                        expected,
                        f"the line after seq {seq} is not a valid event ({_error_summary(exc)})",
                    ) from None
                line_seq, prev = event.seq, event.prev
            if line_seq != expected:
                if line_seq > expected:
                    why = f"seq {expected} is missing: the next line carries seq {line_seq}"
                    raise LogCorrupted(expected, f"{why} (a lost or deleted line)")
                raise LogCorrupted(
                    expected,
                    f"the line after seq {seq} carries seq {line_seq} "
                    "(a duplicated, reordered or edited line)",
                )
            if prev != head:
                if expected == 1:
                    raise LogCorrupted(1, "seq 1 does not start the hash chain (an edited line)")
                raise LogCorrupted(
                    expected - 1,
                    f"seq {expected} does not carry the hash of seq {expected - 1}, so seq "
                    f"{expected - 1} was changed after it was written (or the prev field of seq "
                    f"{expected} was)",
                    detected_at=expected,
                )
            last_prev = prev
            head = sha256(line).hexdigest()
            seq = expected
            offset += len(line) + 1
            if event is not None and out is not None:
                out.append(event)
    finally:
        cur.last_seq, cur.head, cur.offset, cur.last_prev = seq, head, offset, last_prev


def scan_fd(
    fd: int,
    cur: Cursor,
    out: list[Event] | None,
    *,
    end: int,
    parse_after: int = 0,
    max_bytes: int | None = None,
) -> bytes:
    """Verify the complete lines between `cur.offset` and `end`, in CHUNK_BYTES reads; return
    the bytes read past the last verified line (a torn tail when `end` is the end of the file).

    Replay, `verify_log` and the follower all scan through here. With `max_bytes`, it stops
    between chunks once that many bytes were verified; `cur.offset + len(returned)` is then how
    far it read, so the follower can tell a stop from the end."""
    start = pos = cur.offset
    rest = b""
    while pos < end:
        chunk = os.pread(fd, min(CHUNK_BYTES, end - pos), pos)
        if not chunk:
            break
        pos += len(chunk)
        buf = rest + chunk if rest else chunk
        cut = buf.rfind(b"\n")
        if cut < 0:
            rest = buf
            continue
        verify_lines(buf[:cut].split(b"\n"), cur, out, parse_after)
        rest = buf[cut + 1 :]
        if max_bytes is not None and cur.offset - start >= max_bytes:
            break
    return rest


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Replay keeps millions of new objects alive, and every full collection rescans them all:
    pausing the cycle collector cuts a 1M-line replay by about 40% (bench/bench_eventlog.py).
    Parsing creates no cycles; reference counting still frees everything as usual."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def read_fd(fd: int, path: Path) -> LogContents:
    """`read_log` on an already opened descriptor (the writer reads through its own fd)."""
    cur = Cursor()
    events: list[Event] = []
    try:
        with _cyclic_gc_paused():
            fragment = scan_fd(fd, cur, events, end=os.fstat(fd).st_size)
    except LogCorrupted as exc:
        exc.path = path
        raise
    return LogContents(events=events, head=cur.head, torn_tail=fragment or None, end=cur.offset)


def read_log(path: Path) -> LogContents:
    """Replay the whole log, verified. Missing file: empty contents (a run not yet started).

    Raises LogCorrupted at the first bad complete line; a torn last fragment is returned in
    `torn_tail`, not raised (E4).
    """
    try:
        fd = open_log_fd(path)
    except FileNotFoundError:
        return LogContents(events=[])
    try:
        return read_fd(fd, path)
    finally:
        os.close(fd)


def verify_log(path: Path) -> VerifyResult:
    """Check the whole log without keeping the events, for `corral verify`."""
    try:
        fd = open_log_fd(path)
    except FileNotFoundError:
        return VerifyResult(
            ok=False,
            events=0,
            head=GENESIS_HASH,
            problem=f"{path} does not exist; check the run id (`corral runs` lists them)",
            status="missing",
        )
    cur = Cursor()
    try:
        fragment = scan_fd(fd, cur, None, end=os.fstat(fd).st_size)
    except LogCorrupted as exc:
        exc.path = path
        edited = exc.seq < exc.detected_at  # the last line that passed was itself edited
        return VerifyResult(
            ok=False,
            events=cur.last_seq - 1 if edited else cur.last_seq,
            head=cur.last_prev if edited else cur.head,
            first_bad_seq=exc.seq,
            problem=str(exc),
            status="corrupted",
        )
    finally:
        os.close(fd)
    if fragment:
        return VerifyResult(
            ok=False,
            events=cur.last_seq,
            head=cur.head,
            problem=(
                f"{path.name} ends with an unterminated line of {len(fragment)} bytes after seq "
                f"{cur.last_seq} (a write cut short by a crash; never acknowledged). The engine "
                "quarantines it when the run resumes; the events before it are intact"
            ),
            status="torn_tail",
            torn_tail_bytes=len(fragment),
        )
    return VerifyResult(ok=True, events=cur.last_seq, head=cur.head)


def _last_newline_end(fd: int, size: int) -> int:
    """Offset just past the last newline (0 if none), reading backwards from the end."""
    pos = size
    while pos > 0:
        step = min(CHUNK_BYTES, pos)
        block = os.pread(fd, step, pos - step)
        cut = block.rfind(b"\n")
        if cut >= 0:
            return pos - step + cut + 1
        pos -= step
    return 0


def quarantine_fragment(path: Path, fragment: bytes) -> Path:
    """Save a torn fragment durably as `<log>.torn-<n>` (the first free n; an earlier one is
    never overwritten): temp file, fsync, hard link to the final name, fsync the directory (E5)."""
    directory = path.parent
    tmp_fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{path.name}.torn.")
    try:
        try:
            view = memoryview(fragment)
            while view:
                view = view[os.write(tmp_fd, view) :]
            os.fsync(tmp_fd)
        finally:
            os.close(tmp_fd)
        n = 1
        while True:
            target = directory / f"{path.name}.torn-{n}"
            try:
                os.link(tmp_name, target)
            except FileExistsError:
                n += 1
                continue
            break
    finally:
        os.unlink(tmp_name)
    fsync_dir(directory)
    return target


def repair_fd(fd: int, path: Path) -> Path | None:
    """`repair_torn_tail` on an fd opened for writing; the quarantine is durable before the
    truncation, so a crash in between only leaves the fragment quarantined twice."""
    size = os.fstat(fd).st_size
    end = _last_newline_end(fd, size)
    if end == size:
        return None
    fragment = os.pread(fd, size - end, end)
    target = quarantine_fragment(path, fragment)
    os.ftruncate(fd, end)
    os.fsync(fd)
    fsync_dir(path.parent)
    return target


def repair_torn_tail(path: Path) -> Path | None:
    """Quarantine an unterminated last fragment and cut the log back to its last newline (E4).

    Returns the quarantine file, or None when the log ends cleanly (or does not exist). Only
    the writer (or `corral verify --repair` with the engine stopped) may call this.
    """
    try:
        fd = open_log_fd(path, os.O_RDWR)
    except FileNotFoundError:
        return None
    try:
        return repair_fd(fd, path)
    finally:
        os.close(fd)
