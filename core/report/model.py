"""The run's report: one validated model, built from the folded log and the merged findings.

Everything except the findings comes from `RunState` (so the log can rebuild it): agents and
their attempts, conflicts, merged and left-out branches (from `branch_merged` /
`branch_left_out` events), the verification and the rejected outputs. Nothing reads a clock, so
the same state and findings always give the same report and the same sha256.

Partial failure: an agent counts as succeeded when its state is `succeeded` and its output was
not rejected. Below `min_success` (the run's `required_successes`) nothing is merged and nothing
can be approved, but the findings that validated are still published: the report is `partial`,
says why (`partial_reason`, from the verdict's failed agents), and its verdict is not met. A
finding never comes from a rejected output, above or below `min_success`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from corral.core.findings.merge import MergedFinding, MergedFindings, SeverityConflict
from corral.core.findings.schema import SEVERITIES, Severity
from corral.core.log import events as ev
from corral.core.log.state import (
    AgentState,
    AgentStateName,
    AttemptState,
    RunState,
    SuppressionState,
    Usage,
)
from corral.core.report.suppress import mark

REPORT_FORMAT: Literal["corral-report"] = "corral-report"
REPORT_VERSION: Literal[1] = 1
BASE_AGENT = "@base"
"""Stands for the moved base branch in a merge conflict's agents."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ReportAttempt(_Model):
    number: int
    state: AgentStateName
    started_ts: float | None = None
    ended_ts: float | None = None
    duration: float | None = None
    """Seconds from start to end; None while unfinished or never started."""
    exit_code: int | None = None
    signal: int | None = None
    reason: str = ""


class ReportUsage(_Model):
    """Tokens, cost and turns as the agents' streams reported them (core/streams/)."""

    model: str | None = None
    """The agent's model, as its latest attempt's stream named it (per agent only)."""
    tokens_in: int = 0
    tokens_out: int = 0
    tokens_cached: int = 0
    cost_usd: float | None = None
    """None when no stream gave a cost (unknown, not free)."""
    turns: int = 0
    tool_calls: int = 0

    @classmethod
    def of(cls, usage: Usage, model: str | None = None) -> ReportUsage | None:
        """None when nothing was counted (an agent without a stream, a run without one)."""
        if not (usage.tokens or usage.turns or usage.tool_calls or usage.cost_usd):
            return None
        return cls(model=model, **usage.model_dump(include=set(Usage.model_fields)))


class ReportAgent(_Model):
    id: str
    kind: Literal["coding", "audit"]
    state: AgentStateName
    succeeded: bool
    """Succeeded and its output (if any) was accepted: what `min_success` counts."""
    attempts: int
    duration: float
    """Seconds spent over all its attempts."""
    attempt_details: list[ReportAttempt] = Field(default_factory=list)
    reason: str = ""
    findings_rejected: str | None = None
    """Why its output was refused, when it was."""
    usage: ReportUsage | None = None
    """What its stream counted over its attempts; None for an agent without a stream."""


class FailedAgent(_Model):
    agent: str
    state: AgentStateName
    reason: str


class Verdict(_Model):
    """The partial-failure policy's answer."""

    min_success: int
    succeeded: int
    met: bool
    failed: list[FailedAgent] = Field(default_factory=list)
    """Every agent that did not succeed, with why."""


class Summary(_Model):
    """Merged findings by severity; must equal the findings list."""

    critical: int = 0
    high: int = 0
    medium: int = 0
    low: int = 0
    info: int = 0
    total: int = 0

    @classmethod
    def of(cls, findings: list[MergedFinding]) -> Summary:
        counts = dict.fromkeys(SEVERITIES, 0)
        for finding in findings:
            counts[finding.severity] += 1
        return cls(**counts, total=len(findings))


class MergeConflict(_Model):
    key: str
    agents: list[str]
    files: list[ev.ConflictFile]
    predicted: bool
    actual: bool


class MergedBranch(_Model):
    agent: str
    attempt: int
    branch: str
    commit: str
    """The integration branch's commit after this merge."""


class LeftOutBranch(_Model):
    agent: str
    attempt: int
    branch: str
    reason: str
    conflicts_with: list[str] = Field(default_factory=list)
    files: list[ev.ConflictFile] = Field(default_factory=list)


