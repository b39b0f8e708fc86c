"""The plan's `[run] notify` command: each notice (core/log/notices.py) as JSON on its stdin.

The command is the operator's (like `verify`): it runs with the engine's environment, no shell,
one at a time in the order the notices came, each in its own session with `NOTIFY_TIMEOUT` to
finish, its output in the run directory's `notify.log`. It never holds the engine up: notices
wait in a queue a task of their own drains, and a failing or hanging command costs only its
notice (written to `notify.log` and to stderr). When the engine stops it gives the queue
`DRAIN_TIMEOUT` to empty, then stops whatever still runs: nothing outlives the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from corral.core.log import events as ev
from corral.core.log.notices import Notice, NoticeWatch
from corral.core.log.state import RunState

NOTIFY_TIMEOUT = 30.0
DRAIN_TIMEOUT = 10.0
QUEUE_LIMIT = 1000
"""Notices beyond this many waiting are dropped (and said so): a wedged command cannot grow
the engine's memory without end."""


class NotifyHook:
    """Runs `command` once per notice; `observe` is the engine's log listener."""

    def __init__(self, command: Sequence[str], state: RunState, log_path: Path) -> None:
        self.command = list(command)
        self.state = state
        self.log_path = log_path
        self.watch = NoticeWatch()
        self.queue: asyncio.Queue[Notice | None] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None
        self.sent = 0
        self.failed = 0

    def observe(self, event: ev.Event) -> None:
        notice = self.watch.observe(self.state, event)
        if notice is None:
            return
        if self.queue.qsize() >= QUEUE_LIMIT:
            self._say(f"notify: {QUEUE_LIMIT} notices waiting; dropped: {notice.text}")
            return
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._drain(), name="notify")
        self.queue.put_nowait(notice)

    async def close(self) -> None:
        """Let the queue empty (within DRAIN_TIMEOUT), then stop the command still running."""
        if self.task is None:
            return
        self.queue.put_nowait(None)
        try:
            await asyncio.wait_for(asyncio.shield(self.task), DRAIN_TIMEOUT)
        except TimeoutError:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            unsent = self.queue.qsize() - 1  # the closing None is not a notice
            self._say(
                f"notify: stopped {self.command[0]!r} with the engine after {DRAIN_TIMEOUT:g}s"
                + (f"; {unsent} notice(s) not sent" if unsent > 0 else "")
            )

    async def _drain(self) -> None:
        while (notice := await self.queue.get()) is not None:
            await self._send(notice)

    async def _send(self, notice: Notice) -> None:
        payload = notice.model_dump_json().encode() + b"\n"
        try:
            with self.log_path.open("ab") as log:
                log.write(f"$ {' '.join(self.command)}  < {notice.text}\n".encode())
                log.flush()
                process = await asyncio.create_subprocess_exec(
                    *self.command,
                    stdin=asyncio.subprocess.PIPE,
                    stdout=log,
                    stderr=log,
                    start_new_session=True,
                )
        except OSError as exc:
            self.failed += 1
            self._say(f"notify: cannot run {self.command[0]!r}: {exc}")
            return
        try:
            await asyncio.wait_for(process.communicate(payload), NOTIFY_TIMEOUT)
        except TimeoutError:
            self._say(f"notify: {self.command[0]!r} took over {NOTIFY_TIMEOUT:g}s; stopped")
        except asyncio.CancelledError:
            self._kill(process)
            await process.wait()
            raise
        finally:
            if process.returncode is None:
                self._kill(process)
                await process.wait()
        if process.returncode == 0:
            self.sent += 1
        else:
            self.failed += 1
            self._say(f"notify: {self.command[0]!r} exited {process.returncode} for: {notice.text}")

    @staticmethod
    def _kill(process: asyncio.subprocess.Process) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    def _say(self, text: str) -> None:
        print(f"corral: {text}", file=sys.stderr)
        with contextlib.suppress(OSError), self.log_path.open("a") as log:
            log.write(f"corral: {text}\n")
