"""The human gate: approve or reject a run's report, bound to what the reviewer saw.

A decision is written by whoever holds the run's engine lock, so the log keeps one writer;
it names the reviewer, the report's sha256 and the log head (docs/reliability.md M4, E7), and it is
durable before anyone is told it happened. `corral review` and the console both come here.
"""

from __future__ import annotations

import asyncio
import base64
import getpass
import hashlib
import os
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import filelock

from corral.core import events as ev
from corral.core.eventlog import EventWriter
from corral.core.plan import PlanError, load_plan
from corral.core.rundir import RunDir
from corral.core.state import RunState, fold
from corral.worktrees.git import run_git_result


class ReviewRefused(Exception):
    """The decision cannot be taken as asked; the message says why and what to do."""


@dataclass(frozen=True)
class ReviewResult:
    decision: Literal["approved", "rejected"]
    by: str
    report_sha256: str
    log_head: str
    landed: str | None
    message: str


def _ssh_key_fingerprint() -> str | None:
    """The public key the SSH session logged in with (OpenSSH `ExposeAuthInfo yes`)."""
    info = os.environ.get("SSH_USER_AUTH")
    if not info:
        return None
    try:
        lines = Path(info).read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "publickey":
            try:
                blob = base64.b64decode(parts[2])
            except ValueError:
                continue
            digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
            return f"SHA256:{digest}"
    return None


def reviewer_identity() -> str:
    """The OS user, with the SSH key fingerprint (or the client address) when reached over SSH."""
    user = getpass.getuser()
    fingerprint = _ssh_key_fingerprint()
    if fingerprint:
        return f"{user} (ssh key {fingerprint})"
    connection = os.environ.get("SSH_CONNECTION")
    if connection:
        return f"{user} (ssh from {connection.split()[0]})"
    return user


def report_sha256(rundir: RunDir, state: RunState) -> str:
    """sha256 of the report on disk, which must be the one the log names."""
    if state.report is None:
        raise ReviewRefused(
            "the run has no report yet; wait until its agents finish and the report is written"
        )
    try:
        data = Path(state.report.path).read_bytes()
    except OSError as exc:
        raise ReviewRefused(f"cannot read the report {state.report.path}: {exc.strerror}") from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != state.report.sha256:
        raise ReviewRefused(
            f"the report on disk (sha256 {digest[:12]}) is not the one the log recorded "
            f"({state.report.sha256[:12]}); it was changed outside corral — do not approve it"
        )
    return digest


class _Decision:
    """Holds the run's engine lock and its log for the length of one decision."""

    def __init__(self, rundir: RunDir) -> None:
        self.rundir = rundir
        self.lock = filelock.FileLock(rundir.engine_lock, timeout=0)

    async def __aenter__(self) -> tuple[EventWriter, RunState]:
        try:
            self.lock.acquire()
        except filelock.Timeout:
            raise ReviewRefused(
                f"run {self.rundir.run_id} is still running; decide once its agents have finished"
            ) from None
        try:
            self.writer, contents = await EventWriter.open(self.rundir.events)
        except BaseException:
            self.lock.release()
            raise
        return self.writer, fold(contents.events)

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.writer.close()
        finally:
            self.lock.release()


def _check_reviewable(state: RunState, rundir: RunDir, shown_sha256: str) -> str:
    digest = report_sha256(rundir, state)
    if digest != shown_sha256:
        raise ReviewRefused(
            f"the report changed since it was shown (shown {shown_sha256[:12]}, now {digest[:12]}); "
            "look at it again before deciding"
        )
    if state.review is not None:
        raise ReviewRefused(f"the report was already {state.review.decision} by {state.review.by}")
    return digest


def _land(state: RunState) -> str | None:
    """Move the base branch to the integration result, only if it has not moved (CAS)."""
    target = state.merge.integration_commit
    if target is None or target == state.snapshot:
        return None
    ref = state.base_ref if state.base_ref.startswith("refs/") else f"refs/heads/{state.base_ref}"
    repo = Path(state.repo)
    current = run_git_result(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if current.status != 0:
        raise ReviewRefused(
            f"the base {state.base_ref!r} is not a branch corral can move; merge {target} by hand"
        )
    now = current.stdout.strip()
    if now != state.snapshot:
        raise ReviewRefused(
            f"the base branch {state.base_ref} moved since the run started (was {state.snapshot[:12]}, "
            f"now {now[:12]}); nothing was landed — start a new run on the new base"
        )
    moved = run_git_result(
        repo, "update-ref", "-m", "corral: approved run", ref, target, state.snapshot
    )
    if moved.status != 0:
        raise ReviewRefused(
            f"the base branch {state.base_ref} moved while approving; nothing was landed"
        )
    return target


def _undo_land(state: RunState, landed: str) -> None:
    ref = state.base_ref if state.base_ref.startswith("refs/") else f"refs/heads/{state.base_ref}"
    run_git_result(
        Path(state.repo),
        "update-ref",
        "-m",
        "corral: approval not recorded",
        ref,
        state.snapshot,
        landed,
    )


def _distinct_reviewer_required(rundir: RunDir) -> bool:
    try:
        plan = load_plan(rundir.plan)
    except PlanError:
        return False
    return bool(getattr(plan.run, "require_distinct_reviewer", False))


def _run(coro: Coroutine[Any, Any, ReviewResult]) -> ReviewResult:
    """Run a decision to its end from plain code or from inside the console's event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def approve(rundir: RunDir, by: str, shown_sha256: str) -> ReviewResult:
    """Approve the report the reviewer saw; a coding run's integration branch lands on the base."""
    return _run(_approve(rundir, by, shown_sha256))


def reject(rundir: RunDir, by: str, reason: str, shown_sha256: str) -> ReviewResult:
    """Reject the report with a reason; nothing lands."""
    if not reason.strip():
        raise ReviewRefused("a rejection needs a reason; say what is wrong with the report")
    return _run(_reject(rundir, by, reason, shown_sha256))


async def _approve(rundir: RunDir, by: str, shown_sha256: str) -> ReviewResult:
    async with _Decision(rundir) as (writer, state):
        digest = _check_reviewable(state, rundir, shown_sha256)
        if state.report is not None and not state.report.synthesized:
            raise ReviewRefused(
                "the run fell below min_success, so there is nothing to approve; reject it"
            )
        if _distinct_reviewer_required(rundir) and state.engine is not None:
            starter = state.engine.user
            if by == starter or by.split(" ", 1)[0] == starter:
                raise ReviewRefused(
                    f"{starter} started this run and the plan requires a different reviewer"
                )
        head = writer.head
        landed = _land(state)
        try:
            await writer.append(
                ev.ReportApproved(by=by, report_sha256=digest, log_head=head, landed=landed)
            )
        except BaseException:
            if landed is not None:
                _undo_land(state, landed)
            raise
        where = f"; {state.base_ref} now points at {landed[:12]}" if landed else ""
        return ReviewResult("approved", by, digest, head, landed, f"approved by {by}{where}")


async def _reject(rundir: RunDir, by: str, reason: str, shown_sha256: str) -> ReviewResult:
    async with _Decision(rundir) as (writer, state):
        digest = _check_reviewable(state, rundir, shown_sha256)
        head = writer.head
        await writer.append(
            ev.ReportRejected(by=by, reason=reason.strip(), report_sha256=digest, log_head=head)
        )
        return ReviewResult(
            "rejected", by, digest, head, None, f"rejected by {by}: {reason.strip()}"
        )