class VerificationResult(_Model):
    command: list[str]
    passed: bool
    exit_code: int | None
    log_path: str
    commit: str


class RejectedOutput(_Model):
    """An agent output that failed validation and was not merged."""

    agent: str
    attempt: int
    reason: str


class Tampering(_Model):
    """A change to the shared repository that no agent may make (docs/reliability.md T3)."""

    seq: int
    """The `repo_tampered` event; approve waits until a person acknowledges it."""
    live: list[str]
    """The attempts (`agent#n`) live when it changed: one of them made it."""
    seen: ev.TamperingSeen
    changes: list[ev.RepoChange]
    problem: str = ""


class Suppression(_Model):
    """A rule or a path a reviewer set aside for this review (a `findings_suppressed` event)."""

    seq: int
    kind: Literal["rule", "path"]
    pattern: str
    by: str
    reason: str
    findings: list[str] = Field(default_factory=list)
    """The ids of the findings it set aside (those marked `suppressed_by` its seq)."""


class Report(_Model):
    """Published as `report.json`; `report.md` and `report.sarif` are renderings of it."""

    format: Literal["corral-report"] = REPORT_FORMAT
    version: Literal[1] = REPORT_VERSION
    run_id: str
    name: str
    repo: str
    base_ref: str
    snapshot: str
    """The commit every agent started from."""
    log_seq: int
    """The last event the report reflects."""
    synthesized: bool
    """True exactly when min_success was met: the coding work was merged and the report can be
    approved. False below it: nothing merged, and the findings (if any) are partial."""
    partial: bool = False
    """Below min_success: the findings are only those of the agents that succeeded."""
    partial_reason: str = ""
    """Why the report is partial (the unmet min_success and the failed agents); empty otherwise."""
    verdict: Verdict
    agents: list[ReportAgent]
    summary: Summary
    findings: list[MergedFinding] = Field(default_factory=list)
    finding_conflicts: list[SeverityConflict] = Field(default_factory=list)
    merge_conflicts: list[MergeConflict] = Field(default_factory=list)
    integration_branch: str | None = None
    integration_commit: str | None = None
    merged: list[MergedBranch] = Field(default_factory=list)
    left_out: list[LeftOutBranch] = Field(default_factory=list)
    verification: VerificationResult | None = None
    validation_errors: list[RejectedOutput] = Field(default_factory=list)
    tampering: list[Tampering] = Field(default_factory=list)
    suppressions: list[Suppression] = Field(default_factory=list)
    """Rules and paths set aside for this review, with who and why (report/suppress.py)."""
    usage: ReportUsage | None = None
    """The run's totals over every agent's stream; None when no agent reported one."""

    @model_validator(mode="after")
    def _consistent(self) -> Report:
        problems = _check(self)
        if problems:
            raise ValueError("inconsistent report: " + "; ".join(problems))
        return self


