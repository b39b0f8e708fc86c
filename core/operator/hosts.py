"""`corral hosts`: the `ssh` runtime's pool, each host checked now, with what runs there.

The pool is the user's `hosts.toml` and, given a plan, its `[[host]]` tables
(core/remote/config.py). Each host gets one connection and a `true` round trip (its latency);
the slots in use are the attempts of the repository's runs that the log shows running there.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from pydantic import BaseModel

from corral.core.plan.hosts import HostSpec

CHECK_TIMEOUT = 10.0


class HostStatus(BaseModel):
    name: str
    address: str
    slots: int
    in_use: int
    """Attempts of this repository's runs that run there now (as their logs say)."""
    up: bool
    latency_ms: float | None = None
    """The round trip of `true` over the connection, in milliseconds."""
    error: str = ""
    workdir: str


class HostList(BaseModel):
    hosts: list[HostStatus]


def _in_use(common_dir: Path | None) -> dict[str, int]:
    if common_dir is None:
        return {}
    from corral.core.log.state import ACTIVE_STATES
    from corral.core.runs.index import run_state
    from corral.core.runs.rundir import list_runs

    counts: dict[str, int] = {}
    for rundir in list_runs(common_dir):
        try:
            state = run_state(rundir)
        except (OSError, ValueError):
            continue
        for agent in state.agents.values():
            attempt = agent.current
            if attempt is not None and attempt.host and agent.state in ACTIVE_STATES:
                counts[attempt.host] = counts.get(attempt.host, 0) + 1
    return counts


async def _check(spec: HostSpec) -> tuple[bool, float | None, str]:
    from corral.core.remote.connection import HostConnection
    from corral.core.remote.remote import RemoteError

    host = HostConnection(spec)
    try:
        latency = await asyncio.wait_for(host.check(), CHECK_TIMEOUT)
    except (RemoteError, TimeoutError) as exc:
        return False, None, str(exc) or "no answer in time"
    finally:
        host.close()
    return True, latency, ""


async def _check_all(specs: list[HostSpec]) -> list[tuple[bool, float | None, str]]:
    return list(await asyncio.gather(*(_check(spec) for spec in specs)))


def host_list(plan_hosts: list[HostSpec], common_dir: Path | None) -> HostList:
    """Every host of the pool, checked (at once, each within CHECK_TIMEOUT)."""
    from corral.core.remote.config import pool

    specs = pool(plan_hosts)
    checks = asyncio.run(_check_all(specs)) if specs else []
    used = _in_use(common_dir)
    return HostList(
        hosts=[
            HostStatus(
                name=spec.name,
                address=spec.address,
                slots=spec.slots,
                in_use=used.get(spec.name, 0),
                up=up,
                latency_ms=round(latency * 1000, 1) if latency is not None else None,
                error=error,
                workdir=spec.workdir,
            )
            for spec, (up, latency, error) in zip(specs, checks, strict=True)
        ]
    )
