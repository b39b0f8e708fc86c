"""Attempts' workspaces, made in batches: metadata for waiting attempts at once, files two at a time.

Attempts started in the same scheduler pass ask for their worktrees within moments of each
other. Registering them one by one would hold the git metadata lock once per agent; here the
requests that arrive while a batch is being registered join the next batch (up to
BATCH_LIMIT), so fifty agents cost a handful of registrations
(`worktrees.workspace.register_workspaces`). Writing the files (`populate_workspace`) is the
heavy part, so it runs `slots` at a time (docs/performance.md), overlapping the next registration.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from corral.worktrees.errors import GitError
from corral.worktrees.workspace import (
    Registration,
    Workspace,
    populate_workspace,
    register_workspaces,
)

BATCH_LIMIT = 8
"""Registrations per batch: enough to amortise the batch's `update-ref` process, few enough that
the first checkouts start while the next batch is registered instead of after all of them."""


@dataclass
class _Request:
    agent: str
    attempt: int
    done: asyncio.Future[Workspace] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class WorkspaceFactory:
    """Hands each attempt its worktree; one registering task per engine."""

    def __init__(self, repo: Path, root: Path, run_id: str, commit: str, slots: int) -> None:
        self.repo = repo
        self.root = root
        self.run_id = run_id
        self.commit = commit
        # Its own workers, each taking the next checkout the moment it finishes one: with a
        # semaphore every handover waited for the event loop, which is busy spawning agents.
        self.checkouts = ThreadPoolExecutor(max_workers=slots, thread_name_prefix="checkout")
        self.waiting: list[_Request] = []
        self.registrar: asyncio.Task[None] | None = None
        self.batches = 0

    async def create(self, agent: str, attempt: int) -> Workspace:
        """The attempt's registered, populated worktree; raises GitError (or OSError)."""
        request = _Request(agent, attempt)
        self.waiting.append(request)
        if self.registrar is None or self.registrar.done():
            self.registrar = asyncio.create_task(self._register_waiting(), name="workspaces")
        workspace = await request.done
        await asyncio.get_running_loop().run_in_executor(
            self.checkouts, populate_workspace, workspace
        )
        return workspace

    def close(self) -> None:
        """No more workspaces: let the checkout workers end (a running checkout finishes)."""
        self.checkouts.shutdown(wait=False, cancel_futures=True)

    async def _register_waiting(self) -> None:
        while self.waiting:
            await asyncio.sleep(0)  # attempts launched in the same pass join this batch
            batch, self.waiting = self.waiting[:BATCH_LIMIT], self.waiting[BATCH_LIMIT:]
            pairs = [(request.agent, request.attempt) for request in batch]
            try:
                results = await asyncio.to_thread(
                    register_workspaces, self.repo, self.root, self.run_id, self.commit, pairs
                )
            except (GitError, OSError) as exc:
                error = exc if isinstance(exc, GitError) else _unregistered(str(exc))
                results = [Registration(r.agent, r.attempt, None, error) for r in batch]
            except BaseException as exc:
                for request in batch:
                    if not request.done.done():
                        request.done.set_exception(_unregistered(repr(exc)))
                raise
            self.batches += 1
            for request, result in zip(batch, results, strict=True):
                if request.done.done():  # its attempt was cancelled meanwhile
                    continue
                if result.workspace is not None:
                    request.done.set_result(result.workspace)
                else:
                    request.done.set_exception(result.error or GitError("not registered"))


def _unregistered(cause: str) -> GitError:
    return GitError(f"the workspace could not be registered: {cause}")
