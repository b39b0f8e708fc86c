"""Which hosts of a pool answer now: the preflight's check before a run starts.

Each host gets one connection attempt (at once, each within CHECK_TIMEOUT), in a thread of its
own with its own event loop, so a caller inside a running loop may ask too.
"""

from __future__ import annotations

import asyncio
import threading

from corral.core.plan.hosts import HostSpec

CHECK_TIMEOUT = 10.0


async def _problem(spec: HostSpec) -> str | None:
    from corral.core.remote.connection import HostConnection
    from corral.core.remote.remote import RemoteError

    host = HostConnection(spec)
    try:
        await asyncio.wait_for(host.connection(), CHECK_TIMEOUT)
    except (RemoteError, TimeoutError) as exc:
        return str(exc) or f"host {spec.name!r} did not answer in {CHECK_TIMEOUT:g}s"
    finally:
        host.close()
    return None


async def _all(specs: list[HostSpec]) -> list[str | None]:
    return list(await asyncio.gather(*(_problem(spec) for spec in specs)))


def unreachable(specs: list[HostSpec]) -> dict[str, str]:
    """The hosts that cannot be reached now, each with why (and the fix, where there is one)."""
    found: list[str | None] = []

    def check() -> None:
        found.extend(asyncio.run(_all(specs)))

    worker = threading.Thread(target=check, name="hosts-check")
    worker.start()
    worker.join()
    return {spec.name: problem for spec, problem in zip(specs, found, strict=True) if problem}
