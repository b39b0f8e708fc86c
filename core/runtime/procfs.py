"""Reading /proc: process identity (pid + start time), attempt marks, agent trees and CPU time.

A pid alone is not an identity: after an agent exits the kernel may hand its number to an
unrelated process. Everything here therefore works on (pid, start time) pairs, where the start
time is the kernel's, in seconds since the epoch, equal to `psutil.Process(pid).create_time()`.

An attempt's processes are its agent's tree (session, process group, descendants) and every
process that carries the attempt's marks: the CORRAL_* variables of its environment, which every
child inherits, so that a child that called setsid and lost its parent is still found (T2). A
process's marks are read from /proc/<pid>/environ once per (pid, start time), which is the
environment it was started with.

Linux only: one pass over /proc/<pid>/stat per scan, no psutil per process, so that the engine
can ask about hundreds of agents per tick.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

PROC = "/proc"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

#: Two start times closer than this are the same process. The kernel counts start time in clock
#: ticks (1/CLK_TCK s, 10 ms here) and psutil adds an integer boot time, so equal processes give
#: equal floats up to rounding; distinct processes on one pid are seconds apart at the very least
#: (the pid space has to wrap around first).
START_TIME_TOLERANCE = 0.05


def _read_boot_time() -> float:
    """Boot time in epoch seconds, as psutil reads it (the `btime` line of /proc/stat)."""
    with open(f"{PROC}/stat", "rb") as f:
        for line in f:
            if line.startswith(b"btime"):
                return float(line.split()[1])
    raise RuntimeError(f"no 'btime' line in {PROC}/stat; corral needs a Linux /proc")


#: Read once: a wall-clock step (NTP's first sync) moves `btime`, and with it every start time
#: computed afterwards. Reading it once keeps start times stable for the engine's whole life, so a
#: clock step during a run cannot make live agents look like strangers (and escape termination).
BOOT_TIME = _read_boot_time()


@dataclass(frozen=True, slots=True)
class ProcStat:
    """The fields of /proc/<pid>/stat that supervision needs."""

    pid: int
    state: str
    ppid: int
    pgrp: int
    session: int
    start_ticks: int
    cpu_ticks: int  # utime + stime + cutime + cstime

    @property
    def start_time(self) -> float:
        """Epoch seconds, computed exactly as psutil's `create_time()`."""
        return float(self.start_ticks) / CLOCK_TICKS + BOOT_TIME

    @property
    def zombie(self) -> bool:
        """Exited but not reaped (or dead): it runs nothing and cannot be signalled away."""
        return self.state in ("Z", "X", "x")


def parse_stat(pid: int, data: bytes) -> ProcStat:
    """Parse one /proc/<pid>/stat line; the command name may hold spaces and parentheses."""
    fields = data[data.rfind(b")") + 2 :].split()
    return ProcStat(
        pid=pid,
        state=fields[0].decode("ascii", "replace"),
        ppid=int(fields[1]),
        pgrp=int(fields[2]),
        session=int(fields[3]),
        start_ticks=int(fields[19]),
        cpu_ticks=int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14]),
    )


