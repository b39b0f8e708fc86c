"""`container`: `sandbox` attempts with an image's root filesystem instead of the host's.

No daemon: an image is a directory holding a root filesystem (core/sandbox/image.py,
docs/containers.md), mounted read-only as `/` by the same bubblewrap layer as `sandbox`, so
every rule of T6 holds the same way (docs/reliability.md). What differs is only what the agent
sees: its worktree at `/workspace`, its output directory at `/run/corral/out`, the control
socket at `/run/corral/control.sock`, corral's standard-library agent package read-only under
`/run/corral/lib` with a `corral` shim first on PATH (so `corral heartbeat`, `lock` and `put`
work when the image has a Python 3.11+), and the image's PATH and a writable HOME (`/tmp`)
unless the plan's `env` sets them. Nothing of the host's files is in it but what the policy's
`read` and `write` name and the repository's git directory (read-only, as in `sandbox`).

The plan's `verify` runs in the run's image too (`[defaults] image`), on the integration
worktree at `/workspace`, with no network and no control socket: it checks the result with the
toolchain the agents had, the run's `[defaults.sandbox]` `read` and `write` paths and no
network.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from corral.core.runtime.base import (
    AttemptRef,
    AttemptRequest,
    Placement,
    PlacementFailed,
    StartFailed,
)
from corral.core.runtime.local import LocalExecution
from corral.core.runtime.sandbox import PASSED_ON, SandboxRuntime, _Attempt
from corral.core.sandbox.bwrap import SandboxCommand, sandbox_command, write_shim
from corral.core.sandbox.image import IMAGE_HOME, IMAGE_PATH, image_problem
from corral.core.sandbox.paths import CONTAINER_WORKSPACE, INSIDE_OUTPUT, AttemptPaths
from corral.core.sandbox.policy import ResolvedPolicy, SandboxPolicy

PASSED_INTO_IMAGE = tuple(name for name in PASSED_ON if name not in {"PATH", "HOME"})
"""The engine's harmless basics an image agent gets: not PATH or HOME, which name the host's
directories (the image has its own)."""


def _image_env(env: dict[str, str], plan_env: dict[str, str]) -> dict[str, str]:
    """`env` with the image's PATH and HOME unless the plan set them."""
    return {
        **env,
        "PATH": plan_env.get("PATH", IMAGE_PATH),
        "HOME": plan_env.get("HOME", IMAGE_HOME),
    }


class ContainerRuntime(SandboxRuntime):
    """`sandbox` with an image as the root: the worktree at /workspace, corral's tools inside."""

    name = "container"

    def place(self, request: AttemptRequest) -> Placement:
        placed = super().place(request)
        env = _image_env(placed.env, request.plan_env)
        env["CORRAL_WORKSPACE"] = str(CONTAINER_WORKSPACE)
        env["CORRAL_OUTPUT"] = str(INSIDE_OUTPUT)
        return placed.model_copy(
            update={
                "workspace": str(CONTAINER_WORKSPACE),
                "agent_output_dir": str(INSIDE_OUTPUT),
                "env": env,
            }
        )

    async def prepare(self, request: AttemptRequest, placement: Placement) -> None:
        problem = (
            'the agent has no image; set image = "DIR" on it or in [defaults]'
            if request.image is None
            else image_problem(request.image)
        )
        if problem is not None:
            raise PlacementFailed(problem)
        await super().prepare(request, placement)
        self.attempts[request.ref].image = request.image

    async def _attempt_paths(self, placement: Placement, held: _Attempt) -> AttemptPaths:
        paths = await super()._attempt_paths(placement, held)
        # `~` in the policy's paths is the host's home: they are host paths bound inside
        return dataclasses.replace(paths, image=held.image, home=Path.home())

    def _shim_dir(self) -> Path:
        """The `corral` shim, written once per engine into the runtime's own directory."""
        directory = self.setup.rundir / "runtime" / self.name / "bin"
        if not (directory / "corral").is_file():
            write_shim(directory)
        return directory

    def _command(
        self,
        policy: ResolvedPolicy,
        paths: AttemptPaths,
        argv: list[str],
        env: dict[str, str],
        info_fd: int,
        terminal: bool = False,
    ) -> SandboxCommand:
        return sandbox_command(
            policy,
            paths,
            argv,
            env,
            bwrap=self.bwrap,
            python="python3",
            shim_dir=self._shim_dir(),
            info_fd=info_fd,
            terminal=terminal,
        )

    # -- the plan's `verify`, in the run's image --------------------------------------------

    def place_command(
        self, ref: AttemptRef, directory: Path, log_path: Path, env: dict[str, str]
    ) -> Placement:
        """In the run's image when it has one (`[defaults] image`), else as `local` runs it."""
        placement = super().place_command(ref, directory, log_path, env)
        if self.setup.image is None:
            return placement
        kept = {
            k: v
            for k, v in placement.env.items()
            if k.startswith("CORRAL_") or k in PASSED_INTO_IMAGE
        }
        return placement.model_copy(
            update={
                "runtime": self.name,
                "workspace": str(CONTAINER_WORKSPACE),
                "env": _image_env(kept, {}),
            }
        )

    async def start(
        self,
        placement: Placement,
        argv: list[str],
        *,
        interactive: bool = False,
        tty: tuple[int, int] | None = None,
    ) -> LocalExecution:
        if placement.runtime == self.name and placement.ref not in self.attempts:
            return await self._start_command(placement, argv)
        return await super().start(placement, argv, interactive=interactive, tty=tty)

    async def _start_command(self, placement: Placement, argv: list[str]) -> LocalExecution:
        """A command of corral's own (the `verify`) in the run's image, on `host_workspace`."""
        from corral.worktrees.git import admin_dir

        image = self.setup.image
        problem = "the run has no image" if image is None else image_problem(image)
        if problem is not None:
            raise StartFailed(problem)
        record = admin_dir(placement.host_workspace)
        if record is None:
            raise StartFailed(f"{placement.host_workspace} has no git record")
        output = self.setup.rundir / "runtime" / self.name / f"{placement.ref.agent}-out"
        await asyncio.to_thread(output.mkdir, parents=True, exist_ok=True)
        paths = AttemptPaths(
            worktree=placement.host_workspace,
            output_dir=output,
            socket=None,
            common_dir=self._common_dir(),
            admin_dir=record,
            private_gitdir=record,  # the integration worktree's own record, writable
            home=Path.home(),
            image=image,
        )
        policy = (self.setup.sandbox or SandboxPolicy()).resolve(paths.home)
        offline = dataclasses.replace(policy, network="none", allow=frozenset())
        return await self._spawn(placement, offline, paths, argv)
