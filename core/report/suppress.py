"""Suppressions: a rule or a path a reviewer sets aside for one review. The one home of what a
suppression covers (model.py applies it); the report marks each finding it covers (`suppressed_by`) and lists the
suppressions with who and why, and report.sarif gives them as SARIF `suppressions`.

A finding stays in the report, counted as before: a suppression says a person chose not to act
on it in this review, not that it is not there."""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import Literal

from corral.core.findings.merge import MergedFinding
from corral.core.log.state import SuppressionState


def covers(kind: Literal["rule", "path"], pattern: str, finding: MergedFinding) -> bool:
    """A rule covers the findings that name it (exactly); a path covers a file, the files
    under a directory, or the files an fnmatch glob matches."""
    if kind == "rule":
        return pattern in finding.rules
    if finding.file is None:
        return False
    directory = pattern.rstrip("/")
    return (
        finding.file == pattern
        or finding.file.startswith(directory + "/")
        or fnmatchcase(finding.file, pattern)
    )


def mark(
    findings: list[MergedFinding], suppressions: list[SuppressionState]
) -> list[MergedFinding]:
    """The findings, each marked with the first (oldest) suppression that covers it."""
    marked = []
    for finding in findings:
        first = next((s.seq for s in suppressions if covers(s.kind, s.pattern, finding)), None)
        marked.append(finding.model_copy(update={"suppressed_by": first}))
    return marked
