"""Locks for agents written in Python: standard library only, like `client.py`.

    from corral.core.agent.lock_client import LockClient

    locks = LockClient.from_env()
    with locks.hold("db", ttl=30, wait=60) as held:    # renewed every TTL/3 in a thread
        ...                                            # held.check() raises LeaseLost if lost
        held.put("results/summary.json", data)         # a fenced write under CORRAL_SHARED

A lease is valid, as far as this client knows, until the TTL has passed since the request that
granted or last renewed it was SENT (never from when the answer came): the engine counts from
later, so the client always gives up first. A renewal the engine refuses, or none getting
through before that time, means the lease is lost.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from corral.core.agent.client import (
    AgentContext,
    ControlError,
    Unreachable,
    parse_reply,
    unreachable,
)

DEFAULT_TTL = 60.0
DEFAULT_WAIT = 30.0
DEFAULT_TIMEOUT = 10.0
MAX_PUT_BYTES = 1024 * 1024
"""As protocol.MAX_PUT_BYTES (a test keeps them equal; this module may not import pydantic)."""


class LockBusy(ControlError):
    """The lock stayed held by another for the whole wait."""


class LeaseLost(ControlError):
    """The lease is no longer held (expired, broken, or released): stop relying on it."""


class WriteRefused(ControlError):
    """A fenced write was refused: the token is not the newest for its lock."""


_TYPED: dict[str, type[ControlError]] = {
    "busy": LockBusy,
    "lost": LeaseLost,
    "refused": WriteRefused,
}


def _typed(exc: ControlError) -> ControlError:
    kind = _TYPED.get(exc.code or "")
    return kind(str(exc), exc.code) if kind is not None else exc


@dataclass(frozen=True)
class Lease:
    lock: str
    token: int
    """The fencing token: pass it with every write that goes through corral."""
    ttl: float
    expires_at: float
    """The engine's wall-clock end of the lease."""
    request_id: str
    valid_until: float
    """time.monotonic() after which this client must assume the lease is gone."""


