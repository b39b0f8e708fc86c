"""The one writer of `events.jsonl` (E1), with group commit (E2) and fail-stop on errors (E3).

`append` stamps `seq` and `prev` at call time (so file order is call order), queues the line
and waits. One writer task takes everything queued, writes it with a single `os.write` and
fsyncs once in a dedicated thread; appends made meanwhile queue up for the next round, which
is what batches them (no timer). An append returns, and listeners see its event, only after
the fsync covering it returned. After any write or fsync error the log is read-only for good:
an fsync is never retried (PostgreSQL's "fsyncgate": a failed fsync may have dropped the data).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import typing
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import cast

from pydantic import ValidationError

from corral.core.atomic import fsync_dir
from corral.core.errors import EngineFault
from corral.core.log.events import GENESIS_HASH, Event, EventAdapter, EventBase
from corral.core.log.reader import (
    LogContents,
    open_log_fd,
    read_fd,
    repair_fd,
)

BATCH_BYTES = 16 << 20
"""Most bytes written per round, so one `os.write` stays far below the kernel's 2 GiB cap."""
_APPEND_FLAGS = os.O_RDWR | os.O_APPEND
_EVENT_TYPES: tuple[type[EventBase], ...] = typing.get_args(typing.get_args(Event)[0])


class LogFailed(EngineFault):
    """A write or fsync of the log failed (E3): the log is read-only and the engine must stop.

    `durable_seq` is the last seq whose fsync returned; nothing after it was acknowledged.
    """

    def __init__(self, path: Path, cause: BaseException, durable_seq: int) -> None:
        self.path = path
        self.cause = cause
        self.durable_seq = durable_seq
        super().__init__(
            f"{path.name} can no longer be written ({cause}); the log is read-only from here and "
            f"the engine must stop. Events up to seq {durable_seq} are durable; free disk space "
            "or fix the disk, then restart the engine to resume the run from the log"
        )


@dataclass
class _Pending:
    data: bytes
    events: list[Event]
    head: str
    """sha256 of the last line in `data`."""
    future: asyncio.Future[list[Event]]


