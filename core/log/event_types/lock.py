"""Locks: leases with fencing tokens, and the fenced writes to shared files."""

from __future__ import annotations

from typing import Literal

from corral.core.log.event_types.base import EventBase


class LockWaiting(EventBase):
    type: Literal["lock_waiting"] = "lock_waiting"
    lock: str
    agent: str
    attempt: int
    request_id: str
    holder: str | None = None
    """The agent holding the lock when the wait began."""
    holder_token: int | None = None
    reason: str = ""
    declared: bool = False
    """The engine waits for a lock the plan declares: the agent has not started yet."""


class LockAcquired(EventBase):
    type: Literal["lock_acquired"] = "lock_acquired"
    lock: str
    agent: str
    attempt: int
    request_id: str
    token: int
    """Fencing token: strictly increasing over every grant of every lock of the run."""
    ttl: float | None = None
    """Lease length; None for a lock declared in the plan, held for the attempt's life."""
    expires_at: float | None = None
    reason: str = ""
    declared: bool = False
    pid: int | None = None
    """The process that asked for the lease, when the client said (shown beside the holder)."""


class LockRenewed(EventBase):
    type: Literal["lock_renewed"] = "lock_renewed"
    lock: str
    token: int
    ttl: float
    expires_at: float


class LockReleased(EventBase):
    type: Literal["lock_released"] = "lock_released"
    lock: str
    token: int
    agent: str
    reason: str = "released"


class LockExpired(EventBase):
    type: Literal["lock_expired"] = "lock_expired"
    lock: str
    token: int
    agent: str
    overdue: float
    """Seconds past the lease's end when it was reclaimed (at least the grace)."""


class LockBroken(EventBase):
    type: Literal["lock_broken"] = "lock_broken"
    lock: str
    token: int
    agent: str
    by: str
    reason: str


class LockWaitAbandoned(EventBase):
    type: Literal["lock_wait_abandoned"] = "lock_wait_abandoned"
    lock: str
    agent: str
    request_id: str
    reason: str


class FencedWriteAccepted(EventBase):
    type: Literal["fenced_write_accepted"] = "fenced_write_accepted"
    lock: str
    token: int
    agent: str
    path: str
    sha256: str
    size: int


class FencedWriteRefused(EventBase):
    type: Literal["fenced_write_refused"] = "fenced_write_refused"
    lock: str
    token: int
    newest_token: int
    agent: str
    path: str
