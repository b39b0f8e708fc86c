"""The human gate: approve or reject a run's report, bound to what the reviewer saw.

A decision is written by whoever holds the run's engine lock, so the log keeps one writer;
it names the reviewer, the report's sha256 and the log head (docs/reliability.md M4, E7), and it is
durable before anyone is told it happened. `corral review` and the console both come here.

Approving a coding run lands its integration commit on the base through `worktrees.land`: in an
approval merge (the integration tree as it is; trailers name the reviewer, the run, the report's
sha256 and the log head, so the history itself says who approved), moved by compare-and-swap
from the run's snapshot, with every checkout of the base updated as `git merge --ff-only` would.
If the decision cannot be logged, the landing is taken back; if corral was stopped after the
base moved but before the decision was logged, approving again as the same reviewer finishes it.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import filelock

from corral.core.errors import CorralError
from corral.core.log import EventWriter
from corral.core.log import events as ev
from corral.core.log.state import RunState, apply, fold
from corral.core.plan.model import PlanError, load_plan
from corral.core.runs.rundir import RunDir
from corral.core.trust.authority import refuse_operator
from corral.core.trust.identity import (  # who decides: its home, re-exported here
    reviewer_identity as reviewer_identity,
)
from corral.core.trust.integrity import recheck_before_approve
from corral.worktrees.errors import GitError
from corral.worktrees.git import run_git_result
from corral.worktrees.land import (
    Landing,
    approval_merge,
    land,
    parents_and_trailers,
    undo_landing,
)


class ReviewRefused(CorralError):
    """The decision cannot be taken as asked; the message says why and what to do."""


class AskedByAgent(ReviewRefused):
    """The decision was asked from inside an agent (docs/reliability.md T1), and recorded."""


@dataclass(frozen=True)
class ReviewResult:
    decision: Literal["approved", "rejected"]
    by: str
    report_sha256: str
    log_head: str
    landed: str | None
    message: str


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


def _base_ref(state: RunState) -> str:
    return state.base_ref if state.base_ref.startswith("refs/") else f"refs/heads/{state.base_ref}"


def _one_line(text: str) -> str:
    """`text` with control characters and line breaks as single spaces: a trailer cannot be forged."""
    return " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())


def _approval_trailers(state: RunState, by: str, digest: str, head: str) -> dict[str, str]:
    """What the approval merge's trailers say: the history itself names who approved what."""
    return {
        "Approved-by": _one_line(by),
        "Corral-Run": state.run_id,
        "Corral-Report-SHA256": digest,
        "Corral-Log-Head": head,
    }


def _approval_message(state: RunState, trailers: dict[str, str]) -> str:
    target = state.merge.integration_commit or ""
    merged = ", ".join(m.agent for m in state.merge.merged) or "none"
    left = ", ".join(b.agent for b in state.merge.left_out) or "none"
    return (
        f"corral: land run {state.run_id}, approved by {trailers['Approved-by']}\n\n"
        f"Merges the integration commit {target} of run {state.run_id} into {state.base_ref}.\n"
        f"Merged agents: {merged}. Left out: {left}.\n\n"
        + "".join(f"{key}: {value}\n" for key, value in trailers.items())
    )


def _origin_landing(rundir: RunDir, state: RunState) -> str | None:
    """For a re-run (core/runs/rerun.py): the approval merge that landed its origin run, as that
    run's own log records it, when it landed the integration commit this run started from; a
    re-run lands on top of it. None otherwise (not a re-run, or the origin not approved yet);
    ReviewRefused when the origin was rejected."""
    if state.rerun_of is None:
        return None
    from corral.core.log import LogCorrupted
    from corral.core.runs.index import run_state

    try:
        origin = run_state(RunDir(rundir.path.parent / state.rerun_of.run))
    except (LogCorrupted, OSError):
        return None
    if origin.review is not None and origin.review.decision == "rejected":
        raise ReviewRefused(
            f"run {state.run_id} re-runs agents of run {state.rerun_of.run} on its integration "
            f"commit, and run {state.rerun_of.run} was rejected by {origin.review.by}: that "
            "commit will not land, so neither can this run; reject it and start again on the "
            "base as it is"
        )
    landed = origin.review.landed if origin.review is not None else None
    if origin.review is None or landed is None:
        return None
    parents, _ = parents_and_trailers(Path(state.repo), landed)
    return landed if parents[1:2] == (state.snapshot,) else None


def _expect_origin_landing(state: RunState, origin: str | None) -> None:
    """The base moved from the origin run's snapshot to its approval merge: corral's own landing,
    in that run's log, not tampering; the check before approve expects it there."""
    if origin is None or state.integrity is None:
        return
    ref = _base_ref(state)
    parents, _ = parents_and_trailers(Path(state.repo), origin)
    if state.integrity.refs.get(ref) == parents[0]:
        state.integrity.refs[ref] = origin


