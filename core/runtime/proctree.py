"""Agent processes: start them in their own session, await their exit, kill their whole tree.

The supervisor's rules (docs/reliability.md S1, S2): an agent runs in its own session and process group;
termination covers the whole tree, including children that escaped into their own session, and is
confirmed before a retry starts; a pid is only trusted together with its start time, so that a
reused pid is never signalled. When an attempt ends, every process carrying its marks goes too
(`terminate_attempt`, T2), wherever it went. No orphan is ever left behind.

Linux only (/proc, pidfd). Awaiting an exit uses a pidfd registered with the event loop, so it
needs neither asyncio's child watchers nor a thread per process. This module is the public face;
reading /proc lives in `procfs`, killing trees in `kill`.
"""

from __future__ import annotations

import asyncio
import errno
import fcntl
import os
import subprocess
import termios
import time
from dataclasses import dataclass
from pathlib import Path

from corral.core.errors import CorralError
from corral.core.runtime.kill import (
    POLL_FIRST,
    POLL_MAX,
    TerminateError,
    TerminateResult,
    pause_tree,
    reap,
    resume_tree,
    terminate_attempt,
    terminate_tree,
)
from corral.core.runtime.procfs import (
    CpuSampler,
    Marks,
    is_same_process,
    process_start_time,
    tree_members,
)

__all__ = [
    "CpuSampler",
    "Marks",
    "SpawnError",
    "Spawned",
    "TerminateError",
    "TerminateResult",
    "is_same_process",
    "pause_tree",
    "process_start_time",
    "resume_tree",
    "spawn",
    "terminate_attempt",
    "terminate_tree",
    "tree_members",
    "wait_exit",
]

LOG_FLAGS = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
LOG_MODE = 0o600


class SpawnError(CorralError, RuntimeError):
    """The agent's program could not be started; the message names it and the fix."""


@dataclass
class Spawned:
    """A started agent. (pid, start_time) is its identity; log start_time to survive a crash."""

    pid: int
    start_time: float
    popen: subprocess.Popen[bytes]
    stdin_fd: int | None = None
    """The write end of its stdin pipe when started `interactive` (the engine's to hold)."""
    pty_fd: int | None = None
    """The master side of its terminal when started with `tty` (the engine's to hold)."""


# --- spawn -------------------------------------------------------------------------------------


def _open_log(log_path: Path) -> int:
    """Open the agent's log for appending; a symlink planted at the path is refused."""
    try:
        return os.open(log_path, LOG_FLAGS, LOG_MODE)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise SpawnError(
                f"cannot open agent log {log_path}: it is a symbolic link, which corral refuses "
                "to follow; remove it"
            ) from exc
        raise SpawnError(
            f"cannot open agent log {log_path}: {exc.strerror}; check that its directory "
            "exists and is writable"
        ) from exc


def _spawn_error(program: str, cwd: Path, exc: OSError) -> SpawnError:
    """A message that says which program failed, why, and what to do about it."""
    if exc.filename is not None and os.fsdecode(exc.filename) == str(cwd):
        return SpawnError(f"cannot start {program!r}: working directory {cwd}: {exc.strerror}")
    if isinstance(exc, FileNotFoundError):
        if os.sep in program:
            return SpawnError(
                f"cannot start {program!r}: no such file; fix the path in the agent's command"
            )
        return SpawnError(
            f"cannot start {program!r}: the program was not found on the agent's PATH; install "
            "it, or give its absolute path in the agent's command"
        )
    if isinstance(exc, PermissionError):
        return SpawnError(
            f"cannot start {program!r}: it is not executable (or is a directory); "
            f"run `chmod +x {program}` or point the command at the real program"
        )
    if exc.errno == errno.ENOEXEC:
        return SpawnError(
            f"cannot start {program!r}: the kernel cannot run this file (exec format error); "
            "add a `#!` line to the script, or run it through its interpreter"
        )
    return SpawnError(f"cannot start {program!r}: {exc.strerror or exc}")