def _check(report: Report) -> list[str]:
    problems: list[str] = []
    if report.summary != Summary.of(report.findings):
        problems.append(
            f"summary {report.summary} does not count the {len(report.findings)} findings"
        )
    agents = {agent.id for agent in report.agents}
    rejected = {(error.agent, error.attempt) for error in report.validation_errors}
    ids = [finding.id for finding in report.findings]
    if len(set(ids)) != len(ids):
        problems.append("two findings share an id")
    for finding in report.findings:
        if unknown := set(finding.agents) - agents:
            problems.append(f"finding {finding.id} names unknown agents {sorted(unknown)}")
        if {(r.agent, r.attempt) for r in finding.reported} & rejected:
            problems.append(f"finding {finding.id} comes from a rejected output")
        if finding.agreement != len(finding.agents) or not finding.agents:
            problems.append(f"finding {finding.id} counts {finding.agreement} agents")
        if sorted({r.agent for r in finding.reported}) != finding.agents:
            problems.append(f"finding {finding.id}: its reports and agents differ")
    for conflict in report.finding_conflicts:
        if missing := set(conflict.findings) - set(ids):
            problems.append(
                f"conflict at {conflict.location} names unknown findings {sorted(missing)}"
            )
        if unknown := set(conflict.severities) - agents:
            problems.append(
                f"conflict at {conflict.location} names unknown agents {sorted(unknown)}"
            )
    for merge_conflict in report.merge_conflicts:
        if unknown := set(merge_conflict.agents) - agents - {BASE_AGENT}:
            problems.append(f"conflict {merge_conflict.key} names unknown agents {sorted(unknown)}")
    branch_agents = [b.agent for b in report.merged] + [b.agent for b in report.left_out]
    if unknown := set(branch_agents) - agents:
        problems.append(f"branches of unknown agents {sorted(unknown)}")
    if len(set(branch_agents)) != len(branch_agents):
        problems.append("an agent's branch is listed twice")
    if unknown := {agent for agent, _ in rejected} - agents:
        problems.append(f"validation errors of unknown agents {sorted(unknown)}")
    for tampering in report.tampering:
        if unknown := {name.rsplit("#", 1)[0] for name in tampering.live} - agents:
            problems.append(f"tampering #{tampering.seq} names unknown agents {sorted(unknown)}")
    marks = {s.seq: s.findings for s in report.suppressions}
    for suppression in report.suppressions:
        marked = [f.id for f in report.findings if f.suppressed_by == suppression.seq]
        if marked != suppression.findings:
            problems.append(f"suppression #{suppression.seq} does not list the findings it marks")
    if stray := {f.id for f in report.findings if f.suppressed_by not in (None, *marks)}:
        problems.append(f"findings {sorted(stray)} name a suppression the report lacks")
    if report.verdict.succeeded != sum(agent.succeeded for agent in report.agents):
        problems.append("the verdict's success count does not match the agents")
    if report.verdict.met != (report.verdict.succeeded >= report.verdict.min_success):
        problems.append("the verdict contradicts its counts")
    if report.synthesized != report.verdict.met:
        problems.append("synthesis must happen exactly when min_success is met")
    if report.partial == report.synthesized or bool(report.partial_reason) != report.partial:
        problems.append("a report is partial, with a reason, exactly when min_success is not met")
    if not report.synthesized and (report.merged or report.integration_commit):
        problems.append("a report below min_success must not carry merges")
    if report.merged and report.integration_commit != report.merged[-1].commit:
        problems.append("the integration commit is not the last merge's")
    return problems


def _attempt(attempt: AttemptState) -> ReportAttempt:
    duration = None
    if attempt.started_ts is not None and attempt.ended_ts is not None:
        duration = round(max(0.0, attempt.ended_ts - attempt.started_ts), 3)
    return ReportAttempt(
        number=attempt.number,
        state=attempt.state,
        started_ts=attempt.started_ts,
        ended_ts=attempt.ended_ts,
        duration=duration,
        exit_code=attempt.exit_code,
        signal=attempt.signal,
        reason=attempt.reason,
    )


def _agent(agent: AgentState, rejected: str | None) -> ReportAgent:
    attempts = [_attempt(a) for a in agent.attempts]
    reason = agent.reason or next((a.reason for a in reversed(attempts) if a.reason), "")
    return ReportAgent(
        id=agent.id,
        kind=agent.kind,
        state=agent.state,
        succeeded=agent.state == "succeeded" and rejected is None,
        attempts=len(attempts),
        duration=round(sum(a.duration or 0.0 for a in attempts), 3),
        attempt_details=attempts,
        reason=reason,
        findings_rejected=rejected,
        usage=ReportUsage.of(agent.usage, agent.stream.model if agent.stream else None),
    )


def _failure_reason(agent: ReportAgent) -> str:
    if agent.findings_rejected is not None:
        return f"its output was rejected: {agent.findings_rejected}"
    last = agent.attempt_details[-1] if agent.attempt_details else None
    reason = agent.reason or (last.reason if last else "")
    if last is not None and last.exit_code not in (None, 0):
        reason = f"{reason} (exit {last.exit_code})" if reason else f"exit {last.exit_code}"
    return reason or f"ended {agent.state}"


def _partial_reason(verdict: Verdict) -> str:
    """Why a report below min_success holds only some agents' findings; empty when met."""
    if verdict.met:
        return ""
    failed = "; ".join(f"{f.agent}: {f.reason}" for f in verdict.failed)
    return (
        f"min_success {verdict.min_success} not met ({verdict.succeeded} succeeded): "
        f"only the findings of the agents that succeeded are kept, nothing was merged"
        + (f"; failed: {failed}" if failed else "")
    )


