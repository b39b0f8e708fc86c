"""The engine's side of one attempt on a Ray node: its handle, and the execution a pump follows.

`RayExecution` is what the engine's liveness watch holds for a command running in an attempt's
actor (core/ray/actor.py): a pump task calls `actor.poll(offset)` for the new output (appended
to the host `output.log`), the tree's CPU seconds and its exit; at the exit the output
directory's files come back. An actor that dies or whose node goes (`RayActorError`) ends it
`lost`, as does any failure to follow it (so no wait is left hanging).
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from corral.core.ray.actor import NodePaths
from corral.core.runtime.base import Ended, Identity, Stopped
from corral.core.runtime.kill import TerminateError

POLL_IDLE = 0.25
"""Seconds between output polls while an agent writes nothing."""
NODE_GONE = "its Ray actor or node is gone"


class RayIdentity(Identity):
    """An attempt's actor: the node it runs on, the actor, and the agent's pid there (with the
    kernel start time). `pid`/`start_time` stay unset: the process is not on the engine's host."""

    node_id: str
    actor_id: str
    actor_name: str
    host: str
    node_pid: int
    node_start_time: float


def is_actor_error(exc: BaseException) -> bool:
    from ray.exceptions import RayActorError

    return isinstance(exc, RayActorError)


class AttemptHandle:
    """What the engine holds of one placed attempt."""

    def __init__(self, handle: Any, paths: NodePaths) -> None:
        self.handle = handle
        self.paths = paths
        self.pulled = 0
        """Bytes of the node's log already appended to the host log (setup and agent share it)."""
        self.relay: asyncio.Task[None] | None = None


class RayExecution:
    """One command of an attempt running in its actor, watched by a pump task."""

    def __init__(
        self,
        identity: RayIdentity,
        attempt: AttemptHandle | None,
        handle: Any,
        log_path: Path,
        output_dir: Path,
    ) -> None:
        self._identity = identity
        self.attempt = attempt
        self.handle = handle
        self.log_path = log_path
        self.output_dir = output_dir
        self._ended: Ended | None = None
        self._done = asyncio.Event()
        self._cpu: float | None = 0.0
        self._size: int | None = None
        self.pump: asyncio.Task[None] | None = None

    @property
    def identity(self) -> RayIdentity:
        return self._identity

    @property
    def input(self) -> None:
        return None

    def watch(self) -> None:
        self.pump = asyncio.get_running_loop().create_task(self._pump(), name="ray-output")

    async def _pump(self) -> None:
        attempt = self.attempt
        assert attempt is not None
        try:
            while True:
                data, cpu, code = await self.handle.poll.remote(attempt.pulled)
                if data:
                    await asyncio.to_thread(_append, self.log_path, data)
                    attempt.pulled += len(data)
                self._size = attempt.pulled
                self._cpu = cpu
                if code is not None and not data:
                    await self._fetch_outputs()
                    self._end(
                        Ended("killed", signal=-code, code=code)
                        if code < 0
                        else Ended("exited", code=code)
                    )
                    return
                if not data:
                    await asyncio.sleep(POLL_IDLE)
        except Exception as exc:
            # an actor gone is the expected loss; anything else (the host log unwritable, a
            # bug) must still end the wait rather than leave the attempt watched for ever
            what = NODE_GONE if is_actor_error(exc) else "its output could not be followed"
            self._end(Ended("lost", reason=f"{what}: {type(exc).__name__}: {exc}"[:500]))

    async def _fetch_outputs(self) -> None:
        files: dict[str, bytes] = await self.handle.output_files.remote()
        await asyncio.to_thread(_write_files, self.output_dir, files)

    def _end(self, ended: Ended) -> None:
        self._ended = ended
        self._cpu = None
        self._done.set()

    async def wait(self, timeout: float | None) -> Ended | None:  # noqa: ASYNC109
        if self._ended is None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._done.wait(), timeout)
        return self._ended

    async def terminate(self, grace: float) -> Stopped:
        try:
            stopped, forced = await self.handle.terminate.remote(grace)
        except Exception as exc:
            if not is_actor_error(exc):
                raise terminate_error(exc) from exc
            return Stopped(details=[NODE_GONE])
        if self.pump is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self._done.wait()), 10.0)
        return Stopped(stopped=stopped, forced=forced)

    async def pause(self) -> int:
        paused: int = await self.handle.pause.remote()
        return paused

    async def resume(self) -> int:
        resumed: int = await self.handle.resume.remote()
        return resumed

    def cpu_seconds(self) -> float | None:
        return self._cpu

    def output_size(self) -> int | None:
        return self._size


def terminate_error(exc: BaseException) -> TerminateError:
    return TerminateError(
        f"the attempt's processes on its node could not be confirmed gone: {exc}", []
    )


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as log:
        log.write(data)


def _write_files(root: Path, files: dict[str, bytes]) -> None:
    for name, data in files.items():
        target = (root / name).resolve()
        if not target.is_relative_to(root.resolve()) or target.name == "output.log":
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
