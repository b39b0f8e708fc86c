"""Killing an agent's whole process tree, and confirming that it is gone (docs/reliability.md S2, T2).

SIGTERM to the tree, a grace period, then freeze (SIGSTOP, so nothing forks any more) and
SIGKILL whatever is left, then confirm on /proc that every process ever seen in the tree is gone
before a retry may start. Only processes of the agent's identity (pid + start time) are touched,
and, when an attempt ends, those that carry the attempt's marks (`terminate_attempt`, the one
place every end of an attempt, in the engine or on a resume, stops what it left running).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import time
import weakref
from dataclasses import dataclass, field

from corral.core.errors import CorralError
from corral.core.runtime.procfs import (
    MARKED,
    Marks,
    ProcStat,
    ScanCache,
    attempt_in,
    read_stat,
    scan,
    tree_in,
)

#: How long SIGKILLed processes may take to disappear before we call it a failure.
CONFIRM_TIMEOUT = 5.0

POLL_FIRST = 0.005
POLL_MAX = 0.1

#: Terminations in flight poll /proc together: one scan serves every caller within a poll step.
_shared_scans = ScanCache(max_age=POLL_FIRST)


class _FreshScans:
    """Scans that begin after their callers asked, one shared by all who asked meanwhile.

    Agents that end together each need a scan taken after they ended. Reading /proc costs
    milliseconds (a syscall per process), so fifty agents ending at once used to hold the event
    loop for half a second. Here a scan runs in a worker thread and serves every caller that
    asked before it began (the event log's group commit, applied to /proc).
    """

    def __init__(self) -> None:
        self.pending: asyncio.Future[dict[int, ProcStat]] | None = None
        self.runner: asyncio.Task[None] | None = None

    async def get(self) -> dict[int, ProcStat]:
        if self.pending is None:
            self.pending = asyncio.get_running_loop().create_future()
        waiter = self.pending
        if self.runner is None or self.runner.done():
            self.runner = asyncio.create_task(self._serve(), name="proc-scan")
        return await asyncio.shield(waiter)

    async def _serve(self) -> None:
        while self.pending is not None:
            waiter, self.pending = self.pending, None
            try:
                table = await asyncio.to_thread(_scan_marked)
            except Exception as exc:  # pragma: no cover - /proc unreadable
                waiter.set_exception(exc)
            else:
                waiter.set_result(table)


def _scan_marked() -> dict[int, ProcStat]:
    """A scan with its processes' marks read too (the environments of new processes), so that
    the event loop never waits on those reads."""
    table = scan()
    MARKED.prime(table)
    return table


_fresh_scans: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _FreshScans] = (
    weakref.WeakKeyDictionary()
)


async def fresh_scan() -> dict[int, ProcStat]:
    """Every process, from a scan that began after this call (shared with concurrent callers)."""
    loop = asyncio.get_running_loop()
    scans = _fresh_scans.get(loop)
    if scans is None:
        scans = _fresh_scans[loop] = _FreshScans()
    return await scans.get()


class TerminateError(CorralError, RuntimeError):
    """Processes of an agent's tree survived SIGKILL: S2 forbids starting a retry."""

    def __init__(self, message: str, survivors: list[int]) -> None:
        super().__init__(message)
        self.survivors = survivors


@dataclass
class TerminateResult:
    """Who got SIGTERM, and who still lived after the grace period and got SIGKILL."""

    signalled: list[int] = field(default_factory=list)
    forced: list[int] = field(default_factory=list)


async def reap(popen: subprocess.Popen[bytes]) -> int:
    """Collect the exit status of a child that has exited (it is waitable at once)."""
    delay = 0.0005
    while (rc := popen.poll()) is None:
        await asyncio.sleep(delay)
        delay = min(delay * 2, POLL_MAX)
    return rc


def _signal_one(stat: ProcStat, sig: signal.Signals) -> bool:
    """Signal exactly the process in `stat`, never a later process that reused its pid.

    With a pidfd the check and the signal refer to one process for sure; without, the window
    between them is a few microseconds. False when it is gone or may not be signalled.
    """
    try:
        pidfd = os.pidfd_open(stat.pid)
    except ProcessLookupError:
        return False
    except (AttributeError, OSError):
        pidfd = -1
    try:
        now = read_stat(stat.pid)
        if now is None or now.start_ticks != stat.start_ticks or now.zombie:
            return False
        if pidfd >= 0:
            signal.pidfd_send_signal(pidfd, sig)
        else:
            os.kill(stat.pid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False
    finally:
        if pidfd >= 0:
            os.close(pidfd)


@dataclass
class _Target:
    """What one termination stops: the agent's tree (leader `pid` at `start_time`, or none when
    `pid` is 0) and every process that carries `marks`, plus every member ever seen (`known`).

    A child that called setsid drops out of the tree when its parent dies; remembering every
    member ever seen keeps it in view until it is gone, and its marks find it even if it was
    never seen in the tree (T2).
    """

    pid: int
    start_time: float
    marks: Marks | None = None
    known: dict[int, ProcStat] = field(default_factory=dict)

    def note(self, table: dict[int, ProcStat]) -> list[ProcStat]:
        """Live members now: the target as found in `table`, plus earlier members still alive."""
        if self.marks is None:
            found = tree_in(table, self.pid, self.start_time)
        else:
            found = attempt_in(table, self.marks, self.pid, self.start_time)
        for s in found:
            self.known.setdefault(s.pid, s)
        return _alive(table, self.known)

    def survey(self, *, fresh: bool, max_age: float = POLL_FIRST) -> list[ProcStat]:
        return self.note(_shared_scans.get(0.0 if fresh else max_age))

    def describe(self) -> str:
        if self.pid > 1:
            return f"agent pid {self.pid}"
        assert self.marks is not None
        return f"attempt {self.marks.agent}#{self.marks.attempt} of run {self.marks.run_id}"


def _signal_tree(pid: int, members: list[ProcStat], sig: signal.Signals) -> list[int]:
    """Signal the agent's process group at once, and every member outside it one by one.

    The group signal also reaches a child forked after the scan. The group id is the agent's
    pid, which the kernel does not reuse while the group exists, and `members` proves that the
    group is the agent's (tree_in rejects a reused leader pid). With no leader (`pid` 0) every
    member is signalled on its own.
    """
    signalled: list[int] = []
    grouped = pid > 1 and any(s.pgrp == pid for s in members)
    if grouped:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        signalled.extend(s.pid for s in members if s.pgrp == pid)
    for s in members:
        if not (grouped and s.pgrp == pid) and _signal_one(s, sig):
            signalled.append(s.pid)
    return sorted(signalled)


def _alive(table: dict[int, ProcStat], known: dict[int, ProcStat]) -> list[ProcStat]:
    """Which of the processes seen so far still run (same pid, same start, not a zombie)."""
    out = []
    for pid, seen in known.items():
        now = table.get(pid)
        if now is not None and now.start_ticks == seen.start_ticks and not now.zombie:
            out.append(now)
    return out


async def _wait_gone(target: _Target, seconds: float) -> list[ProcStat]:
    """Poll until every member is gone or `seconds` pass; the members still alive then."""
    deadline = time.monotonic() + seconds
    delay = POLL_FIRST
    while True:
        # Share scans with other terminations in flight, up to half a poll step old; a verdict of
        # "all gone" is confirmed on a scan of our own so no child forked since is missed.
        alive = target.survey(fresh=False, max_age=delay / 2)
        if not alive:
            alive = target.survey(fresh=True)
        left = deadline - time.monotonic()
        if not alive or left <= 0:
            return alive
        await asyncio.sleep(min(delay, left))
        delay = min(delay * 1.5, POLL_MAX)


def _freeze(target: _Target) -> list[ProcStat]:
    """SIGSTOP the tree until no new member appears, so nothing can fork while it is killed."""
    stopped: set[int] = set()
    for _ in range(20):
        alive = target.survey(fresh=True)
        fresh = [s for s in alive if s.pid not in stopped]
        if not fresh:
            return alive
        _signal_tree(target.pid, fresh, signal.SIGSTOP)
        stopped.update(s.pid for s in fresh)
    return target.survey(fresh=True)


async def _kill(target: _Target, confirm_timeout: float) -> list[int]:
    """Freeze and SIGKILL the tree until nothing of it lives; the pids that needed SIGKILL.

    Rounds repeat (signals are idempotent) so that anything the tree still shows is killed too;
    past `confirm_timeout` a survivor is an error, never silently left behind.
    """
    deadline = time.monotonic() + confirm_timeout
    forced: set[int] = set()
    while True:
        survivors = _freeze(target)
        forced.update(_signal_tree(target.pid, survivors, signal.SIGKILL))
        left = await _wait_gone(target, min(0.5, deadline - time.monotonic()))
        if not left:
            return sorted(forced)
        if time.monotonic() >= deadline:
            raise TerminateError(
                f"processes {[s.pid for s in left]} of {target.describe()} survived SIGKILL for "
                f"{confirm_timeout:g}s (states {[s.state for s in left]}); they may be stuck in "
                "the kernel (D) or owned by another user; do not retry until they are gone",
                [s.pid for s in left],
            )


async def _terminate(target: _Target, grace: float, confirm_timeout: float) -> TerminateResult:
    """SIGTERM every member, SIGKILL what is left after `grace`, confirm that all are gone."""
    result = TerminateResult()
    members = target.note(await fresh_scan())
    if members:
        result.signalled = _signal_tree(target.pid, members, signal.SIGTERM)
        # A stopped process keeps SIGTERM pending until it is continued.
        _signal_tree(target.pid, members, signal.SIGCONT)
        if await _wait_gone(target, grace):
            result.forced = await _kill(target, confirm_timeout)
    return result


async def terminate_tree(
    pid: int,
    start_time: float,
    *,
    grace: float,
    popen: subprocess.Popen[bytes] | None = None,
    marks: Marks | None = None,
    confirm_timeout: float = CONFIRM_TIMEOUT,
) -> TerminateResult:
    """SIGTERM the agent's whole tree, SIGKILL what is left after `grace`, confirm it is gone.

    Only processes of the agent started as `pid` at `start_time` are touched, so a reused pid is
    safe; with `marks`, also every process that carries them, wherever it went (see `attempt_in`).
    Zombies count as gone. Pass the agent's `popen` to have the leader reaped as well.
    Raises TerminateError if anything outlives SIGKILL by `confirm_timeout` seconds (a process
    stuck in the kernel, or one we may not signal): then no retry may start.
    """
    result = await _terminate(_Target(pid, start_time, marks), grace, confirm_timeout)
    if popen is not None and popen.poll() is None:
        leader = read_stat(popen.pid)
        if leader is not None and not leader.zombie:
            raise TerminateError(
                f"popen pid {popen.pid} still runs: it is not the agent started as pid {pid} at "
                f"{start_time}; pass the start time that spawn() returned for it",
                [popen.pid],
            )
        await reap(popen)
    return result


async def terminate_attempt(
    marks: Marks,
    *,
    grace: float,
    pid: int | None = None,
    start_time: float | None = None,
    popen: subprocess.Popen[bytes] | None = None,
    confirm_timeout: float = CONFIRM_TIMEOUT,
) -> TerminateResult:
    """The end of an attempt, whatever ended it (docs/reliability.md T2): stop every process of it.

    That is the agent's tree when its process (`pid` started at `start_time`) is known, and in any
    case every process that carries the attempt's `marks`, however it left the tree; the stop is
    confirmed as in `terminate_tree`. Without a known process (the agent never started, or a dead
    engine did not log it) the marks alone find what is left. Cheap when nothing is left: one
    scan, shared with every attempt ending at the same time.
    """
    if pid is None or start_time is None:
        return await _terminate(_Target(0, 0.0, marks), grace, confirm_timeout)
    return await terminate_tree(
        pid, start_time, grace=grace, popen=popen, marks=marks, confirm_timeout=confirm_timeout
    )


def pause_tree(pid: int, start_time: float, *, marks: Marks | None = None) -> int:
    """SIGSTOP the agent's whole tree (and, with `marks`, every process carrying them) until no
    new member appears, so nothing of it runs or forks; how many processes were stopped.

    Only processes of the agent's identity are touched (a reused pid is safe). Blocking: it
    reads /proc. `terminate_tree` continues a paused tree itself, so a kill still works."""
    return len(_freeze(_Target(pid, start_time, marks)))


def resume_tree(pid: int, start_time: float, *, marks: Marks | None = None) -> int:
    """SIGCONT what `pause_tree` stopped; how many processes were continued. Blocking."""
    target = _Target(pid, start_time, marks)
    members = target.survey(fresh=True)
    return len(_signal_tree(pid, members, signal.SIGCONT))