class EventWriter:
    """The single writer of one run's log. Create it with `await EventWriter.open(path)`."""

    def __init__(self, path: Path, fd: int, contents: LogContents, repaired: Path | None) -> None:
        self.path = path
        self.repaired_tail: Path | None = repaired
        """Where `open` quarantined a torn last line, or None."""
        self.failed: BaseException | None = None
        """The OSError that made the log read-only, or None while it is healthy."""
        self._fd = fd
        self._next_seq = contents.last_seq
        self._next_head = contents.head
        self._durable_seq = contents.last_seq
        self._durable_head = contents.head
        self._pending: list[_Pending] = []
        self._wakeup = asyncio.Event()
        self._listeners: list[Callable[[Event], None]] = []
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="corral-eventlog")
        self._closing = False
        self._closed = False
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"corral event writer {path}"
        )

    @classmethod
    async def open(
        cls, path: Path, read: Callable[[int, Path], LogContents] = read_fd
    ) -> tuple[EventWriter, LogContents]:
        """Open (or create) the log for appending and return the events already in it.

        A new file is created 0600 and made durable with its directory (E5). An existing one is
        verified (LogCorrupted stops here) and a torn tail is quarantined first (E4), so the
        next event starts on a fresh line. A symlink at `path` is refused (LogPathError).
        `read` verifies and reads it (a resume passes one that folds from the run's checkpoint
        and returns only the events after it).
        """
        fd, contents, repaired = await asyncio.to_thread(_open_for_append, path, read)
        return cls(path, fd, contents, repaired), contents

    @property
    def head(self) -> str:
        """sha256 of the last durable line (what an approval records, E7)."""
        return self._durable_head

    @property
    def last_seq(self) -> int:
        """Seq of the last durable event (0 for an empty log)."""
        return self._durable_seq

    def add_listener(self, callback: Callable[[Event], None]) -> None:
        """Call `callback(event)` in the loop for every event once it is durable, in log order,
        before its append returns (the engine folds state and feeds followers here)."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[Event], None]) -> None:
        self._listeners.remove(callback)

    async def append(self, event: EventBase) -> Event:
        """Stamp `seq`/`prev` on `event` (in place), write it and return it once fsynced.

        Raises LogFailed if the log failed (now or earlier). Cancelling the caller does not
        withdraw the event: it was queued, and it will be written.
        """
        (stamped,) = await self._enqueue((event,))
        return stamped

    async def append_many(self, events: Sequence[EventBase]) -> list[Event]:
        """Append several events as consecutive lines, made durable together."""
        if not events:
            return []
        return await self._enqueue(events)

    async def close(self) -> None:
        """Write and fsync what is queued, then close the file. Later appends raise."""
        if self._closed:
            return
        self._closing = True
        self._wakeup.set()
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        finally:
            self._closed = True
            # Through the writer thread, after any write still in flight (the writer task may
            # have been cancelled mid-fsync): closing under it could let the fd number be
            # reused and the batch land in another file.
            await asyncio.get_running_loop().run_in_executor(self._executor, os.close, self._fd)
            self._executor.shutdown(wait=False)

    async def __aenter__(self) -> EventWriter:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _enqueue(self, events: Sequence[EventBase]) -> asyncio.Future[list[Event]]:
        """Stamp, serialise and queue; all checks happen here, so a refused event leaves the
        chain untouched and the writer healthy."""
        if self.failed is not None:
            raise LogFailed(self.path, self.failed, self._durable_seq) from self.failed
        if self._closing:
            raise RuntimeError(
                f"the event writer for {self.path} is closed; open a new one to append"
            )
        seq, head = self._next_seq, self._next_head
        lines: list[bytes] = []
        stamped: list[Event] = []
        try:
            for event in events:
                if not isinstance(event, _EVENT_TYPES):
                    raise TypeError(
                        f"{type(event).__name__} is not an event type of corral.core.log.events; "
                        "add it to the `Event` union before appending it"
                    )
                if event.seq != 0:
                    raise ValueError(
                        f"this {type(event).__name__} was already appended as seq {event.seq}; "
                        "append a fresh event (or a copy with seq=0)"
                    )
                seq += 1
                event.seq, event.prev = seq, head
                stamped.append(cast("Event", event))
                line = event.model_dump_json().encode()
                _check_round_trip(line, event)
                head = hashlib.sha256(line).hexdigest()
                lines.append(line)
        except BaseException:
            for done in stamped:
                done.seq, done.prev = 0, ""
            raise
        lines.append(b"")
        future: asyncio.Future[list[Event]] = asyncio.get_running_loop().create_future()
        self._pending.append(_Pending(b"\n".join(lines), stamped, head, future))
        self._next_seq, self._next_head = seq, head
        self._wakeup.set()
        return future

    def _take_batch(self) -> list[_Pending]:
        size = 0
        for count, pending in enumerate(self._pending):
            size += len(pending.data)
            if size > BATCH_BYTES and count > 0:
                batch, self._pending = self._pending[:count], self._pending[count:]
                return batch
        batch, self._pending = self._pending, []
        return batch

    async def _run(self) -> None:
        """The writer task: write and fsync each batch off the loop, then acknowledge it."""
        loop = asyncio.get_running_loop()
        batch: list[_Pending] = []
        try:
            while True:
                if not self._pending:
                    if self._closing:
                        return
                    self._wakeup.clear()
                    await self._wakeup.wait()
                    continue
                batch = self._take_batch()
                data = batch[0].data if len(batch) == 1 else b"".join(p.data for p in batch)
                await loop.run_in_executor(self._executor, self._write_and_sync, data)
                self._durable_seq = batch[-1].events[-1].seq
                self._durable_head = batch[-1].head
                self._acknowledge(batch)
                batch = []
        except BaseException as exc:
            self._fail(exc, batch)
            if not isinstance(exc, OSError):
                raise

    def _write_and_sync(self, data: bytes) -> None:
        """One write, one fsync (in the writer thread). A short write is a failure (E3)."""
        written = os.write(self._fd, data)
        if written != len(data):
            raise OSError(
                errno.EIO, f"short write: {written} of {len(data)} bytes reached {self.path.name}"
            )
        os.fsync(self._fd)

    def _acknowledge(self, batch: list[_Pending]) -> None:
        loop = asyncio.get_running_loop()
        for pending in batch:
            for event in pending.events:
                for listener in self._listeners:
                    try:
                        listener(event)
                    except Exception as exc:
                        loop.call_exception_handler(
                            {
                                "message": f"event log listener {listener!r} failed on seq "
                                f"{event.seq}; the event itself is durable",
                                "exception": exc,
                            }
                        )
            if not pending.future.done():
                pending.future.set_result(pending.events)

    def _fail(self, exc: BaseException, batch: list[_Pending]) -> None:
        """Make the log read-only (E3): fail what is in flight and queued, never write again."""
        if self.failed is None:
            self.failed = exc
        for pending in [*batch, *self._pending]:
            if not pending.future.done():
                pending.future.set_exception(LogFailed(self.path, exc, self._durable_seq))
        self._pending.clear()


def _check_round_trip(line: bytes, event: EventBase) -> None:
    """Refuse a line the reader would reject, before it can poison the log (e.g. a NaN float,
    which JSON writes as null)."""
    try:
        EventAdapter.validate_json(line)
    except ValidationError as exc:
        raise ValueError(
            f"this {type(event).__name__} cannot be logged: its JSON would not read back "
            f"({exc.error_count()} problem(s), first: {exc.errors()[0]['msg']}); "
            "use finite numbers and values of the declared types"
        ) from exc


def _open_for_append(
    path: Path, read: Callable[[int, Path], LogContents] = read_fd
) -> tuple[int, LogContents, Path | None]:
    """Open or create the log (blocking; runs in a thread from `EventWriter.open`)."""
    created = False
    try:
        fd = open_log_fd(path, _APPEND_FLAGS)
    except FileNotFoundError:
        try:
            fd = open_log_fd(path, _APPEND_FLAGS | os.O_CREAT | os.O_EXCL, 0o600)
            created = True
        except FileExistsError:
            fd = open_log_fd(path, _APPEND_FLAGS)
    try:
        if created:
            os.fsync(fd)
            fsync_dir(path.parent)
            return fd, LogContents(events=[], head=GENESIS_HASH), None
        contents = read(fd, path)
        repaired = repair_fd(fd, path) if contents.torn_tail is not None else None
    except BaseException:
        os.close(fd)
        raise
    return fd, contents, repaired
