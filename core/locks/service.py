"""Lock requests from the control socket, answered by the lock manager.

The engine has already checked who is asking (an attempt's secret, or an operator request);
this module turns a request into a manager call and its outcome into a Response, with a `code`
programs can act on (`lost` means stop using the lease, `refused` a stale fenced write).
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from corral.core.control.protocol import (
    MAX_PUT_BYTES,
    LockAcquireRequest,
    LockBreakRequest,
    LockListRequest,
    LockReleaseRequest,
    LockRenewRequest,
    LockRequest,
    PutRequest,
    Response,
)
from corral.core.locks.manager import Lease, LockError, LockManager


def lease_data(lease: Lease) -> dict[str, Any]:
    return {
        "lock": lease.lock,
        "token": lease.token,
        "ttl": lease.ttl,
        "expires_at": lease.expires_at,
        "request_id": lease.request_id,
        "agent": lease.agent,
        "attempt": lease.attempt,
    }


async def answer(locks: LockManager, request: LockRequest) -> Response:
    try:
        return await _answer(locks, request)
    except LockError as exc:
        return Response(ok=False, code=exc.code, error=str(exc))


async def _answer(locks: LockManager, request: LockRequest) -> Response:
    match request:
        case LockAcquireRequest():
            lease = await locks.acquire(
                request.agent,
                request.attempt,
                request.lock,
                request.request_id,
                ttl=request.ttl,
                wait=request.wait,
                reason=request.reason,
                pid=request.pid,
            )
            return Response(ok=True, data=lease_data(lease))
        case LockRenewRequest():
            lease = await locks.renew(
                request.agent, request.attempt, request.lock, request.fencing_token, request.ttl
            )
            return Response(ok=True, data=lease_data(lease))
        case LockReleaseRequest():
            stale = await locks.release(
                request.agent, request.attempt, request.lock, request.fencing_token
            )
            data: dict[str, Any] = {"lock": request.lock, "released": stale is None}
            if stale is not None:
                data["stale"] = stale
            return Response(ok=True, data=data)
        case LockListRequest():
            return Response(ok=True, data={"locks": locks.listing()})
        case LockBreakRequest():
            lease = await locks.break_lock(
                request.lock, request.by, request.reason, request.expect_token
            )
            return Response(ok=True, data=lease_data(lease))
        case PutRequest():
            try:
                payload = base64.b64decode(request.data, validate=True)
            except (binascii.Error, ValueError):
                raise LockError("invalid", "put: data is not valid base64") from None
            if len(payload) > MAX_PUT_BYTES:
                raise LockError(
                    "invalid", f"put: {len(payload)} bytes is over the {MAX_PUT_BYTES} byte limit"
                )
            accepted = await locks.put(
                request.agent,
                request.attempt,
                request.lock,
                request.fencing_token,
                request.path,
                payload,
            )
            return Response(
                ok=True,
                data={
                    "lock": accepted.lock,
                    "token": accepted.token,
                    "path": accepted.path,
                    "sha256": accepted.sha256,
                    "size": accepted.size,
                    "seq": accepted.seq,
                },
            )