def spawn(
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    log_path: Path,
    pass_fds: tuple[int, ...] = (),
    interactive: bool = False,
    tty: tuple[int, int] | None = None,
) -> Spawned:
    """Start an agent in its own session with its output appended straight to `log_path`.

    The agent writes to the file itself, so its output survives and it keeps running if the
    engine dies. Its own session makes pid == process group id == session id, which is what
    `tree_members` and `terminate_tree` find it by. `env` is the agent's whole environment;
    `pass_fds` are inherited besides (the sandbox's `--info-fd`). `interactive` gives it a pipe
    as stdin, whose write end is `Spawned.stdin_fd` (core/runtime/agent_input.py); otherwise its
    stdin is /dev/null. `tty` (columns, rows) starts it on a new pseudo-terminal instead: its
    stdin, stdout and stderr are the terminal, which is its session's controlling terminal, and
    whose master side is `Spawned.pty_fd`; the engine copies what it yields into the log
    (core/runtime/pty_io.py), so the log is not the agent's own to write then.
    """
    if not argv:
        raise SpawnError("cannot start an agent with an empty command; give the program to run")
    if not cwd.is_dir():
        raise SpawnError(
            f"cannot start {argv[0]!r}: working directory {cwd} does not exist or is not a "
            "directory; create the agent's workspace first"
        )
    if tty is not None:
        return _spawn_on_tty(argv, cwd=cwd, env=env, log_path=log_path, pass_fds=pass_fds, size=tty)
    log_fd = _open_log(log_path)
    read_end, write_end = os.pipe2(os.O_CLOEXEC) if interactive else (None, None)
    try:
        popen = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=read_end if read_end is not None else subprocess.DEVNULL,
            stdout=log_fd,
            stderr=log_fd,
            close_fds=True,
            pass_fds=pass_fds,
            start_new_session=True,
        )
    except OSError as exc:
        if write_end is not None:
            os.close(write_end)
        raise _spawn_error(argv[0], cwd, exc) from exc
    finally:
        os.close(log_fd)
        if read_end is not None:
            os.close(read_end)
    return _identified(argv, popen, stdin_fd=write_end)


def take_terminal() -> None:  # pragma: no cover - runs in the child between fork and exec
    """Make stdin (the new terminal) the controlling terminal of the session `setsid` made.

    Only an ioctl: the child runs no other Python between fork and exec."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def _spawn_on_tty(
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    log_path: Path,
    pass_fds: tuple[int, ...],
    size: tuple[int, int],
) -> Spawned:
    """`spawn` on a new pseudo-terminal: still its own session (pid == pgid == sid), the
    terminal its controlling one, so the kill and mark code see it as any other agent."""
    _open_log_checked(log_path)
    master, slave = os.openpty()
    os.set_inheritable(master, False)
    columns, rows = size
    termios.tcsetwinsize(master, (rows, columns))
    try:
        popen = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=slave,
            stdout=slave,
            stderr=slave,
            close_fds=True,
            pass_fds=pass_fds,
            start_new_session=True,
            preexec_fn=take_terminal,  # one ioctl after setsid: see take_terminal
        )
    except OSError as exc:
        os.close(master)
        raise _spawn_error(argv[0], cwd, exc) from exc
    finally:
        os.close(slave)
    return _identified(argv, popen, pty_fd=master)


def _open_log_checked(log_path: Path) -> None:
    """The log can be opened for appending (the engine writes it for a terminal agent)."""
    os.close(_open_log(log_path))


def _identified(
    argv: list[str],
    popen: subprocess.Popen[bytes],
    *,
    stdin_fd: int | None = None,
    pty_fd: int | None = None,
) -> Spawned:
    # Unreaped, the child cannot vanish from /proc, so its start time is always readable here.
    start_time = process_start_time(popen.pid)
    if start_time is None:  # pragma: no cover - only if someone else reaped our child
        raise SpawnError(f"{argv[0]!r} (pid {popen.pid}) vanished before it could be identified")
    return Spawned(
        pid=popen.pid, start_time=start_time, popen=popen, stdin_fd=stdin_fd, pty_fd=pty_fd
    )


# --- wait_exit ---------------------------------------------------------------------------------


async def _wait_exit_polling(spawned: Spawned, limit: float | None) -> int | None:
    """`wait_exit` without pidfd (old kernels, seccomp filters): poll with a growing interval."""
    deadline = None if limit is None else time.monotonic() + limit
    delay = POLL_FIRST
    while (rc := spawned.popen.poll()) is None:
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            delay = min(delay, left)
        await asyncio.sleep(delay)
        delay = min(delay * 1.5, POLL_MAX)
    return rc


async def wait_exit(spawned: Spawned, timeout: float | None) -> int | None:  # noqa: ASYNC109
    """Await the agent's exit and reap it: its returncode (-N for signal N), None on timeout.

    The pidfd becomes readable when the process exits; the event loop watches it like a socket,
    so hundreds of agents cost one file descriptor each and no threads. (`timeout` is a parameter
    rather than the caller's `asyncio.timeout` because a timeout here is an answer, not an error.)
    """
    popen = spawned.popen
    if (rc := popen.poll()) is not None:
        return rc
    try:
        pidfd = os.pidfd_open(spawned.pid)
    except ProcessLookupError:
        return await reap(popen)  # reaped by a concurrent waiter between poll and open
    except (AttributeError, OSError):
        return await _wait_exit_polling(spawned, timeout)
    loop = asyncio.get_running_loop()
    exited: asyncio.Future[None] = loop.create_future()

    def on_exit() -> None:
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(pidfd, on_exit)
    try:
        async with asyncio.timeout(timeout):
            await exited
    except TimeoutError:
        return None
    finally:
        loop.remove_reader(pidfd)
        os.close(pidfd)
    return await reap(popen)
