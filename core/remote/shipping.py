"""The snapshot to a host as a git bundle, only what it lacks; the attempt's branch back.

On the host each repository has a cached bare repository, `<workdir>/repos/<id>.git`, holding
every snapshot shipped there as `refs/corral/snap/<commit>`. Shipping asks which of those it
has, bundles the snapshot minus them (`git bundle create F SNAP ^HAVE...`: the first time the
whole history, later only the new commits) and fetches the bundle there. Nothing but repository
data leaves the engine's host.

Back, the host is untrusted: the branch comes as a bundle (`git bundle create - BRANCH
^SNAPSHOT`) and is taken by worktrees/bundle.py: fetched by git (which checks every object and
their connectivity), the tip the host named, descending from the snapshot, and the local attempt
branch only if that branch does not exist yet. No hook, config or other ref of the host is ever
read here.
"""

from __future__ import annotations

import asyncio
import re
import shlex
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from corral.core.errors import CorralError
from corral.core.remote.remote import Remote, RemoteError
from corral.worktrees.bundle import BranchRefused, take_branch
from corral.worktrees.git import run_git, run_git_result
from corral.worktrees.safety import STATIC_OPTIONS

_OID = re.compile(r"^[0-9a-f]{40}(?:[0-9a-f]{24})?$")
REMOTE_GIT = "git " + " ".join(
    f"-c {shlex.quote(f'{key}={value}')}"
    for key, value in (("core.hooksPath", "/dev/null"), *STATIC_OPTIONS)
)
"""git on the host with corral's safety options (worktrees/safety.py): no hook, no fsmonitor,
no pager, no credential helper, no auto-gc; the host's repository is the agent's to write."""


class ShipError(CorralError):
    """The snapshot could not be shipped or the branch brought back (the message says why)."""


@dataclass(frozen=True)
class Shipped:
    bytes: int
    """The bundle's size (0 when the host had the snapshot already)."""
    had: int
    """How many of the host's cached snapshots the bundle left out."""


async def ship_snapshot(remote: Remote, repo_top: Path, snapshot: str, repo: str) -> Shipped:
    """Make sure the host's cached repository `repo` (a shell word) has `snapshot`."""
    probe = await remote.sh(
        f"set -e\nR={repo}\n"
        f'[ -d "$R" ] || {{ mkdir -p "$R"; {REMOTE_GIT} init -q --bare "$R"; }}\n'
        f'if {REMOTE_GIT} -C "$R" cat-file -e {snapshot}^{{commit}} 2>/dev/null; then echo HAVE; fi\n'
        f'{REMOTE_GIT} -C "$R" for-each-ref --format="%(objectname)" refs/corral/snap/\n'
    )
    if probe.status != 0:
        raise ShipError(f"host {remote.name!r}: its repository cache: {probe.problem()}")
    lines = probe.text().split()
    if "HAVE" in lines:
        return Shipped(0, 0)
    haves = [line for line in lines if _OID.match(line)]
    with tempfile.TemporaryDirectory(prefix="corral-ship-") as scratch:
        bundle = Path(scratch) / "snap.bundle"
        known = await asyncio.to_thread(_local_commits, repo_top, haves)
        ref = await asyncio.to_thread(_bundle, repo_top, bundle, snapshot, known)
        name = f"incoming-{uuid.uuid4().hex}.bundle"
        sent = await remote.sh(f"cat > {repo}/{name}", stdin=bundle, timeout=600)
        if sent.status != 0:
            raise ShipError(f"host {remote.name!r}: sending the bundle: {sent.problem()}")
        fetched = await remote.sh(
            f"R={repo}\n"
            f'{REMOTE_GIT} -C "$R" fetch -q --no-tags "$R/{name}" '
            f'"+{ref}:refs/corral/snap/{snapshot}"\n'
            f'status=$?; rm -f "$R/{name}"; exit $status\n'
        )
        if fetched.status != 0:
            raise ShipError(f"host {remote.name!r}: unbundling the snapshot: {fetched.problem()}")
        return Shipped(bundle.stat().st_size, len(known))


def _local_commits(repo_top: Path, candidates: list[str]) -> list[str]:
    """The candidates this repository has as commits (a host may cache other repositories')."""
    if not candidates:
        return []
    result = run_git_result(
        repo_top,
        "cat-file",
        "--batch-check=%(objectname) %(objecttype)",
        input="\n".join(candidates) + "\n",
    )
    return [
        parts[0]
        for line in result.stdout.splitlines()
        if len(parts := line.split()) == 2 and parts[1] == "commit"
    ]


def _bundle(repo_top: Path, bundle: Path, snapshot: str, haves: list[str]) -> str:
    """`git bundle create` needs a ref to name: a temporary one, removed at once; its name."""
    ref = f"refs/corral-ship/{uuid.uuid4().hex}"
    run_git(repo_top, "update-ref", ref, snapshot)
    try:
        run_git(repo_top, "bundle", "create", "-q", str(bundle), ref, *[f"^{h}" for h in haves])
    finally:
        run_git(repo_top, "update-ref", "-d", ref, check=False)
    return ref


async def fetch_branch(
    remote: Remote, repo_top: Path, repo: str, worktree: str, branch: str, snapshot: str
) -> str:
    """Bring `branch` back from the host's worktree into the local repository (at the snapshot
    when the attempt left it there): its commit. worktrees/bundle.py decides what is taken.
    Raises ShipError."""
    tip_run = await remote.sh(
        f"{REMOTE_GIT} -C {worktree} rev-parse --verify -q refs/heads/{shlex.quote(branch)}"
    )
    tip = tip_run.text().strip()
    if tip_run.status != 0 or not _OID.match(tip):
        raise ShipError(f"host {remote.name!r}: the attempt's branch {branch} is gone there")
    with tempfile.TemporaryDirectory(prefix="corral-fetch-") as scratch:
        bundle: Path | None = None
        if tip != snapshot:
            bundle = Path(scratch) / "branch.bundle"
            made = await remote.sh(
                f"{REMOTE_GIT} -C {worktree} bundle create -q - refs/heads/{shlex.quote(branch)} ^{snapshot}",
                stdout=bundle,
                stdin=b"",
                timeout=600,
            )
            if made.status != 0:
                raise ShipError(f"host {remote.name!r}: bundling {branch}: {made.problem()}")
        try:
            return await asyncio.to_thread(take_branch, repo_top, bundle, branch, snapshot, tip=tip)
        except BranchRefused as exc:
            raise ShipError(str(exc)) from None


def remote_failure(remote: Remote, what: str, problem: str) -> RemoteError:
    return RemoteError(f"host {remote.name!r}: {what}: {problem}")
