"""The connection to a Ray cluster, and what it has free: the one place corral calls `ray.init`.

`ray` is an optional dependency (`pip install 'corral[ray]'`): `require_ray` says so plainly
when it is missing. `connect` is idempotent within a process (a test's driver may already be
connected to its local cluster) and gives up after `connect_timeout` with `ClusterUnreachable`
naming the address and how to check it. `cluster_line` is the console's summary.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import signal
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corral.core.errors import InputError
from corral.core.plan.resources import RaySettings

INSTALL_HINT = "pip install 'corral[ray]'"


class RayMissing(InputError):
    """`runtime = "ray"` without Ray installed."""

    def __init__(self) -> None:
        super().__init__(
            f'runtime "ray" needs the Ray package, which is not installed; run {INSTALL_HINT}'
        )


class ClusterUnreachable(InputError):
    """The cluster of `[run.ray] address` did not answer."""


def require_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise RayMissing() from None
    return ray


def ray_available() -> bool:
    try:
        import ray  # noqa: F401
    except ImportError:
        return False
    return True


def _host_port(address: str) -> tuple[str, int] | None:
    """`host:port` or `ray://host:port` as a pair; None for `auto` (Ray finds it locally)."""
    text = address.removeprefix("ray://")
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def _check_reachable(address: str, seconds: float) -> None:
    """A TCP connection to the head first: `ray.init` itself retries an absent GCS for
    minutes in C++, where no Python timeout reaches it."""
    target = _host_port(address)
    if target is None:
        return
    deadline = time.monotonic() + seconds
    while True:
        try:
            with socket.create_connection(target, timeout=min(5.0, seconds)):
                return
        except OSError as exc:
            if time.monotonic() >= deadline:
                raise ClusterUnreachable(
                    f"the Ray cluster at {address!r} does not answer ({exc.strerror or exc}); "
                    "check that its head runs (`ray status --address ...`) and that [run.ray] "
                    "address names it"
                ) from None
            time.sleep(0.5)


def connect(settings: RaySettings) -> Any:
    """The `ray` module, connected to the cluster of `settings` (once per process)."""
    ray = require_ray()
    if ray.is_initialized():
        return ray
    _check_reachable(settings.address, settings.connect_timeout)
    # ray.init replaces SIGTERM's handler with sys.exit in the main thread (and warns in any
    # other): the engine's own stop (every agent's tree, then the log) must stay the handler
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if in_main else None
    quiet = logging.getLogger("ray._private.worker")
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        ray.init(
            address=settings.address,
            namespace=settings.namespace,
            log_to_driver=False,
            logging_level="ERROR",
            configure_logging=False,
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterUnreachable(
            f"cannot connect to the Ray cluster at {settings.address!r}: {exc}; start one "
            "(`ray start --head --resources '{\"corral_slot\": 8}'`) or set [run.ray] address"
        ) from None
    finally:
        quiet.setLevel(level)
        if in_main and previous is not None:
            signal.signal(signal.SIGTERM, previous)
    return ray


@dataclass(frozen=True)
class ClusterSummary:
    """The cluster as the engine last saw it (`rundir/runtime/ray/cluster.json`)."""

    nodes: int
    slots_total: float
    slots_free: float
    at: float = 0.0
    """When it was seen (wall clock)."""

    @property
    def line(self) -> str:
        return f"ray: {self.nodes} nodes, {self.slots_free:g}/{self.slots_total:g} slots free"


def summary_path(rundir: Path) -> Path:
    return rundir / "runtime" / "ray" / "cluster.json"


def write_summary(rundir: Path, seen: ClusterSummary) -> None:
    """For `corral status` and the console, which do not connect to the cluster themselves."""
    from corral.core.atomic import write_atomic

    path = summary_path(rundir)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, json.dumps(dataclasses.asdict(seen)).encode())


def read_summary(rundir: Path) -> ClusterSummary | None:
    """The last summary the run's engine wrote; None for a run not on Ray (or unreadable)."""
    try:
        data = json.loads(summary_path(rundir).read_bytes())
        return ClusterSummary(
            nodes=int(data["nodes"]),
            slots_total=float(data["slots_total"]),
            slots_free=float(data["slots_free"]),
            at=float(data.get("at", 0.0)),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def summary(settings: RaySettings) -> ClusterSummary:
    """Live nodes and the slot resource, total and free (needs a connection)."""
    ray = require_ray()
    nodes = [node for node in ray.nodes() if node.get("Alive")]
    total = ray.cluster_resources().get(settings.slot_resource, 0.0)
    free = ray.available_resources().get(settings.slot_resource, 0.0)
    return ClusterSummary(
        nodes=len(nodes), slots_total=float(total), slots_free=float(free), at=time.time()
    )
