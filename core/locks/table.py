"""The lock table: who holds each lock, who waits, and the token counter, in memory.

Every method here is synchronous: a change of holder (free a lock, grant it to the next
waiter in line) happens without an await in between, so no request can slip ahead of the
queue. `locks.LockManager` adds what must be durable and what waits: the async API, the event
log and the reaper.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from corral.core.control.protocol import ErrorCode
from corral.core.errors import CorralError
from corral.core.log import events as ev
from corral.core.log.state import RunState

ENDINGS_KEPT = 4096
"""How many ended leases the table remembers, to tell a late client what happened."""


class LockError(CorralError):
    """A lock request that cannot be granted; `code` tells programs why."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: ErrorCode = code


@dataclass(eq=False)
class Lease:
    lock: str
    agent: str
    attempt: int
    token: int
    request_id: str
    ttl: float | None
    """None for a lock declared in the plan: held for the attempt's whole life."""
    deadline: float | None
    """Monotonic end of the lease; reclaimed at deadline + grace."""
    expires_at: float | None
    """The same end on the wall clock (for display, and for a restarted engine)."""
    acquired_ts: float
    pid: int | None = None
    reason: str = ""
    declared: bool = False
    restored: bool = False
    """Carried over from an engine that died: honoured until its end + grace (lock-delay)."""

    @property
    def holder(self) -> str:
        return f"{self.agent}#{self.attempt}"


@dataclass(eq=False)
class Waiter:
    lock: str
    agent: str
    attempt: int
    request_id: str
    ttl: float | None
    reason: str
    pid: int | None
    declared: bool
    since: float
    future: asyncio.Future[Lease]
    queued: bool = True
    chosen: bool = False
    """Picked by a hand-off whose grant is being made durable: the lease is this waiter's."""


@dataclass
class LockEntry:
    name: str
    holder: Lease | None = None
    waiters: deque[Waiter] = field(default_factory=deque)
    writing: asyncio.Lock = field(default_factory=asyncio.Lock)
    """Serialises fenced writes, so files change in token order."""


def _retrieve(future: asyncio.Future[Lease]) -> None:
    if not future.cancelled():
        future.exception()  # mark an exception nobody awaited as seen


