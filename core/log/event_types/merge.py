"""Merge, report and review: conflicts predicted, branches merged, the report and its
decision, and operator actions refused."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from corral.core.log.event_types.base import EventBase

ConflictKind = Literal["content", "add_add", "modify_delete", "rename", "binary", "other"]


class ConflictFile(BaseModel):
    path: str
    kind: ConflictKind


class ConflictPredicted(EventBase):
    """While agents run: their current work (uncommitted included) would conflict."""

    type: Literal["conflict_predicted"] = "conflict_predicted"
    key: str
    """Stable identity of the pair, e.g. `a+b` or `a+@base`."""
    agents: list[str]
    """Two agents, or one agent and `@base` when the base branch moved under it."""
    files: list[ConflictFile]


class ConflictCleared(EventBase):
    type: Literal["conflict_cleared"] = "conflict_cleared"
    key: str


class MergeStarted(EventBase):
    """The merge step begins (again, after a crash): what an earlier try recorded is void."""

    type: Literal["merge_started"] = "merge_started"


class BranchMerged(EventBase):
    type: Literal["branch_merged"] = "branch_merged"
    agent: str
    attempt: int
    branch: str
    commit: str
    """The integration branch's commit after this merge."""


class BranchLeftOut(EventBase):
    type: Literal["branch_left_out"] = "branch_left_out"
    agent: str
    attempt: int
    branch: str
    reason: str
    conflicts_with: list[str] = Field(default_factory=list)
    files: list[ConflictFile] = Field(default_factory=list)
    """Where the branch conflicts with the integration branch."""
    pair_files: dict[str, list[ConflictFile]] = Field(default_factory=dict)
    """For each agent it conflicts with, the files the two alone conflict in (older logs lack
    it: then `files` stands for every pair)."""


class VerificationFinished(EventBase):
    type: Literal["verification_finished"] = "verification_finished"
    command: list[str]
    passed: bool
    exit_code: int | None
    log_path: str
    commit: str


class FindingsRejected(EventBase):
    type: Literal["findings_rejected"] = "findings_rejected"
    agent: str
    attempt: int
    reason: str


class ReportWritten(EventBase):
    type: Literal["report_written"] = "report_written"
    path: str
    sha256: str
    findings: int
    conflicts: int
    synthesized: bool
    """False when the run fell below min_success: the report says why and merges nothing."""


class ReportApproved(EventBase):
    type: Literal["report_approved"] = "report_approved"
    by: str
    report_sha256: str
    log_head: str
    landed: str | None = None
    """The commit the base branch now points at (coding runs)."""


class ReportRejected(EventBase):
    type: Literal["report_rejected"] = "report_rejected"
    by: str
    reason: str
    report_sha256: str
    log_head: str


class FindingsSuppressed(EventBase):
    """A reviewer set a rule or a path aside for this review; the report is written again
    with the findings it covers marked (docs/architecture.md, review)."""

    type: Literal["findings_suppressed"] = "findings_suppressed"
    by: str
    kind: Literal["rule", "path"]
    pattern: str
    """A rule id (exact), or a path: a file, a directory or an fnmatch glob."""
    reason: str


class OperatorActionRefused(EventBase):
    """An operator action asked from inside an agent, refused (docs/reliability.md T1).

    Names the attempt that asked, which may belong to another run; never its token."""

    type: Literal["operator_action_refused"] = "operator_action_refused"
    action: str
    """`approve`, `reject`, `kill`, `retry`, `rerun`, `input`, `lock break` or `gc`."""
    target: str
    """What it was aimed at: `agent victim`, `lock db`, `the report`."""
    caller_run: str
    caller_agent: str
    caller_attempt: int | None = None
    evidence: str
    """How corral knew: the attempt's token, its process tree, or its variables."""
