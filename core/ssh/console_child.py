"""One console process on its own pseudo-terminal: `corral tui` started as the session leader
of a new terminal, its output relayed to the SSH channel, the client's keys written to it, the
client's window size applied (tcsetwinsize: the child gets SIGWINCH), and stopped when the
connection ends: SIGHUP to its process group, then SIGKILL, waited for. The run and its engine
are other processes; nothing here touches them."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import signal
import termios
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from corral.core.runtime.proctree import take_terminal

HANGUP_GRACE = 3.0
"""Seconds the console has to exit after SIGHUP before it is killed."""
READ_CHUNK = 65536
WRITE_BACKLOG = 1 << 20
"""Bytes of keys the console has not read yet past which the client is paused."""


class ConsoleChild:
    """A started console; `on_output` gets its bytes, `on_exit` its exit status, once."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        master: int,
        on_output: Callable[[bytes], None],
        on_exit: Callable[[int], None],
    ) -> None:
        self.process = process
        self.master = master
        self._on_output = on_output
        self._on_exit = on_exit
        self._pending = bytearray()
        self._reading = False
        self._loop = asyncio.get_running_loop()
        self._closed = False
        self.on_drained: Callable[[], None] | None = None
        """Called once the keys backlog is written out after `write` said it was full."""
        self.resume_output()
        self._waiter = asyncio.ensure_future(self._wait())

    @property
    def pid(self) -> int:
        return self.process.pid

    @classmethod
    async def start(
        cls,
        argv: Sequence[str],
        *,
        env: Mapping[str, str],
        cwd: Path,
        cols: int,
        rows: int,
        on_output: Callable[[bytes], None],
        on_exit: Callable[[int], None],
    ) -> ConsoleChild:
        master, slave = os.openpty()
        try:
            termios.tcsetwinsize(slave, (max(rows, 1), max(cols, 1)))
            process = await asyncio.create_subprocess_exec(
                *argv,
                stdin=slave,
                stdout=slave,
                stderr=slave,
                env=dict(env),
                cwd=cwd,
                start_new_session=True,
                preexec_fn=take_terminal,  # one ioctl, nothing that locks
            )
        except BaseException:
            os.close(master)
            raise
        finally:
            os.close(slave)
        os.set_blocking(master, False)
        return cls(process, master, on_output, on_exit)

    # -- output: the console's screen to the client ---------------------------------------------

    def pause_output(self) -> None:
        """The client reads slower than the console draws: stop reading until it catches up."""
        if self._reading:
            self._loop.remove_reader(self.master)
            self._reading = False

    def resume_output(self) -> None:
        if not self._reading and not self._closed:
            self._loop.add_reader(self.master, self._readable)
            self._reading = True

    def _readable(self) -> None:
        try:
            data = os.read(self.master, READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:  # EIO: every slave descriptor closed, the console is gone
            if exc.errno != errno.EIO:
                raise
            data = b""
        if data:
            self._on_output(data)
        else:
            self.pause_output()

    # -- input: the client's keys to the console ------------------------------------------------

    def write(self, data: bytes) -> bool:
        """Hand keys to the console; False when its backlog is full (pause the client)."""
        if self._closed:
            return True
        self._pending += data
        self._flush()
        return len(self._pending) < WRITE_BACKLOG

    def _flush(self) -> None:
        try:
            while self._pending:
                written = os.write(self.master, self._pending)
                del self._pending[:written]
        except BlockingIOError:
            self._loop.add_writer(self.master, self._writable)
            return
        except OSError:  # the console is gone: its keys go nowhere
            self._pending.clear()
        self._loop.remove_writer(self.master)
        if self.on_drained is not None:
            drained, self.on_drained = self.on_drained, None
            drained()

    def _writable(self) -> None:
        self._flush()

    def resize(self, cols: int, rows: int) -> None:
        if not self._closed:
            termios.tcsetwinsize(self.master, (max(rows, 1), max(cols, 1)))

    # -- the end --------------------------------------------------------------------------------

    async def _wait(self) -> None:
        status = await self.process.wait()
        self._drain()
        self._close()
        self._on_exit(status)

    def _drain(self) -> None:
        """What the console wrote just before it exited, still in the terminal's buffer."""
        with contextlib.suppress(OSError):
            while data := os.read(self.master, READ_CHUNK):
                self._on_output(data)

    def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.pause_output()
        self._loop.remove_writer(self.master)
        os.close(self.master)

    async def stop(self) -> str:
        """End the console (the connection went): SIGHUP to its group, SIGKILL after the grace;
        returns how it ended, once it has."""
        how = "had exited"
        if self.process.returncode is None:
            how = "hung up"
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGHUP)
            try:
                await asyncio.wait_for(asyncio.shield(self._waiter), HANGUP_GRACE)
            except TimeoutError:
                how = "killed"
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.pid, signal.SIGKILL)
        await self._waiter
        with contextlib.suppress(ProcessLookupError):  # anything it left in its group
            os.killpg(self.pid, signal.SIGKILL)
        return how
