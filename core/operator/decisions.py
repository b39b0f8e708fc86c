"""The review decisions a person takes: approve, reject, acknowledge tampering.

core/review/gate.py is the one home of the decision rule (bound to the report shown, one writer,
landing); this module is its typed door for front ends: the reviewer is a value passed in
(identity.py), and a refusal is an OperatorError."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, TypeVar

from corral.core.log.state import RunState
from corral.core.operator.errors import AgentRefused, DecisionRefused
from corral.core.operator.identity import Operator
from corral.core.review.gate import ReviewResult, Suppressed
from corral.core.runs.rundir import RunDir

_T = TypeVar("_T")


def _gate(call: Callable[[], _T]) -> _T:
    from corral.core.review.gate import AskedByAgent, ReviewRefused

    try:
        return call()
    except AskedByAgent as exc:
        raise AgentRefused(str(exc)) from None
    except ReviewRefused as exc:
        raise DecisionRefused(str(exc)) from None


def report_sha256(rundir: RunDir, state: RunState) -> str:
    """sha256 of the report on disk, refused unless it is the one the log names."""
    from corral.core.review import gate

    return _gate(lambda: gate.report_sha256(rundir, state))


def approve(rundir: RunDir, by: Operator, shown_sha256: str) -> ReviewResult:
    """Approve the report `by` was shown; a coding run's integration commit lands on the base."""
    by.require("reviewer", "approving")
    from corral.core.review import gate

    return _gate(lambda: gate.approve(rundir, by.reviewer, shown_sha256))


def reject(rundir: RunDir, by: Operator, reason: str, shown_sha256: str) -> ReviewResult:
    """Reject the report `by` was shown, with a reason; nothing lands."""
    by.require("reviewer", "rejecting")
    from corral.core.review import gate

    return _gate(lambda: gate.reject(rundir, by.reviewer, reason, shown_sha256))


def acknowledge_tampering(rundir: RunDir, by: Operator, through_seq: int) -> str:
    """Record that `by` read the tampering reported up to `through_seq`; approve then no longer
    waits for those reports."""
    by.require("reviewer", "acknowledging tampering")
    from corral.core.review import gate

    return _gate(lambda: gate.acknowledge_tampering(rundir, by.reviewer, through_seq))


def suppress(
    rundir: RunDir,
    by: Operator,
    kind: Literal["rule", "path"],
    pattern: str,
    reason: str,
    shown_sha256: str,
) -> Suppressed:
    """Set a rule or a path aside for this review of the report `by` was shown; the report is
    written again showing it (its new sha256 is what a decision then binds to)."""
    by.require("reviewer", "suppressing a finding")
    from corral.core.review import gate

    return _gate(lambda: gate.suppress(rundir, by.reviewer, kind, pattern, reason, shown_sha256))
