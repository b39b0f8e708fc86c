"""An attempt on a Ray node: one actor that makes the workspace, runs the agent and answers the engine.

The engine (core/runtime/ray_runtime.py) creates one `AttemptActor` per attempt, named after it
and detached (it outlives an engine crash, so a resumed engine finds and stops it). Everything
here runs on the node, as the `local` runtime does on the engine's host, with corral's own code:

- the snapshot arrives as a git bundle in Ray's object store and is unpacked once per node
  (core/ray/bundles.py); the workspace is a clone of it on the attempt's branch;
- the agent runs in its own session under the keeper (core/ray/keeper.py: its tree dies with the
  actor), marked with its attempt, its output appended to a node-local file the engine pulls
  (`poll`);
- its control socket is the actor's (core/ray/relay.py `NodeListener`), carried to the engine;
- `terminate` stops the tree and every marked process and confirms it (core/runtime/kill.py);
- `collect` commits what is left and returns the branch as a bundle.

The layout on the node is fixed by the attempt alone (`node_paths`), so the engine can tell
the agent its paths before the actor is placed.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corral.core.errors import CorralError
from corral.core.ray import bundles
from corral.core.ray.relay import Frame, NodeListener

OUTPUT_CHUNK = 1 << 20
"""At most this many bytes of output per `poll`."""


@dataclass(frozen=True)
class NodePaths:
    """Where an attempt lives on its node."""

    root: Path
    workspace: Path
    output_dir: Path
    log: Path
    socket: Path
    shared: Path
    cache: Path


def node_paths(base: str, run_id: str, agent: str, attempt: int, snapshot: str) -> NodePaths:
    """The attempt's directories under the node's `base` (`[run.ray] node_dir`)."""
    root = Path(base) / run_id / f"{agent}.{attempt}"
    digest = hashlib.sha256(f"{run_id}/{agent}/{attempt}".encode()).hexdigest()[:20]
    return NodePaths(
        root=root,
        workspace=root / "work",
        output_dir=root / "out",
        log=root / "output.log",
        socket=Path(base) / "sockets" / f"{digest}.sock",  # short: a socket path has 107 bytes
        shared=Path(base) / run_id / "shared",
        cache=Path(base) / "cache" / f"{snapshot}.git",
    )


class AttemptActor:
    """One attempt on its node (made a Ray actor by core/runtime/ray_runtime.py)."""

    def __init__(self, paths: NodePaths, run_id: str, agent: str, attempt: int) -> None:
        from corral.core.runtime.procfs import CpuSampler, Marks

        self.paths = paths
        self.marks = Marks(run_id=run_id, agent=agent, attempt=attempt)
        self.cpu = CpuSampler()
        self.spawned: Any = None
        self.listener = NodeListener(paths.socket)

    async def where(self) -> dict[str, Any]:
        """Which node, actor and process this is (the identity the engine logs)."""
        import ray

        context = ray.get_runtime_context()
        return {
            "node_id": context.get_node_id(),
            "actor_id": context.get_actor_id(),
            "host": os.uname().nodename,
            "worker_pid": os.getpid(),
        }

    async def prepare(
        self, snapshot_ref: list[Any], snapshot: str, branch: str, files: dict[str, bytes]
    ) -> None:
        """The workspace: the snapshot (from the node's cache) on `branch`, `files` copied in."""
        import ray

        paths = self.paths

        def make() -> None:
            shutil.rmtree(paths.root, ignore_errors=True)
            for directory in (paths.output_dir, paths.shared):
                directory.mkdir(parents=True, exist_ok=True)
            bundles.unpack_snapshot(paths.cache, snapshot, lambda: ray.get(snapshot_ref[0]))
            bundles.clone_attempt(paths.cache, paths.workspace, snapshot, branch)
            for name, data in files.items():
                _write_inside(paths.workspace, name, data)

        await asyncio.to_thread(make)
        await self.listener.open()

    async def start(
        self, argv: list[str], env: dict[str, str], files: dict[str, bytes]
    ) -> tuple[int, float]:
        """Start the agent under the keeper; its pid and kernel start time (raises StartError)."""
        from corral.core.runtime.proctree import spawn

        for name, data in files.items():  # the output dir's files the engine made (overlay/)
            _write_inside(self.paths.output_dir, name, data)
        env = dict(env)
        bin_dir = str(Path(sys.executable).parent)
        env["PATH"] = bin_dir + os.pathsep + env.get("PATH", os.defpath)
        if shutil.which(argv[0], path=env["PATH"]) is None and os.sep not in argv[0]:
            raise StartError(f"cannot start {argv[0]!r}: not found on the node's PATH")
        keeper = str(Path(__file__).with_name("keeper.py"))
        command = [sys.executable, "-I", keeper, str(os.getpid()), "--", *argv]
        # spawned from the actor's loop thread: the keeper's parent-death signal follows the
        # thread that forked it, and this one lives as long as the actor
        self.spawned = spawn(command, cwd=self.paths.workspace, env=env, log_path=self.paths.log)
        return self.spawned.pid, self.spawned.start_time

    async def poll(self, offset: int) -> tuple[bytes, float | None, int | None]:
        """New output from `offset`, CPU seconds of the tree, and its exit status once ended."""
        code = None if self.spawned is None else self.spawned.popen.poll()
        data = await asyncio.to_thread(_read_from, self.paths.log, offset)
        cpu = None
        if self.spawned is not None and code is None:
            cpu = self.cpu.cpu_seconds(self.spawned.pid, self.spawned.start_time)
        return data, cpu, code

    async def output_files(self) -> dict[str, bytes]:
        """What the agent wrote to its output directory (findings.json, reports)."""
        root = self.paths.output_dir
        found: dict[str, bytes] = {}
        for path in root.rglob("*"):
            if path.is_file() and not path.is_symlink():
                found[str(path.relative_to(root))] = path.read_bytes()
        return found

    async def terminate(self, grace: float) -> tuple[int, int]:
        """Nothing of the attempt runs on this node: its tree and every marked process, confirmed.

        (stopped, forced); raises TerminateError when something outlives SIGKILL."""
        from corral.core.runtime.kill import terminate_attempt

        spawned = self.spawned
        result = await terminate_attempt(
            self.marks,
            grace=grace,
            pid=spawned.pid if spawned else None,
            start_time=spawned.start_time if spawned else None,
            popen=spawned.popen if spawned else None,
        )
        return len(result.signalled), len(result.forced)

    async def pause(self) -> int:
        from corral.core.runtime.kill import pause_tree

        if self.spawned is None:
            return 0
        return pause_tree(self.spawned.pid, self.spawned.start_time, marks=self.marks)

    async def resume(self) -> int:
        from corral.core.runtime.kill import resume_tree

        if self.spawned is None:
            return 0
        return resume_tree(self.spawned.pid, self.spawned.start_time, marks=self.marks)

    async def collect(self, snapshot: str, branch: str) -> bytes | None:
        """Commit what is left uncommitted on `branch`; the branch as a bundle (None: unchanged)."""
        from corral.worktrees.integrate import commit_leftovers

        def run() -> bytes | None:
            commit_leftovers(
                self.paths.workspace, self.marks.agent, self.marks.attempt, branch=branch
            )
            return bundles.branch_bundle(self.paths.workspace, branch, snapshot)

        return await asyncio.to_thread(run)

    async def relay_pull(self, timeout: float) -> list[Frame]:  # noqa: ASYNC109
        return await self.listener.pull(timeout)

    async def relay_push(self, conn: int, data: bytes) -> None:
        await self.listener.push(conn, data)

    async def release(self) -> None:
        """The attempt is over: its socket and directory go (the snapshot cache stays)."""
        self.listener.close()
        await asyncio.to_thread(shutil.rmtree, self.paths.root, True)

    async def ping(self) -> float:
        return time.time()


class StartError(CorralError):
    """The agent's program cannot be started on the node."""


def _read_from(path: Path, offset: int) -> bytes:
    try:
        with open(path, "rb") as log:
            log.seek(offset)
            return log.read(OUTPUT_CHUNK)
    except FileNotFoundError:
        return b""


def _write_inside(root: Path, name: str, data: bytes) -> None:
    target = (root / name).resolve()
    if not target.is_relative_to(root.resolve()):
        raise ValueError(f"{name!r} is outside {root}")
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)
