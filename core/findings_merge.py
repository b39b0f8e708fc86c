"""Merging the findings of several audit agents: deduplicated, attributed, disagreements kept.

Fingerprint (what makes two findings "the same"): the location and the normalised title, and
nothing that depends on the tool. The location is `file:<path>:<line>` (`file:<path>` without a
line) when a file is named, else `asset:<asset>` (case-folded, whitespace collapsed); the title
is NFKC-normalised, case-folded, whitespace-collapsed and stripped of trailing punctuation. Rule
ids are left out on purpose: they are tool-specific, so two scanners naming one problem at one
place would never agree. Severity is left out too, so that a disagreement shows instead of
splitting one finding in two.

A merged finding keeps every agent that reported it (`agreement` = how many distinct agents),
and takes the highest severity reported. A severity conflict is recorded, for a person to
settle, when one location (asset or file and line) gets different severities from different
agents: either one finding reported at different severities, or agents whose most severe
finding there differs.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

from corral.core.findings import AgentFindings, Finding, Severity, severity_rank

FINGERPRINT_VERSION = "v1"


class Reported(BaseModel):
    """One agent's report of a merged finding."""

    model_config = ConfigDict(extra="forbid")

    agent: str
    attempt: int
    finding_id: str
    """The id the agent gave it."""
    severity: Severity
    tool: str = ""


class MergedFinding(BaseModel):
    """A finding after deduplication, with everyone who reported it."""

    model_config = ConfigDict(extra="forbid")

    id: str
    """`CF-` and the first 12 hex digits of the fingerprint: stable across runs."""
    fingerprint: str
    location: str
    """The location key (`file:src/a.py:12` or `asset:...`)."""
    severity: Severity
    """The highest severity any agent gave it."""
    title: str
    file: str | None = None
    line: int | None = None
    asset: str | None = None
    detail: str = ""
    recommendation: str = ""
    rules: list[str] = Field(default_factory=list)
    tools: list[str] = Field(default_factory=list)
    agents: list[str]
    """Distinct agents that reported it, sorted."""
    agreement: int
    """len(agents): how many agents agreed it is there."""
    reported: list[Reported]


class SeverityConflict(BaseModel):
    """One location that agents rated differently."""

    model_config = ConfigDict(extra="forbid")

    location: str
    severities: dict[str, Severity]
    """Agent -> the highest severity it gave at this location."""
    findings: list[str]
    """Ids of the merged findings at this location."""
    reason: str


class MergedFindings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    findings: list[MergedFinding] = Field(default_factory=list)
    conflicts: list[SeverityConflict] = Field(default_factory=list)
    agents: list[str] = Field(default_factory=list)
    """Agents whose (valid) output went into the merge, even with no findings."""


def _fold(text: str) -> str:
    return " ".join(unicodedata.normalize("NFKC", text).casefold().split())


def location_key(finding: Finding) -> str:
    if finding.file is not None:
        return f"file:{finding.file}" + (f":{finding.line}" if finding.line is not None else "")
    return f"asset:{_fold(finding.asset or '')}"


def normalized_title(title: str) -> str:
    return re.sub(r"[\s.:;,!]+$", "", _fold(title))


def fingerprint(finding: Finding) -> str:
    """sha256 of version, location key and normalised title (see the module docstring)."""
    key = "\0".join((FINGERPRINT_VERSION, location_key(finding), normalized_title(finding.title)))
    return hashlib.sha256(key.encode()).hexdigest()


def _highest(severities: Iterable[Severity]) -> Severity:
    return min(severities, key=severity_rank)


def merge_findings(contributions: Iterable[AgentFindings]) -> MergedFindings:
    """Deduplicate by fingerprint, count agreement, and list severity conflicts by location."""
    groups: dict[str, list[tuple[str, int, Finding]]] = {}
    agents: set[str] = set()
    for part in sorted(contributions, key=lambda c: (c.agent, c.attempt)):
        agents.add(part.agent)
        for finding in part.findings:
            groups.setdefault(fingerprint(finding), []).append((part.agent, part.attempt, finding))
    merged = [_merge_group(fp, group) for fp, group in groups.items()]
    merged.sort(key=lambda m: (severity_rank(m.severity), m.location, m.title, m.id))
    return MergedFindings(findings=merged, conflicts=_conflicts(merged), agents=sorted(agents))


def _merge_group(fp: str, group: list[tuple[str, int, Finding]]) -> MergedFinding:
    group.sort(key=lambda item: (item[0], item[2].id))
    first = group[0][2]
    reported = [
        Reported(agent=agent, attempt=attempt, finding_id=f.id, severity=f.severity, tool=f.tool)
        for agent, attempt, f in group
    ]
    who = sorted({agent for agent, _, _ in group})
    return MergedFinding(
        id=f"CF-{fp[:12]}",
        fingerprint=fp,
        location=location_key(first),
        severity=_highest(f.severity for _, _, f in group),
        title=first.title,
        file=first.file,
        line=first.line,
        asset=first.asset,
        detail=next((f.detail for _, _, f in group if f.detail), ""),
        recommendation=next((f.recommendation for _, _, f in group if f.recommendation), ""),
        rules=sorted({f.rule for _, _, f in group if f.rule}),
        tools=sorted({f.tool for _, _, f in group if f.tool}),
        agents=who,
        agreement=len(who),
        reported=reported,
    )


def _conflicts(merged: list[MergedFinding]) -> list[SeverityConflict]:
    by_location: dict[str, list[MergedFinding]] = {}
    for finding in merged:
        by_location.setdefault(finding.location, []).append(finding)
    conflicts = []
    for location in sorted(by_location):
        findings = by_location[location]
        highest: dict[str, Severity] = {}
        split: list[str] = []
        for finding in findings:
            per_agent: dict[str, Severity] = {}
            for report in finding.reported:
                known = per_agent.get(report.agent)
                per_agent[report.agent] = _highest([report.severity, known or report.severity])
                seen = highest.get(report.agent)
                highest[report.agent] = _highest([report.severity, seen or report.severity])
            if len(per_agent) > 1 and len(set(per_agent.values())) > 1:
                split.append(finding.id)
        if len(highest) < 2 or (len(set(highest.values())) == 1 and not split):
            continue
        if split:
            reason = f"agents gave {', '.join(split)} different severities"
        else:
            reason = "agents rated this location differently"
        conflicts.append(
            SeverityConflict(
                location=location,
                severities=dict(sorted(highest.items())),
                findings=sorted(f.id for f in findings),
                reason=reason,
            )
        )
    return conflicts
