"""After the agents: merge the coding work, verify it, merge the findings, write the report.

Below `min_success` nothing is merged, but the findings that validated are still merged and
published in a partial report that says which agents failed and why. Each step is an event
before the next begins, and the whole step is safe to run again after a crash (the merge starts
over from the snapshot).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from corral.core.findings.merge import MergedFindings, merge_findings
from corral.core.findings.output import load_output
from corral.core.findings.schema import AgentFindings, FindingsError
from corral.core.log import events as ev
from corral.core.log.merge_events import integration_events, verification_event
from corral.core.log.state import RunState
from corral.core.plan.model import Plan
from corral.core.report.model import build_report
from corral.core.report.render import write_report
from corral.core.runs.rundir import RunDir
from corral.core.runtime.base import Runtime
from corral.worktrees.integrate import integrate

Emit = Callable[[ev.EventBase], Awaitable[ev.Event]]
EmitMany = Callable[[Sequence[ev.EventBase]], Awaitable[None]]


def validate_output(out_dir: Path, agent: str, attempt: int) -> str | None:
    """Why an audit attempt's output is unusable, or None when it loads cleanly."""
    try:
        load_output(out_dir, agent, attempt)
    except FindingsError as exc:
        return f"invalid output: {exc}"
    return None


async def merge_coding_work(
    state: RunState, rundir: RunDir, plan: Plan, emit_many: EmitMany, runtime: Runtime
) -> None:
    """Integrate the latest successful coding attempts, then run `verify` on the result."""
    # each attempt's leftovers were committed on its branch when it ended
    branches = [
        (agent.id, agent.current.number, agent.current.branch)
        for agent in state.agents.values()
        if agent.kind == "coding" and agent.state == "succeeded" and agent.current is not None
    ]
    await emit_many([ev.MergeStarted()])
    if not branches:
        return
    result = await asyncio.to_thread(
        integrate,
        Path(state.repo),
        state.run_id,
        state.snapshot,
        branches,
        worktree_root=Path(state.worktree_root),
    )
    await emit_many(integration_events(result))
    verify = plan.run.verify
    if verify and result.merged and result.worktree is not None:
        log_path = rundir.path / "verify.log"
        from corral.core.runtime.verification import run_verification

        outcome = await run_verification(
            runtime,
            state.run_id,
            result.worktree,
            list(verify),
            log_path,
            plan.run.verify_timeout,
            plan.run.kill_grace,
        )
        await emit_many([verification_event(outcome, list(verify), str(log_path), result.commit)])


async def merge_audit_findings(
    state: RunState, rundir: RunDir, emit_many: EmitMany
) -> MergedFindings:
    """Load every successful audit agent's (already validated) output and merge it."""
    contributions: list[AgentFindings] = []
    rejected: list[ev.EventBase] = []
    for agent in state.agents.values():
        attempt = agent.current
        if agent.kind != "audit" or agent.state != "succeeded" or attempt is None:
            continue
        out_dir = rundir.output_dir(agent.id, attempt.number)
        try:
            contributions.append(
                await asyncio.to_thread(load_output, out_dir, agent.id, attempt.number)
            )
        except FindingsError as exc:  # changed on disk since the attempt ended
            rejected.append(
                ev.FindingsRejected(agent=agent.id, attempt=attempt.number, reason=str(exc))
            )
    await emit_many(rejected)
    return merge_findings(contributions)


async def write_run_report(
    state: RunState, rundir: RunDir, findings: MergedFindings | None, emit: Emit
) -> None:
    """Build, validate and atomically write the report, then log its sha256."""
    report = build_report(state, findings)
    sha256 = await asyncio.to_thread(write_report, report, rundir.path)
    await emit(
        ev.ReportWritten(
            path=str(rundir.path / "report.json"),
            sha256=sha256,
            findings=len(report.findings),
            conflicts=len(report.merge_conflicts) + len(report.finding_conflicts),
            synthesized=report.synthesized,
        )
    )
