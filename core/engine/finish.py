"""The end of a run: merge what succeeded (when enough did), verify it, merge the findings,
write the report, then `run_finished`.

`run_finished` comes last, so an engine that dies anywhere in here is resumed into this step
again rather than into a finished run without a report."""

from __future__ import annotations

from corral.core.engine.context import Emit
from corral.core.log import events as ev
from corral.core.log.state import RunState
from corral.core.plan.model import Plan
from corral.core.report.finalize import (
    EmitMany,
    merge_audit_findings,
    merge_coding_work,
    write_run_report,
)
from corral.core.runs.rundir import RunDir
from corral.core.runtime.base import Runtime


async def finish_run(
    state: RunState,
    rundir: RunDir,
    plan: Plan,
    runtime: Runtime,
    emit: Emit,
    emit_many: EmitMany,
) -> None:
    """`runtime` is the run's own (`[run] runtime`): the one `verify` runs through."""
    succeeded = state.succeeded()
    required = state.required_successes
    passed = succeeded >= required
    if passed:
        await merge_coding_work(state, rundir, plan, emit_many, runtime)
    # below min_success too: the findings that validated go into a partial report
    findings = await merge_audit_findings(state, rundir, emit_many)
    await write_run_report(state, rundir, findings, emit)
    not_ok = [f"{a.id} {a.state}" for a in state.agents.values() if a.state != "succeeded"]
    reason = f"{succeeded} of {len(state.agents)} agents succeeded; {required} required"
    if not_ok:
        reason += f" ({', '.join(not_ok)})"
    await emit(
        ev.RunFinished(
            verdict="passed" if passed else "failed",
            succeeded=succeeded,
            required=required,
            reason=reason,
        )
    )