def _rejection(state: RunState, agent: AgentState) -> str | None:
    """Why the output of the agent's latest attempt was refused; None when it was not."""
    latest = agent.current.number if agent.current is not None else 0
    if state.rejected_attempts.get(agent.id, latest) != latest:
        return None  # an earlier attempt's output was refused; a later one's validated
    return state.rejected_findings.get(agent.id)


def build_report(state: RunState, findings: MergedFindings | None = None) -> Report:
    """The report of `state` (folded after the merge, verification and rejection events)."""
    agents = [_agent(a, _rejection(state, a)) for a in state.agents.values()]
    agents.sort(key=lambda agent: agent.id)
    succeeded = sum(agent.succeeded for agent in agents)
    met = succeeded >= state.required_successes
    verdict = Verdict(
        min_success=state.required_successes,
        succeeded=succeeded,
        met=met,
        failed=[
            FailedAgent(agent=a.id, state=a.state, reason=_failure_reason(a))
            for a in agents
            if not a.succeeded
        ],
    )
    merged_findings = mark(findings.findings if findings else [], state.suppressions)
    merged = [
        MergedBranch(agent=m.agent, attempt=m.attempt, branch=m.branch, commit=m.commit)
        for m in state.merge.merged
    ]
    left_out = [
        LeftOutBranch(
            agent=lo.agent,
            attempt=lo.attempt,
            branch=lo.branch,
            reason=lo.reason,
            conflicts_with=list(lo.conflicts_with),
            files=list(lo.files),
        )
        for lo in state.merge.left_out
    ]
    verification = state.merge.verification
    return Report(
        run_id=state.run_id,
        name=state.name,
        repo=state.repo,
        base_ref=state.base_ref,
        snapshot=state.snapshot,
        log_seq=state.last_seq,
        synthesized=met,
        partial=not met,
        partial_reason=_partial_reason(verdict),
        verdict=verdict,
        agents=agents,
        summary=Summary.of(merged_findings),
        findings=merged_findings,
        finding_conflicts=findings.conflicts if findings else [],
        merge_conflicts=[
            MergeConflict(
                key=c.key,
                agents=list(c.agents),
                files=list(c.files),
                predicted=c.predicted,
                actual=c.actual,
            )
            for c in sorted(state.conflicts.values(), key=lambda c: c.key)
        ],
        integration_branch=f"corral/{state.run_id}/integration" if met and merged else None,
        integration_commit=state.merge.integration_commit if met and merged else None,
        merged=merged if met else [],
        left_out=left_out if met else [],
        verification=(
            VerificationResult(
                **verification.model_dump(include=set(VerificationResult.model_fields))
            )
            if met and verification is not None
            else None
        ),
        validation_errors=[
            RejectedOutput(agent=agent, attempt=state.rejected_attempts[agent], reason=reason)
            for agent, reason in sorted(state.rejected_findings.items())
        ],
        tampering=[
            Tampering(
                seq=t.seq,
                live=list(t.live),
                seen=t.seen,
                changes=list(t.changes),
                problem=t.problem,
            )
            for t in state.tampering
        ],
        suppressions=[
            Suppression(
                **kept.model_dump(),
                findings=[f.id for f in merged_findings if f.suppressed_by == kept.seq],
            )
            for kept in state.suppressions
        ],
        usage=ReportUsage.of(state.usage),
    )


def with_suppressions(report: Report, suppressions: list[SuppressionState], log_seq: int) -> Report:
    """`report` again with `suppressions` marked and listed (report/suppress.py), validated."""
    findings = mark(report.findings, suppressions)
    listed = [
        Suppression(
            **kept.model_dump(), findings=[f.id for f in findings if f.suppressed_by == kept.seq]
        )
        for kept in suppressions
    ]
    return Report.model_validate(
        {
            **report.model_dump(),
            "findings": [f.model_dump() for f in findings],
            "suppressions": [s.model_dump() for s in listed],
            "log_seq": log_seq,
        }
    )


def severity_counts(report: Report) -> dict[Severity, int]:
    return {severity: getattr(report.summary, severity) for severity in SEVERITIES}