class _Connection:
    """One socket to the engine, kept open, one request at a time."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._sock: socket.socket | None = None
        self._reader: BinaryIO | None = None
        self._mutex = threading.Lock()

    def call(self, payload: dict[str, Any], timeout: float) -> dict[str, Any]:
        line = _encode(payload)
        with self._mutex:
            for retry in (False, True):
                reused = self._sock is not None
                try:
                    sock, reader = self._connected()
                    sock.settimeout(timeout)
                    sock.sendall(line)
                    reply = reader.readline()
                    if not reply.endswith(b"\n"):
                        raise ConnectionResetError("the engine closed the connection")
                except OSError as exc:
                    self.close()
                    # A kept connection may have been closed by the engine meanwhile: try once
                    # more on a fresh one (every lock request is safe to repeat).
                    if reused and not retry and not isinstance(exc, TimeoutError):
                        continue
                    raise unreachable(self.path, exc, timeout) from None
                return parse_reply(reply)
        raise AssertionError("unreachable")  # pragma: no cover

    def _connected(self) -> tuple[socket.socket, BinaryIO]:
        if self._sock is None or self._reader is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(self.path)
            except OSError:
                sock.close()
                raise
            self._sock, self._reader = sock, sock.makefile("rb")
        return self._sock, self._reader

    def close(self) -> None:
        if self._reader is not None:
            with contextlib.suppress(OSError):
                self._reader.close()
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
        self._sock = self._reader = None


def _encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode() + b"\n"


class LockClient:
    """Lock requests of one attempt (its identity comes from the agent's environment)."""

    def __init__(
        self,
        socket_path: str,
        agent: str,
        attempt: int,
        token: str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.socket_path = socket_path
        self.agent = agent
        self.attempt = attempt
        self._secret = token
        self.timeout = timeout
        self._conn = _Connection(socket_path)

    @classmethod
    def from_env(cls, command: str = "lock", *, timeout: float = DEFAULT_TIMEOUT) -> LockClient:
        """The client of the agent this process runs in (NotInAgent outside a run)."""
        ctx = AgentContext.from_env(command)
        return cls(ctx.socket, ctx.agent, ctx.attempt, ctx.token, timeout=timeout)

    def sibling(self) -> LockClient:
        """Another client of the same attempt, on its own connection (for another thread)."""
        return LockClient(
            self.socket_path, self.agent, self.attempt, self._secret, timeout=self.timeout
        )

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> LockClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, op: str, timeout: float | None = None, **fields: Any) -> dict[str, Any]:
        payload = {
            "op": op,
            "agent": self.agent,
            "attempt": self.attempt,
            "token": self._secret,
            **fields,
        }
        try:
            return self._conn.call(payload, timeout or self.timeout)
        except ControlError as exc:
            raise _typed(exc) from None

    def call(self, op: str, fields: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """Any agent request of this attempt on the kept connection (the MCP relay's way in);
        typed errors as for the lock calls."""
        payload = {
            "op": op,
            "agent": self.agent,
            "attempt": self.attempt,
            "token": self._secret,
            **fields,
        }
        try:
            return self._conn.call(payload, timeout or self.timeout)
        except ControlError as exc:
            raise _typed(exc) from None

    def ask(self, payload: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
        """A request that carries no attempt identity (`status`), on the kept connection."""
        try:
            return self._conn.call(payload, timeout or self.timeout)
        except ControlError as exc:
            raise _typed(exc) from None

    def acquire(
        self,
        name: str,
        *,
        ttl: float = DEFAULT_TTL,
        wait: float = DEFAULT_WAIT,
        reason: str = "",
        request_id: str | None = None,
        pid: int | None = None,
    ) -> Lease:
        """Take the lease, waiting in line up to `wait` seconds (LockBusy if it stays held)."""
        request_id = request_id or secrets.token_hex(8)
        sent = time.monotonic()
        data = self._call(
            "lock_acquire",
            timeout=wait + self.timeout,
            lock=name,
            request_id=request_id,
            ttl=ttl,
            wait=wait,
            reason=reason,
            pid=pid or os.getpid(),
        )
        return _lease(data, request_id, sent, ttl)

    def renew(self, lease: Lease, ttl: float | None = None) -> Lease:
        """Extend the lease by its TTL (or a new one) from now; LeaseLost if it is gone."""
        sent = time.monotonic()
        fields: dict[str, Any] = {"lock": lease.lock, "fencing_token": lease.token}
        if ttl is not None:
            fields["ttl"] = ttl
        data = self._call("lock_renew", **fields)
        return _lease(data, lease.request_id, sent, ttl or lease.ttl)

    def release(self, lease: Lease | tuple[str, int]) -> bool:
        """Release the lease; False if it was no longer held (a stale release is ignored)."""
        name, token = (lease.lock, lease.token) if isinstance(lease, Lease) else lease
        data = self._call("lock_release", lock=name, fencing_token=token)
        return bool(data.get("released"))

    def list(self) -> list[dict[str, Any]]:
        """Every lock held or waited for, with holder, token, TTL left and waiters."""
        try:
            data = self._conn.call({"op": "lock_list"}, self.timeout)
        except ControlError as exc:
            raise _typed(exc) from None
        locks = data.get("locks")
        return locks if isinstance(locks, list) else []

    def put(self, lock: str, token: int, path: str, data: bytes) -> dict[str, Any]:
        """Replace CORRAL_SHARED/`path` with `data` if `token` is still the newest for `lock`
        (WriteRefused otherwise: a holder that lost its lease can no longer write)."""
        if len(data) > MAX_PUT_BYTES:
            raise ControlError(f"put: {len(data)} bytes is over the {MAX_PUT_BYTES} byte limit")
        return self._call(
            "put",
            lock=lock,
            fencing_token=token,
            path=path,
            data=base64.b64encode(data).decode("ascii"),
        )

    @contextlib.contextmanager
    def hold(
        self,
        name: str,
        *,
        ttl: float = DEFAULT_TTL,
        wait: float = DEFAULT_WAIT,
        reason: str = "",
        on_lost: Callable[[str], None] | None = None,
    ) -> Iterator[HeldLease]:
        """Acquire, renew every TTL/3 in a background thread, release on exit."""
        held = HeldLease(self, self.acquire(name, ttl=ttl, wait=wait, reason=reason), on_lost)
        try:
            yield held
        finally:
            held.stop()


def _lease(data: dict[str, Any], request_id: str, sent: float, ttl: float) -> Lease:
    return Lease(
        lock=str(data["lock"]),
        token=int(data["token"]),
        ttl=float(data.get("ttl") or ttl),
        expires_at=float(data.get("expires_at") or 0.0),
        request_id=str(data.get("request_id") or request_id),
        valid_until=sent + float(data.get("ttl") or ttl),
    )


class HeldLease:
    """A lease kept alive by a renewing thread until `stop()` (which releases it)."""

    def __init__(
        self, client: LockClient, lease: Lease, on_lost: Callable[[str], None] | None = None
    ) -> None:
        self.client = client
        self.lease = lease
        self.lost_reason: str | None = None
        self._on_lost = on_lost
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._renewer = client.sibling()
        self._thread = threading.Thread(
            target=self._renew_loop, name=f"corral lease {lease.lock}", daemon=True
        )
        self._thread.start()

    @property
    def token(self) -> int:
        return self.lease.token

    @property
    def lost(self) -> bool:
        if not self._lost.is_set() and time.monotonic() >= self.lease.valid_until:
            self._mark_lost(f"not renewed within its TTL of {self.lease.ttl:g}s")
        return self._lost.is_set()

    def check(self) -> None:
        """Raise LeaseLost if the lease is (or may be) gone."""
        if self.lost:
            raise LeaseLost(f"lease on {self.lease.lock} lost: {self.lost_reason}", "lost")

    def put(self, path: str, data: bytes) -> dict[str, Any]:
        return self.client.put(self.lease.lock, self.lease.token, path, data)

    def stop(self, release: bool = True) -> None:
        """Stop renewing and (unless lost) release the lease."""
        self._stop.set()
        self._thread.join()
        self._renewer.close()
        if release and not self._lost.is_set():
            with contextlib.suppress(ControlError):
                self.client.release(self.lease)

    def _mark_lost(self, reason: str) -> None:
        if self._lost.is_set():
            return
        self.lost_reason = reason
        self._lost.set()
        if self._on_lost is not None:
            self._on_lost(reason)

    def _renew_loop(self) -> None:
        interval = self.lease.ttl / 3
        while not self._stop.wait(interval):
            try:
                self.lease = self._renewer.renew(self.lease)
                interval = self.lease.ttl / 3
            except LeaseLost as exc:
                self._mark_lost(str(exc))
                return
            except ControlError as exc:
                left = self.lease.valid_until - time.monotonic()
                if left <= 0:
                    self._mark_lost(f"could not renew before the lease ran out ({exc})")
                    return
                if not isinstance(exc, Unreachable):
                    self._mark_lost(str(exc))
                    return
                interval = max(0.02, min(self.lease.ttl / 10, left / 2))


__all__ = [
    "DEFAULT_TTL",
    "DEFAULT_WAIT",
    "HeldLease",
    "Lease",
    "LeaseLost",
    "LockBusy",
    "LockClient",
    "WriteRefused",
]