def read_stat(pid: int) -> ProcStat | None:
    """One process's stat, or None when there is no such process (any more)."""
    try:
        fd = os.open(f"{PROC}/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except (FileNotFoundError, ProcessLookupError, NotADirectoryError):
        return None
    try:
        data = os.read(fd, 4096)
    except ProcessLookupError:
        return None
    finally:
        os.close(fd)
    if not data:
        return None
    return parse_stat(pid, data)


def scan() -> dict[int, ProcStat]:
    """Every process on the system, by pid: one pass over /proc."""
    table: dict[int, ProcStat] = {}
    for name in os.listdir(PROC):
        if name.isdigit():
            stat = read_stat(int(name))
            if stat is not None:
                table[stat.pid] = stat
    return table


def process_start_time(pid: int) -> float | None:
    """The kernel's start time of `pid` in epoch seconds, None when there is no such process.

    An exited but unreaped child (zombie) still has its start time: the pid is still taken.
    """
    stat = read_stat(pid)
    return None if stat is None else stat.start_time


def same_start(a: float, b: float) -> bool:
    """Whether two start times denote one process (see START_TIME_TOLERANCE)."""
    return abs(a - b) <= START_TIME_TOLERANCE


def is_same_process(pid: int, start_time: float) -> bool:
    """Whether `pid` is still the process that started at `start_time` (not a reused pid)."""
    found = process_start_time(pid)
    return found is not None and same_start(found, start_time)


# --- marks ---------------------------------------------------------------------------------------

MARK_VARIABLES = ("CORRAL_RUN_ID", "CORRAL_AGENT_ID", "CORRAL_ATTEMPT")
"""The environment variables that mark a process as an attempt's; every child inherits them."""

_MARK_PREFIXES = tuple(f"{name}=".encode() for name in MARK_VARIABLES)


@dataclass(frozen=True, slots=True)
class Marks:
    """An attempt's marks: set in its agent's (and setup commands') environment at spawn."""

    run_id: str
    agent: str
    attempt: int

    def environment(self) -> dict[str, str]:
        """The variables to put in the environment of the attempt's processes."""
        return dict(zip(MARK_VARIABLES, (self.run_id, self.agent, str(self.attempt)), strict=True))


def _read_environ(pid: int) -> bytes | None:
    """The environment `pid` was started with: None if it is gone or not ours to read, empty
    while it is between fork and exec (the kernel shows no environment then) or has none."""
    try:
        fd = os.open(f"{PROC}/{pid}/environ", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    chunks: list[bytes] = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    return b"".join(chunks)


def _parse_marks(data: bytes) -> Marks | None:
    if _MARK_PREFIXES[0] not in data:
        return None
    values: dict[bytes, bytes] = {}
    for entry in data.split(b"\0"):
        for prefix in _MARK_PREFIXES:
            if entry.startswith(prefix):
                values.setdefault(prefix, entry[len(prefix) :])  # the first wins, as in getenv
    if len(values) != len(_MARK_PREFIXES):
        return None
    run_id, agent, attempt = (os.fsdecode(values[prefix]) for prefix in _MARK_PREFIXES)
    if not attempt.isdigit():
        return None
    return Marks(run_id=run_id, agent=agent, attempt=int(attempt))


def read_marks(pid: int) -> Marks | None:
    """The attempt marks in `pid`'s environment, None when it carries none (or not all three)."""
    return _parse_marks(_read_environ(pid) or b"")


class MarkIndex:
    """The marks of every process in a scan, by attempt, each process's environment read once.

    A process's marks are those it was first seen with: the forked children of a marked process
    are marked from their first instant, and one that later execs with the marks removed stays
    the attempt's. Not yet settled, and so read again on the next scan: a process that shows no
    environment (it is between fork and exec) and a child of the caller (which shows the caller's
    environment until it execs into the agent's). Grouping is done once per scan, so any number
    of terminations polling the same scan cost one pass over it. Kernel threads (session 0) and
    zombies are never read.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._marks: dict[tuple[int, int], Marks | None] = {}
        self._table: dict[int, ProcStat] | None = None
        self._groups: dict[Marks, list[ProcStat]] = {}

    def members(self, table: dict[int, ProcStat], marks: Marks) -> list[ProcStat]:
        """The live processes of `table` that carry `marks`."""
        with self._lock:
            self._index(table)
            return list(self._groups.get(marks, ()))

    def prime(self, table: dict[int, ProcStat]) -> None:
        """Group `table` now (on a worker thread, say), so that asking about it costs nothing."""
        with self._lock:
            self._index(table)

    def _index(self, table: dict[int, ProcStat]) -> None:
        if table is not self._table:
            self._groups = self._group(table)
            self._table = table

    def _group(self, table: dict[int, ProcStat]) -> dict[Marks, list[ProcStat]]:
        me = os.getpid()
        settled: dict[tuple[int, int], Marks | None] = {}  # this scan's processes only: no growth
        groups: dict[Marks, list[ProcStat]] = {}
        for s in table.values():
            if s.session == 0 or s.zombie:
                continue
            key = (s.pid, s.start_ticks)
            if key in self._marks:
                found = settled[key] = self._marks[key]
            else:
                data = _read_environ(s.pid)
                found = _parse_marks(data or b"")
                if data != b"" and (s.ppid != me or found is not None):
                    settled[key] = found
            if found is not None:
                groups.setdefault(found, []).append(s)
        self._marks = settled
        return groups


MARKED = MarkIndex()
"""The one index of the engine's process: every caller shares its reads of /proc."""


def _self_and_ancestors(table: dict[int, ProcStat]) -> set[int]:
    """The calling process and its parents: never members of an agent's tree, never signalled."""
    out: set[int] = set()
    pid = os.getpid()
    while pid > 0 and pid not in out:
        out.add(pid)
        stat = table.get(pid)
        if stat is None:
            break
        pid = stat.ppid
    return out


def _roots(table: dict[int, ProcStat], pid: int, start_time: float) -> list[ProcStat]:
    """Processes in the agent's session or process group that started no earlier than it."""
    if pid <= 1:
        return []
    leader = table.get(pid)
    if leader is not None and not same_start(leader.start_time, start_time):
        # The pid belongs to someone else now. The kernel never reuses a number while a process
        # group or session of that id exists, so the agent's session is empty: nothing to find.
        return []
    earliest = start_time - START_TIME_TOLERANCE
    return [
        s
        for s in table.values()
        if (s.session == pid or s.pgrp == pid) and s.start_time >= earliest
    ]


def _with_descendants(
    table: dict[int, ProcStat], roots: list[ProcStat], *, zombies: bool
) -> list[ProcStat]:
    """`roots` and their descendants by parent chain, by pid; never the caller or its parents."""
    children: dict[int, list[ProcStat]] = {}
    for s in table.values():
        children.setdefault(s.ppid, []).append(s)
    excluded = _self_and_ancestors(table)
    found: dict[int, ProcStat] = {}
    stack = [s for s in roots if s.pid not in excluded]
    while stack:
        s = stack.pop()
        if s.pid in found:
            continue
        found[s.pid] = s
        stack.extend(c for c in children.get(s.pid, ()) if c.pid not in excluded and c.pid > 1)
    return sorted((s for s in found.values() if zombies or not s.zombie), key=lambda s: s.pid)


def tree_in(
    table: dict[int, ProcStat], pid: int, start_time: float, *, zombies: bool = False
) -> list[ProcStat]:
    """The agent's processes in one scan; see `tree_members`. Zombies only when asked."""
    return _with_descendants(table, _roots(table, pid, start_time), zombies=zombies)


def attempt_in(
    table: dict[int, ProcStat], marks: Marks, pid: int = 0, start_time: float = 0.0
) -> list[ProcStat]:
    """Every live process of an attempt in one scan (T2): the agent's tree when its leader
    (`pid`, `start_time`) is known, and every process carrying the attempt's `marks`, each with
    its descendants. The caller and its ancestors are never among them."""
    roots = _roots(table, pid, start_time) + MARKED.members(table, marks)
    return _with_descendants(table, roots, zombies=False)


def tree_members(pid: int, start_time: float) -> list[int]:
    """Live pids of the agent started as `pid` at `start_time`, from one scan of /proc.

    Members are processes in the agent's session or process group that started no earlier than
    the agent (so a reused pid yields nothing, and children outliving their leader are still
    found), plus their descendants by parent chain (a child that called setsid while its parent
    lives). Zombies, the calling process and its ancestors are never members.
    """
    return [s.pid for s in tree_in(scan(), pid, start_time)]


class ScanCache:
    """One /proc scan shared by every caller within `max_age` seconds (monotonic clock)."""

    def __init__(self, max_age: float) -> None:
        self.max_age = max_age
        self._table: dict[int, ProcStat] = {}
        self._taken = float("-inf")

    def get(self, max_age: float | None = None) -> dict[int, ProcStat]:
        """The cached scan if it is young enough, else a fresh one."""
        limit = self.max_age if max_age is None else max_age
        now = time.monotonic()
        if now - self._taken > limit:
            self._table = scan()
            self._taken = time.monotonic()
        return self._table


class CpuSampler:
    """CPU seconds of agents' process trees, to tell a busy silent agent from a hung one.

    The engine asks for every agent each tick; all asks within `max_age` seconds share one scan.
    Compare successive values: a rise means work. The total may fall when a member exits and is
    reaped by a process outside the tree (its time moves to that reaper), which is not work.
    """

    def __init__(self, max_age: float = 0.5) -> None:
        self._scans = ScanCache(max_age)

    def cpu_seconds(self, pid: int, start_time: float) -> float | None:
        """User + system seconds of the tree's processes (with their reaped children's).

        None when nothing of the agent runs any more (no member that is not a zombie).
        """
        members = tree_in(self._scans.get(), pid, start_time, zombies=True)
        if all(s.zombie for s in members):
            return None
        return sum(s.cpu_ticks for s in members) / CLOCK_TICKS


def in_tree(table: Mapping[int, ProcStat], pid: int, start_time: float, candidate: int) -> bool:
    """Whether process `candidate` belongs to the agent started as `pid` at `start_time`.

    The membership rule of `tree_in`, asked about one process by walking up its parent chain:
    it, or a process it descends from, is in the agent's session or process group and started
    no earlier than the agent. Unlike `tree_in` the candidate may be the caller itself (or an
    ancestor of it), which is how a command learns that it runs inside an agent.
    """
    leader = table.get(pid)
    if pid <= 1 or (leader is not None and not same_start(leader.start_time, start_time)):
        return False  # a reused pid: the agent's session is gone (see tree_in)
    earliest = start_time - START_TIME_TOLERANCE
    seen: set[int] = set()
    stat = table.get(candidate)
    while stat is not None and stat.pid > 1 and stat.pid not in seen:
        seen.add(stat.pid)
        if (stat.session == pid or stat.pgrp == pid) and stat.start_time >= earliest:
            return True
        stat = table.get(stat.ppid)
    return False


def environ_of(pid: int, names: Iterable[str]) -> dict[str, str] | None:
    """The variables `names` (those set) of process `pid`'s environment as it was started.

    /proc/<pid>/environ keeps what the process was given at exec, whatever it changed since.
    None when it cannot be read: the process is gone, or belongs to another user.
    """
    data = _read_environ(pid)
    if data is None:
        return None
    wanted = {os.fsencode(name): name for name in names}
    found: dict[str, str] = {}
    for entry in data.split(b"\0"):
        key, sep, value = entry.partition(b"=")
        if sep and key in wanted:
            found[wanted[key]] = value.decode("utf-8", "replace")
    return found