class LockTable:
    """All locks of one run, in memory. Called from the engine's event loop only."""

    def __init__(self, state: RunState) -> None:
        self.state = state
        self.max_token = state.max_token
        """The last fencing token granted: ONE counter for every lock of the run (L2)."""
        self._locks: dict[str, LockEntry] = {}
        self._requests: dict[tuple[str, int, str], Lease | Waiter] = {}
        self._endings: dict[int, str] = {}
        self._wake = asyncio.Event()
        """Set when a lease's deadline may have moved, so the reaper looks again."""

    def listing(self) -> list[dict[str, Any]]:
        """Every lock held or waited for: holder, token, TTL left, waiters (for `lock list`)."""
        now = time.monotonic()
        found = []
        for name in sorted(self._locks):
            lock = self._locks[name]
            lease = lock.holder
            if lease is None and not lock.waiters:
                continue
            holder = None
            if lease is not None:
                left = None if lease.deadline is None else round(lease.deadline - now, 3)
                holder = {
                    "agent": lease.agent,
                    "attempt": lease.attempt,
                    "pid": lease.pid,
                    "token": lease.token,
                    "ttl": lease.ttl,
                    "ttl_left": left,
                    "expires_at": lease.expires_at,
                    "since": lease.acquired_ts,
                    "declared": lease.declared,
                    "restored": lease.restored,
                    "reason": lease.reason,
                }
            found.append(
                {
                    "lock": name,
                    "holder": holder,
                    "waiters": [
                        {
                            "agent": w.agent,
                            "attempt": w.attempt,
                            "since": w.since,
                            "reason": w.reason,
                        }
                        for w in lock.waiters
                    ],
                }
            )
        return found

    # -- restart (L6) ----------------------------------------------------------------------

    @staticmethod
    def holders_known_dead(state: RunState) -> set[tuple[str, int]]:
        """Lease holders whose attempt the log shows ended (call before marking running
        attempts lost: a holder that was running when the engine died is not known dead)."""
        dead: set[tuple[str, int]] = set()
        for lock in state.locks.values():
            if lock.holder is None or lock.holder_attempt is None:
                continue
            agent = state.agents.get(lock.holder)
            if agent is None:
                continue
            for attempt in agent.attempts:
                if attempt.number > lock.holder_attempt or (
                    attempt.number == lock.holder_attempt and attempt.ended_ts is not None
                ):
                    dead.add((lock.holder, lock.holder_attempt))
        return dead

    # -- internals -------------------------------------------------------------------------

    def _lock(self, name: str) -> LockEntry:
        lock = self._locks.get(name)
        if lock is None:
            lock = self._locks[name] = LockEntry(name)
        return lock

    @staticmethod
    def _owns(lease: Lease, agent: str, attempt: int, token: int) -> bool:
        return (lease.agent, lease.attempt, lease.token) == (agent, attempt, token)

    def _held(self, agent: str, attempt: int, name: str, token: int) -> Lease:
        lock = self._locks.get(name)
        lease = lock.holder if lock else None
        if lease is None or not self._owns(lease, agent, attempt, token):
            raise LockError("lost", self._lost(name, token, lock))
        return lease

    def _lost(self, name: str, token: int, lock: LockEntry | None) -> str:
        ended = self._endings.get(token)
        what = f"token {token} {ended}" if ended else f"token {token} is not yours on lock {name}"
        lease = lock.holder if lock else None
        now = f"held by {lease.holder} with token {lease.token}" if lease else "free"
        return f"{what}; the lock is now {now}"

    def _busy(self, lock: LockEntry) -> str:
        lease = lock.holder
        holder = f"held by {lease.holder} (token {lease.token})" if lease else "busy"
        line = f", {len(lock.waiters)} waiting" if lock.waiters else ""
        return f"lock {lock.name} is {holder}{line}"

    def _grant(
        self,
        lock: LockEntry,
        agent: str,
        attempt: int,
        request_id: str,
        ttl: float | None,
        reason: str,
        pid: int | None,
    ) -> tuple[Lease, ev.LockAcquired]:
        """Make `agent#attempt` the holder (in memory; the caller appends the event)."""
        self.max_token += 1
        now, wall = time.monotonic(), time.time()
        lease = Lease(
            lock=lock.name,
            agent=agent,
            attempt=attempt,
            token=self.max_token,
            request_id=request_id,
            ttl=ttl,
            deadline=None if ttl is None else now + ttl,
            expires_at=None if ttl is None else wall + ttl,
            acquired_ts=wall,
            pid=pid,
            reason=reason,
            declared=ttl is None,
        )
        lock.holder = lease
        self._wake.set()
        granted = ev.LockAcquired(
            lock=lock.name,
            agent=agent,
            attempt=attempt,
            request_id=request_id,
            token=lease.token,
            ttl=ttl,
            expires_at=lease.expires_at,
            reason=reason,
            declared=lease.declared,
            pid=pid,
            ts=wall,
        )
        return lease, granted

    def _enqueue(
        self,
        lock: LockEntry,
        agent: str,
        attempt: int,
        request_id: str,
        ttl: float | None,
        reason: str,
        pid: int | None,
        declared: bool,
    ) -> Waiter:
        future: asyncio.Future[Lease] = asyncio.get_running_loop().create_future()
        future.add_done_callback(_retrieve)
        waiter = Waiter(
            lock.name, agent, attempt, request_id, ttl, reason, pid, declared, time.time(), future
        )
        lock.waiters.append(waiter)
        return waiter

    @staticmethod
    def _waiting_event(lock: LockEntry, waiter: Waiter) -> ev.LockWaiting:
        lease = lock.holder
        return ev.LockWaiting(
            lock=lock.name,
            agent=waiter.agent,
            attempt=waiter.attempt,
            request_id=waiter.request_id,
            holder=lease.agent if lease else None,
            holder_token=lease.token if lease else None,
            reason=waiter.reason,
            declared=waiter.declared,
            ts=waiter.since,
        )

    def _abandon(self, waiter: Waiter, reason: str) -> ev.LockWaitAbandoned | None:
        """Take a waiter out of line; the event to log, or None if it was not in line."""
        if not waiter.queued:
            return None
        waiter.queued = False
        self._lock(waiter.lock).waiters.remove(waiter)
        if not waiter.future.done():
            waiter.future.set_exception(LockError("busy", f"wait for lock {waiter.lock}: {reason}"))
        return ev.LockWaitAbandoned(
            lock=waiter.lock, agent=waiter.agent, request_id=waiter.request_id, reason=reason
        )

    def _free(
        self, lock: LockEntry, ending: ev.EventBase, how: str
    ) -> tuple[list[ev.EventBase], list[tuple[Waiter, Lease]]]:
        """End the current lease and grant the lock to the first waiter still in line."""
        assert lock.holder is not None
        self._endings[lock.holder.token] = how
        if len(self._endings) > ENDINGS_KEPT:
            del self._endings[next(iter(self._endings))]
        lock.holder = None
        events: list[ev.EventBase] = [ending]
        grants: list[tuple[Waiter, Lease]] = []
        while lock.waiters and lock.holder is None:
            waiter = lock.waiters.popleft()
            waiter.queued = False
            if waiter.future.done():
                continue
            waiter.chosen = True
            lease, granted = self._grant(
                lock,
                waiter.agent,
                waiter.attempt,
                waiter.request_id,
                waiter.ttl,
                waiter.reason,
                waiter.pid,
            )
            self._requests[(waiter.agent, waiter.attempt, waiter.request_id)] = lease
            events.append(granted)
            grants.append((waiter, lease))
        return events, grants
