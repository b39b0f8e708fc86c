"""`ray`: each attempt an actor on a node of a Ray cluster; the engine stays where it is.

The engine keeps everything it owns (the event log, the locks, the merge, every decision); Ray
only places and babysits attempts. An attempt is an `AttemptActor` (core/ray/actor.py), named
`corral/<run>/<agent>/<attempt>` and detached, with `{slot_resource: 1}` and no CPU unless the
agent's `[agent.resources]` asks for more. Here, on the engine's side:

- the snapshot is put in the object store once per run as a bundle (core/ray/bundles.py);
- a pump per execution pulls the agent's new output into the host `output.log`, its CPU
  seconds and its exit (`actor.poll`); its control socket is relayed (core/ray/relay.py);
- an actor that dies or whose node goes (`RayActorError`) ends the execution `lost`;
- `collect` fetches the branch back as a bundle; `release` kills the actor;
- `reattach` finds the actor by name and checks its actor id, then recovery stops it.

The plan's `verify` runs on the engine's host (`place_command`: the local runtime's), since its
worktree is here.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from corral.core.plan.resources import AgentResources, RaySettings
from corral.core.ray import bundles
from corral.core.ray.actor import AttemptActor, NodePaths, node_paths
from corral.core.ray.cluster import connect, summary, write_summary
from corral.core.ray.execution import (
    AttemptHandle,
    RayExecution,
    RayIdentity,
    is_actor_error,
    terminate_error,
)
from corral.core.ray.relay import EngineRelay
from corral.core.runs.rundir import RunDir
from corral.core.runtime.base import (
    AttemptRef,
    AttemptRequest,
    CollectFailed,
    Execution,
    Identity,
    Placement,
    PlacementFailed,
    RuntimeSetup,
    StartFailed,
    Stopped,
)
from corral.core.runtime.local import LocalRuntime
from corral.worktrees.bundle import BranchRefused

SUMMARY_EVERY = 2.0
"""Seconds between two writes of the cluster's summary for `corral status` and the console."""


def actor_name(ref: AttemptRef) -> str:
    return f"corral/{ref.run_id}/{ref.agent}/{ref.attempt}"


def actor_options(settings: RaySettings, resources: AgentResources | None) -> dict[str, Any]:
    """Ray's actor options for one attempt: a slot, and no CPU unless asked."""
    wanted = resources or AgentResources()
    custom: dict[str, float] = {settings.slot_resource: wanted.slots, **wanted.custom}
    if wanted.node is not None:
        custom[wanted.node] = 0.001
    options: dict[str, Any] = {
        "num_cpus": wanted.cpus,
        "num_gpus": wanted.gpus,
        "resources": {name: amount for name, amount in custom.items() if amount > 0},
        "lifetime": "detached",
        "max_restarts": 0,
        "max_concurrency": 64,
        "namespace": settings.namespace,
    }
    if wanted.memory_mb is not None:
        options["memory"] = wanted.memory_mb * 1024 * 1024
    return options


def _output_files(root: Path) -> dict[str, bytes]:
    """The host output dir's files the engine made before the start (the presets' overlay)."""
    if not root.is_dir():
        return {}
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in root.rglob("*")
        if path.is_file() and not path.is_symlink() and path.name != "output.log"
    }


