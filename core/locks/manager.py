"""The lock manager: exclusive leases on named resources, with fencing tokens (docs/reliability.md L1-L7).

One manager per engine, in memory and durable through the event log:

- every grant takes the next value of ONE counter for the whole run (L2); a restarted engine
  continues above the highest token the log holds, and a grant is durable before it is returned;
- leases run on the monotonic clock and are reclaimed only after TTL + grace (L4), by one reaper
  task that hands the lock to the next waiter in FIFO order;
- acquire is idempotent per (attempt, request id), release needs the token and a stale release
  is answered, not an error (L7);
- when an attempt ends its leases are released and its waits abandoned; after a restart, leases
  the log shows held stay held until TTL + grace past their logged end unless their holder is
  known dead (L6).

Every change of holder is made synchronously (no await between freeing a lock and granting it
to the next waiter), then the events are appended together, so log order is grant order and a
new request can never slip ahead of the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from corral.core.locks.shared_files import FencedPathError, check_relative, write_shared
from corral.core.locks.table import Lease, LockError, LockTable, Waiter
from corral.core.log import LogFailed
from corral.core.log import events as ev
from corral.core.log.state import RunState

Append = Callable[[Sequence[ev.EventBase]], Awaitable[object]]

__all__ = ["Lease", "LockError", "LockManager"]


class LockManager(LockTable):
    """All locks of one run, durable through the log. Called from the engine's loop only."""

    def __init__(
        self,
        append: Append,
        state: RunState,
        *,
        grace: float,
        shared_root: Path,
        on_failure: Callable[[BaseException], None] = lambda exc: None,
    ) -> None:
        super().__init__(state)
        self.append = append
        self.grace = grace
        """Extra time past a lease's end before it is reclaimed (plan `run.lock_grace`)."""
        self.shared_root = shared_root
        self.on_failure = on_failure
        self._reaper: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._reaper is None:
            self._reaper = asyncio.create_task(self._reap(), name="corral lock reaper")

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
            self._reaper = None

    # -- agent requests --------------------------------------------------------------------

    async def acquire(
        self,
        agent: str,
        attempt: int,
        name: str,
        request_id: str,
        *,
        ttl: float,
        wait: float,
        reason: str = "",
        pid: int | None = None,
    ) -> Lease:
        """A durable grant, after waiting in line up to `wait` seconds (LockError otherwise)."""
        key = (agent, attempt, request_id)
        known = self._requests.get(key)
        if isinstance(known, Lease):
            if self._lock(known.lock).holder is known:
                return known
            raise LockError(
                "lost",
                f"request {request_id} was granted token {known.token} on lock {known.lock}, "
                f"which has ended ({self._endings.get(known.token, 'released')})",
            )
        if isinstance(known, Waiter) and (known.queued or known.chosen):
            return await self._await_turn(known, wait)
        lock = self._lock(name)
        if lock.holder is None and not lock.waiters:
            lease, granted = self._grant(lock, agent, attempt, request_id, ttl, reason, pid)
            self._requests[key] = lease
            await self.append([granted])
            return lease
        if wait <= 0:
            raise LockError("busy", self._busy(lock))
        waiter = self._enqueue(lock, agent, attempt, request_id, ttl, reason, pid, declared=False)
        self._requests[key] = waiter
        await self.append([self._waiting_event(lock, waiter)])
        return await self._await_turn(waiter, wait)

    async def renew(
        self, agent: str, attempt: int, name: str, token: int, ttl: float | None
    ) -> Lease:
        lease = self._held(agent, attempt, name, token)
        if lease.declared or lease.ttl is None:
            raise LockError(
                "invalid", f"lock {name} is declared in the plan and held until the attempt ends"
            )
        ttl = ttl or lease.ttl
        now, wall = time.monotonic(), time.time()
        lease.ttl, lease.deadline, lease.expires_at = ttl, now + ttl, wall + ttl
        self._wake.set()
        await self.append(
            [ev.LockRenewed(lock=name, token=token, ttl=ttl, expires_at=wall + ttl, ts=wall)]
        )
        return lease

    async def release(self, agent: str, attempt: int, name: str, token: int) -> str | None:
        """Release a held lease; a stale release is ignored: the answer says why (L7)."""
        lock = self._locks.get(name)
        lease = lock.holder if lock else None
        if lock is None or lease is None or not self._owns(lease, agent, attempt, token):
            return self._lost(name, token, lock)
        ending = ev.LockReleased(lock=name, token=token, agent=agent, reason="released")
        await self._commit(*self._free(lock, ending, f"released by {lease.holder}"))
        return None

    async def put(
        self, agent: str, attempt: int, name: str, token: int, path: str, data: bytes
    ) -> ev.FencedWriteAccepted:
        """Write a shared file if `token` is the newest ever granted for `name` and still held."""
        try:
            check_relative(path)
        except FencedPathError as exc:
            raise LockError("invalid", str(exc)) from None
        lock = self._lock(name)
        async with lock.writing:
            lease = lock.holder
            logged = self.state.locks.get(name)
            newest = logged.newest_token if logged is not None else 0
            if lease is None or not self._owns(lease, agent, attempt, token) or newest != token:
                newest = max(newest, lease.token if lease else 0)
                await self.append(
                    [
                        ev.FencedWriteRefused(
                            lock=name, token=token, newest_token=newest, agent=agent, path=path
                        )
                    ]
                )
                raise LockError(
                    "refused",
                    f"write to {path} refused: token {token} is not the current lease on lock "
                    f"{name} (newest token {newest}; {self._lost(name, token, lock)})",
                )
            try:
                digest = await asyncio.to_thread(write_shared, self.shared_root, path, data)
            except FencedPathError as exc:
                raise LockError("invalid", str(exc)) from None
            except OSError as exc:
                raise LockError(
                    "invalid", f"could not write {path}: {exc.strerror or exc}"
                ) from None
            accepted = ev.FencedWriteAccepted(
                lock=name, token=token, agent=agent, path=path, sha256=digest, size=len(data)
            )
            await self.append([accepted])
            return accepted

    # -- the engine's own requests ---------------------------------------------------------

    async def acquire_declared(
        self,
        agent: str,
        attempt: int,
        names: Sequence[str],
        changed: asyncio.Event,
        stopped: Callable[[], bool],
    ) -> bool:
        """Take the plan's locks in sorted order (no deadlock between two such sets), waiting
        without a limit; False when `stopped()` turns true first (`end_attempt` frees any taken)."""
        for name in sorted(set(names)):
            lock = self._lock(name)
            request_id = f"declared-{secrets.token_hex(6)}"
            reason = "declared in the plan"
            if lock.holder is None and not lock.waiters:
                _, granted = self._grant(lock, agent, attempt, request_id, None, reason, None)
                await self.append([granted])
                continue
            waiter = self._enqueue(lock, agent, attempt, request_id, None, reason, None, True)
            await self.append([self._waiting_event(lock, waiter)])
            while not waiter.future.done():
                if stopped() and not waiter.chosen:
                    abandoned = self._abandon(waiter, "the attempt was stopped while it waited")
                    if abandoned is not None:
                        await self.append([abandoned])
                    return False
                changed.clear()
                wake: asyncio.Future[Any] = asyncio.ensure_future(changed.wait())
                turn: asyncio.Future[Any] = waiter.future
                await asyncio.wait({turn, wake}, return_when=asyncio.FIRST_COMPLETED)
                wake.cancel()
            waiter.future.result()
        return not stopped()

    async def end_attempt(
        self, agent: str, attempt: int, reason: str = "holder ended", *, keep_leases: bool = False
    ) -> None:
        """The attempt is over: abandon its waits, release its leases, hand them on.

        `keep_leases`: it may still run where the engine cannot reach (a host cut off), so its
        leases stay until they run out (TTL + grace, `_reap`); its fencing tokens fence it."""
        events: list[ev.EventBase] = []
        grants: list[tuple[Waiter, Lease]] = []
        for lock in self._locks.values():
            for waiter in [w for w in lock.waiters if (w.agent, w.attempt) == (agent, attempt)]:
                abandoned = self._abandon(waiter, "the attempt ended")
                if abandoned is not None:
                    events.append(abandoned)
            lease = lock.holder
            if keep_leases:
                continue
            if lease is not None and (lease.agent, lease.attempt) == (agent, attempt):
                ending = ev.LockReleased(
                    lock=lock.name, token=lease.token, agent=agent, reason=reason
                )
                more, handed = self._free(lock, ending, f"released: {reason}")
                events += more
                grants += handed
        for key in [key for key in self._requests if key[:2] == (agent, attempt)]:
            del self._requests[key]
        if events:
            await self._commit(events, grants)

    async def break_lock(
        self, name: str, by: str, reason: str, expect_token: int | None = None
    ) -> Lease:
        """A person takes the lease away (recorded with who and why); the next waiter gets it."""
        lock = self._locks.get(name)
        lease = lock.holder if lock else None
        if lock is None or lease is None:
            raise LockError("invalid", f"lock {name} is not held; nothing to break")
        if expect_token is not None and lease.token != expect_token:
            raise LockError(
                "invalid",
                f"lock {name} is now held by {lease.holder} with token {lease.token}, not "
                f"{expect_token}; look again before breaking it",
            )
        ending = ev.LockBroken(
            lock=name, token=lease.token, agent=lease.agent, by=by, reason=reason
        )
        await self._commit(*self._free(lock, ending, f"broken by {by}: {reason}"))
        return lease

    async def restore(self, state: RunState, known_dead: set[tuple[str, int]]) -> None:
        """Take over the locks a dead engine left: drop its waiters, release what is safe to
        release, and honour every other lease until its logged end + grace (lock-delay)."""
        self.max_token = max(self.max_token, state.max_token)
        now, wall = time.monotonic(), time.time()
        events: list[ev.EventBase] = []
        for name, logged in state.locks.items():
            for w in logged.waiters:
                abandoned = ev.LockWaitAbandoned(
                    lock=name, agent=w.agent, request_id=w.request_id, reason="the engine restarted"
                )
                events.append(abandoned)
            if logged.holder is None or logged.token is None or logged.holder_attempt is None:
                continue
            holder = (logged.holder, logged.holder_attempt)
            if logged.declared or logged.expires_at is None or holder in known_dead:
                why = (
                    "the engine restarted and stopped the attempt holding this declared lock"
                    if logged.declared or logged.expires_at is None
                    else "its holder had ended before the engine restarted"
                )
                events.append(
                    ev.LockReleased(lock=name, token=logged.token, agent=logged.holder, reason=why)
                )
                continue
            # A backwards clock jump must not stretch the lease past one TTL from now.
            left = min(logged.expires_at - wall, logged.ttl or math.inf)
            self._lock(name).holder = Lease(
                lock=name,
                agent=logged.holder,
                attempt=logged.holder_attempt,
                token=logged.token,
                request_id="",
                ttl=logged.ttl,
                deadline=now + left,
                expires_at=logged.expires_at,
                acquired_ts=logged.acquired_ts or wall,
                pid=logged.holder_pid,
                reason=logged.reason,
                restored=True,
            )
        if events:
            await self.append(events)
        self._wake.set()

    # -- internals -------------------------------------------------------------------------

    async def _await_turn(self, waiter: Waiter, wait: float) -> Lease:
        try:
            async with asyncio.timeout(wait):
                return await asyncio.shield(waiter.future)
        except TimeoutError:
            if waiter.chosen:
                return await waiter.future  # the grant is being made durable: it is ours
            abandoned = self._abandon(waiter, f"gave up after waiting {wait:g}s")
            if abandoned is not None:
                await self.append([abandoned])
            raise LockError(
                "busy", f"{self._busy(self._lock(waiter.lock))} after waiting {wait:g}s"
            ) from None
        except asyncio.CancelledError:
            if not waiter.chosen:
                self._abandon(waiter, "the request was cancelled")
            raise

    async def _commit(
        self, events: Sequence[ev.EventBase], grants: Sequence[tuple[Waiter, Lease]]
    ) -> None:
        """Append the events; only then do the waiters learn of their grants (L2)."""
        try:
            await self.append(events)
        except BaseException as exc:
            for waiter, _ in grants:
                if not waiter.future.done():
                    waiter.future.set_exception(LockError("refused", f"not granted: {exc}"))
            raise
        for waiter, lease in grants:
            if not waiter.future.done():
                waiter.future.set_result(lease)

    async def _reap(self) -> None:
        """Reclaim leases past TTL + grace, handing each lock to its next waiter."""
        try:
            while True:
                self._wake.clear()
                now = time.monotonic()
                events: list[ev.EventBase] = []
                grants: list[tuple[Waiter, Lease]] = []
                next_due = math.inf
                for lock in self._locks.values():
                    lease = lock.holder
                    if lease is None or lease.deadline is None:
                        continue
                    due = lease.deadline + self.grace
                    if due > now:
                        next_due = min(next_due, due)
                        continue
                    overdue = round(now - lease.deadline, 3)
                    ending = ev.LockExpired(
                        lock=lock.name, token=lease.token, agent=lease.agent, overdue=overdue
                    )
                    more, handed = self._free(
                        lock, ending, f"expired {overdue:g}s after its lease ended (not renewed)"
                    )
                    events += more
                    grants += handed
                if events:
                    await self._commit(events, grants)
                    continue  # new grants may have new deadlines
                timeout = None if next_due == math.inf else max(0.0, next_due - time.monotonic())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
        except LogFailed as exc:
            self.on_failure(exc)