def _moved(state: RunState, now: str, origin: str | None) -> ReviewRefused:
    if state.rerun_of is not None and origin is None:
        origin = state.rerun_of.run
        return ReviewRefused(
            f"run {state.run_id} re-runs {', '.join(state.rerun_of.agents)} of run {origin} on "
            f"its integration commit {state.snapshot[:12]}, which has not landed on "
            f"{state.base_ref} (now at {now[:12]}); approve run {origin} first "
            f"(corral review approve {origin}), then this one; nothing was landed"
        )
    return ReviewRefused(
        f"the base branch {state.base_ref} moved since the run started (was {state.snapshot[:12]}, "
        f"now {now[:12]}); nothing was landed — start a new run on the new base"
    )


def _check_interrupted_approval(
    state: RunState, now: str, trailers: dict[str, str], origin: str | None
) -> str:
    """Refuse unless the base is at this very approval's merge, landed but never logged (a crash);
    returns the commit that approval landed from."""
    repo = Path(state.repo)
    parents, found = parents_and_trailers(repo, now)
    start = parents[0] if parents else ""
    if (
        len(parents) != 2
        or start not in (state.snapshot, origin)
        or parents[1] != state.merge.integration_commit
        or found.get("Corral-Run") != state.run_id
    ):
        raise _moved(state, now, origin)
    if {key: found.get(key) for key in trailers} != trailers:
        raise ReviewRefused(
            f"{state.base_ref} is at {now[:12]}, this run's approval by "
            f"{found.get('Approved-by', '?')} that was not recorded (corral stopped while landing "
            "it); approve again as that reviewer, with the same report, to finish it"
        )
    return start


def _land(
    state: RunState, by: str, digest: str, head: str, origin: str | None = None
) -> Landing | None:
    """Land the integration result on the base in an approval merge, like `git merge --ff-only`.

    The base must still be at the run's snapshot (for a re-run: or at the approval merge that
    landed its origin run), or at this same approval's merge when an earlier attempt was cut
    off after moving it; every checkout of it is updated (worktrees.land).
    """
    target = state.merge.integration_commit
    if target is None or target == state.snapshot:
        return None
    ref = _base_ref(state)
    repo = Path(state.repo)
    current = run_git_result(repo, "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}")
    if current.status != 0:
        raise ReviewRefused(
            f"the base {state.base_ref!r} is not a branch corral can move; merge {target} by hand"
        )
    now = current.stdout.strip()
    trailers = _approval_trailers(state, by, digest, head)
    try:
        start = now
        resume = now not in (state.snapshot, origin)
        if resume:
            start = _check_interrupted_approval(state, now, trailers, origin)
            merge = now
        else:
            merge = approval_merge(repo, now, target, _approval_message(state, trailers))
        reason = f"corral: approved run {state.run_id}"
        return land(repo, ref, start, merge, reason, resume=resume)
    except GitError as exc:
        raise ReviewRefused(f"cannot land on {state.base_ref}: {exc}") from None


def _landed_where(state: RunState, landing: Landing | None) -> str:
    if landing is None:
        return ""
    updated = ", ".join(str(path) for path in landing.checkouts)
    return (
        f"; {state.base_ref} now points at {landing.new[:12]}, an approval merge of "
        f"{(state.merge.integration_commit or '')[:12]}"
        + (f"; updated the checkout(s) at {updated}" if updated else "")
    )


def _undo_land(landing: Landing) -> None:
    undo_landing(landing, "corral: approval not recorded")


def _distinct_reviewer_required(rundir: RunDir) -> bool:
    try:
        plan = load_plan(rundir.plan)
    except PlanError:
        return False
    return bool(getattr(plan.run, "require_distinct_reviewer", False))


_T = TypeVar("_T")


def _run(coro: Coroutine[Any, Any, _T]) -> _T:
    """Run a decision to its end from plain code or from inside the console's event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _people_only(rundir: RunDir, action: str) -> None:
    """docs/reliability.md T1: a decision asked from inside an agent is refused, and logged as its."""
    refused = refuse_operator(action, "the report", rundir)
    if refused is not None:
        raise AskedByAgent(refused)


def approve(rundir: RunDir, by: str, shown_sha256: str) -> ReviewResult:
    """Approve the report the reviewer saw; a coding run's integration branch lands on the base."""
    _people_only(rundir, "approve")
    return _run(_approve(rundir, by, shown_sha256))