class RayRuntime:
    """Attempts as actors on a Ray cluster; the plan's `verify` on this host."""

    name = "ray"

    def __init__(self, setup: RuntimeSetup) -> None:
        self.setup = setup
        self.settings = setup.ray or RaySettings()
        self.ray = connect(self.settings)
        self.local = LocalRuntime(setup)
        self.remote_class = self.ray.remote(AttemptActor)
        self.attempts: dict[AttemptRef, AttemptHandle] = {}
        self._snapshot: Any = None
        self._snapshot_lock = asyncio.Lock()
        self._summaries: asyncio.Task[None] | None = None

    async def _write_summaries(self) -> None:
        """The cluster line, refreshed while the engine runs (a failure only skips a refresh)."""
        while True:
            with contextlib.suppress(Exception):
                seen = await asyncio.to_thread(summary, self.settings)
                await asyncio.to_thread(write_summary, Path(self.setup.rundir), seen)
            await asyncio.sleep(SUMMARY_EVERY)

    def _paths(self, ref: AttemptRef) -> NodePaths:
        return node_paths(
            self.settings.node_dir, ref.run_id, ref.agent, ref.attempt, self.setup.snapshot
        )

    def place(self, request: AttemptRequest) -> Placement:
        ref = request.ref
        paths = self._paths(ref)
        env = {**request.plan_env, **request.corral_env}
        for name in ("PATH", "HOME", "LANG", "TERM"):
            if name in request.base_env and name not in env:
                env[name] = request.base_env[name]
        env.update(
            {
                "CORRAL_WORKSPACE": str(paths.workspace),
                "CORRAL_OUTPUT": str(paths.output_dir),
                "CORRAL_SOCKET": str(paths.socket),
                "CORRAL_SHARED": str(paths.shared),
            }
        )
        return Placement(
            ref=ref,
            runtime=self.name,
            branch=f"corral/{ref.run_id}/{ref.agent}/{ref.attempt}",
            # not on this host: the conflict watch skips a workspace that is not a directory here
            host_workspace=Path(self.setup.rundir) / "runtime" / "ray" / "remote" / ref.label,
            output_dir=request.output_dir,
            log_path=request.log_path,
            workspace=str(paths.workspace),
            agent_output_dir=str(paths.output_dir),
            agent_socket=str(paths.socket),
            env=env,
        )

    async def _snapshot_ref(self) -> Any:
        async with self._snapshot_lock:
            if self._snapshot is None:
                scratch = Path(self.setup.rundir) / "runtime" / "ray" / "ship.git"
                data = await asyncio.to_thread(
                    bundles.snapshot_bundle, self.setup.repo_top, self.setup.snapshot, scratch
                )
                self._snapshot = self.ray.put(data)
            return self._snapshot

    async def prepare(self, request: AttemptRequest, placement: Placement) -> None:
        from ray.exceptions import RayError

        if self._summaries is None:
            self._summaries = asyncio.get_running_loop().create_task(
                self._write_summaries(), name="ray-summary"
            )

        ref = request.ref
        paths = self._paths(ref)
        files = {}
        for name in request.copy_files:
            files[name] = await asyncio.to_thread((self.setup.repo_top / name).read_bytes)
        snapshot = await self._snapshot_ref()
        options = actor_options(self.settings, request.resources)
        handle = self.remote_class.options(name=actor_name(ref), **options).remote(
            paths, ref.run_id, ref.agent, ref.attempt
        )
        attempt = self.attempts[ref] = AttemptHandle(handle, paths)
        try:
            await handle.prepare.remote([snapshot], self.setup.snapshot, placement.branch, files)
        except RayError as exc:
            raise PlacementFailed(f"the attempt's workspace on its node: {exc}") from exc
        attempt.relay = asyncio.get_running_loop().create_task(
            EngineRelay(
                request.socket,
                lambda timeout: handle.relay_pull.remote(timeout),
                lambda conn, data: handle.relay_push.remote(conn, data),
                token=request.corral_env.get("CORRAL_AGENT_TOKEN", ""),
            ).run(),
            name=f"ray-relay-{ref.label}",
        )
        attempt.relay.add_done_callback(_quiet)

    async def start(
        self,
        placement: Placement,
        argv: list[str],
        *,
        interactive: bool = False,
        tty: tuple[int, int] | None = None,
    ) -> Execution:
        if not placement.agent_socket:  # a command corral runs itself (`verify`): here
            return await self.local.start(placement, argv, interactive=interactive, tty=tty)
        from ray.exceptions import RayError

        if interactive or tty is not None:
            raise StartFailed(
                'runtime "ray" does not carry an agent\'s stdin or terminal yet; run this agent '
                'with runtime = "local", or without input_format and tty'
            )
        attempt = self.attempts[placement.ref]
        files = await asyncio.to_thread(_output_files, placement.output_dir)
        try:
            where = await attempt.handle.where.remote()
            pid, start_time = await attempt.handle.start.remote(argv, placement.env, files)
        except RayError as exc:
            raise StartFailed(f"on its node: {exc}") from exc
        identity = RayIdentity(
            runtime=self.name,
            node_id=where["node_id"],
            actor_id=where["actor_id"],
            actor_name=actor_name(placement.ref),
            host=where["host"],
            node_pid=pid,
            node_start_time=start_time,
        )
        execution = RayExecution(
            identity, attempt, attempt.handle, placement.log_path, placement.output_dir
        )
        execution.watch()
        return execution

    def place_command(
        self, ref: AttemptRef, directory: Path, log_path: Path, env: dict[str, str]
    ) -> Placement:
        return self.local.place_command(ref, directory, log_path, env)

    def _find(self, ref: AttemptRef) -> Any:
        with contextlib.suppress(ValueError):
            return self.ray.get_actor(actor_name(ref), namespace=self.settings.namespace)
        return None

    async def reattach(self, ref: AttemptRef, identity: Identity) -> Execution | None:
        extra = identity.model_extra or {}
        handle = await asyncio.to_thread(self._find, ref)
        if handle is None:
            return None
        try:
            where = await handle.where.remote()
        except Exception as exc:
            if is_actor_error(exc):
                return None
            raise
        if where["actor_id"] != extra.get("actor_id"):
            return None
        found = RayIdentity.model_validate({**identity.model_dump(), "runtime": self.name})
        rundir = RunDir(Path(self.setup.rundir))
        log_path = rundir.output_log(ref.agent, ref.attempt)
        return RayExecution(
            found, None, handle, log_path, rundir.output_dir(ref.agent, ref.attempt)
        )

    async def stop_attempt(
        self, ref: AttemptRef, execution: Execution | None, grace: float
    ) -> Stopped:
        attempt = self.attempts.get(ref)
        if attempt is None and isinstance(execution, RayExecution):
            handle = execution.handle
        elif attempt is not None:
            handle = attempt.handle
        else:
            handle = await asyncio.to_thread(self._find, ref)
        if handle is None:  # never placed here, or a command of this host (`verify`)
            return await self.local.stop_attempt(ref, execution, grace)
        unreachable = False
        try:
            stopped, forced = await handle.terminate.remote(grace)
        except Exception as exc:
            if not is_actor_error(exc):
                raise terminate_error(exc) from exc
            # its actor (or node) is gone: Ray ends its worker, and the keeper the agent with
            # it, but nothing here can confirm that, so its leases are not handed on early
            stopped, forced, unreachable = 0, 0, True
        if isinstance(execution, RayExecution) and execution.pump is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(execution._done.wait()), 10.0)
        if attempt is None:  # a dead engine's actor: nothing will release it
            await self._kill(handle)
        if unreachable:
            why = f"{ref.label}'s actor is gone (its node lost?): its leases run out after TTL + grace"
            return Stopped(details=[why], deferred=True)
        return Stopped(stopped=stopped, forced=forced)

    async def _kill(self, handle: Any) -> None:
        with contextlib.suppress(Exception):
            await handle.release.remote()
        with contextlib.suppress(Exception):
            self.ray.kill(handle, no_restart=True)

    async def collect(self, placement: Placement) -> None:
        from ray.exceptions import RayError

        attempt = self.attempts.get(placement.ref)
        if attempt is None:
            raise CollectFailed(f"{placement.ref.label} has no actor in this engine")
        try:
            bundle = await attempt.handle.collect.remote(self.setup.snapshot, placement.branch)
            await asyncio.to_thread(
                bundles.fetch_branch,
                self.setup.repo_top,
                placement.branch,
                self.setup.snapshot,
                bundle,
            )
        except (RayError, BranchRefused, OSError) as exc:
            raise CollectFailed(str(exc)) from exc

    async def release(self, placement: Placement) -> None:
        attempt = self.attempts.pop(placement.ref, None)
        if attempt is None:
            return
        if attempt.relay is not None:
            attempt.relay.cancel()
        await self._kill(attempt.handle)

    def close(self) -> None:
        if self._summaries is not None:
            self._summaries.cancel()
        for attempt in self.attempts.values():
            if attempt.relay is not None:
                attempt.relay.cancel()
        self.local.close()


def _quiet(task: asyncio.Task[None]) -> None:
    """A relay ends when its actor does: that is not an error to report."""
    if not task.cancelled():
        task.exception()