def reject(rundir: RunDir, by: str, reason: str, shown_sha256: str) -> ReviewResult:
    """Reject the report with a reason; nothing lands."""
    _people_only(rundir, "reject")
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
        origin = _origin_landing(rundir, state)
        _expect_origin_landing(state, origin)
        if tampered := await recheck_before_approve(writer.append, state, rundir):
            raise ReviewRefused(tampered)
        head = writer.head
        landing = _land(state, by, digest, head, origin)
        landed = landing.new if landing is not None else None
        try:
            await writer.append(
                ev.ReportApproved(by=by, report_sha256=digest, log_head=head, landed=landed)
            )
        except BaseException:
            if landing is not None:
                _undo_land(landing)
            raise
        where = _landed_where(state, landing)
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


def acknowledge_tampering(rundir: RunDir, by: str, through_seq: int) -> str:
    """Record that `by` read the tampering reported up to `through_seq` (docs/reliability.md T3).

    Binds to what was shown, as an approval binds to the report: a report logged after
    `through_seq` stays unacknowledged and approve still waits for it."""
    _people_only(rundir, "acknowledge tampering")
    return _run(_acknowledge(rundir, by, through_seq))


async def _acknowledge(rundir: RunDir, by: str, through_seq: int) -> str:
    async with _Decision(rundir) as (writer, state):
        pending = state.unacknowledged_tampering()
        if not pending:
            raise ReviewRefused("nothing to acknowledge: no unacknowledged tampering in this run")
        shown = [t for t in pending if t.seq <= through_seq]
        if not shown:
            raise ReviewRefused(
                f"the tampering reported at #{pending[0].seq} was not among what was shown "
                f"(up to #{through_seq}); look at it again with `corral review show {state.run_id}`"
            )
        await writer.append(ev.TamperingAcknowledged(by=by, through_seq=through_seq))
        left = len(pending) - len(shown)
        later = f"; {left} later report(s) still wait for acknowledgement" if left else ""
        return f"tampering acknowledged by {by} ({len(shown)} report(s)){later}"


@dataclass(frozen=True)
class Suppressed:
    seq: int
    report_sha256: str
    """The report written again with the suppression: the one a decision now binds to."""
    findings: list[str]
    message: str


def suppress(
    rundir: RunDir,
    by: str,
    kind: Literal["rule", "path"],
    pattern: str,
    reason: str,
    shown_sha256: str,
) -> Suppressed:
    """Set a rule or a path aside for this review: logged with who and why, then the report is
    written again with the findings it covers marked (report/suppress.py) and logged anew, so
    the next decision binds to the report that shows it. Refused once the report is decided,
    for a pattern that covers none of its findings, and without a reason."""
    _people_only(rundir, "suppress")
    pattern = pattern.strip()
    if not pattern or "\n" in pattern or len(pattern) > 1000:
        raise ReviewRefused(f"name the {kind} to suppress (one line)")
    if kind == "path" and (pattern.startswith("/") or ".." in pattern.split("/")):
        raise ReviewRefused(f"{pattern!r}: give a path inside the repository, relative to its root")
    if not reason.strip():
        raise ReviewRefused("a suppression needs a reason; say why these findings can wait")
    return _run(_suppress(rundir, by, kind, pattern, reason.strip(), shown_sha256))


async def _suppress(
    rundir: RunDir,
    by: str,
    kind: Literal["rule", "path"],
    pattern: str,
    reason: str,
    shown_sha256: str,
) -> Suppressed:
    from corral.core.report.model import with_suppressions
    from corral.core.report.render import load_report, write_report
    from corral.core.report.suppress import covers

    async with _Decision(rundir) as (writer, state):
        _check_reviewable(state, rundir, shown_sha256)
        assert state.report is not None  # _check_reviewable refuses a run without one
        try:
            report, _ = load_report(Path(state.report.path))
        except ValueError as exc:  # pydantic's ValidationError is one
            raise ReviewRefused(
                f"the report does not validate, so it cannot show one: {exc}"
            ) from None
        hit = [
            f.id for f in report.findings if f.suppressed_by is None and covers(kind, pattern, f)
        ]
        if not hit:
            raise ReviewRefused(
                f"{kind} {pattern!r} covers none of the report's findings not already suppressed"
            )
        event = await writer.append(
            ev.FindingsSuppressed(by=by, kind=kind, pattern=pattern, reason=reason)
        )
        apply(state, event)
        rewritten = with_suppressions(report, state.suppressions, event.seq)
        sha = await asyncio.to_thread(write_report, rewritten, Path(state.report.path).parent)
        await writer.append(
            ev.ReportWritten(
                path=state.report.path,
                sha256=sha,
                findings=len(rewritten.findings),
                conflicts=len(rewritten.merge_conflicts) + len(rewritten.finding_conflicts),
                synthesized=rewritten.synthesized,
            )
        )
        return Suppressed(
            event.seq,
            sha,
            hit,
            f"{kind} {pattern} suppressed by {by} ({len(hit)} finding(s)); report {sha[:12]}",
        )
