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
settle, when agents rate the same finding differently: one merged finding (one fingerprint)
reported at different severities, or findings at one location that name the same weakness
(the same CWE, or the same rule of the same tool: a rule id alone means different things in
different tools) although their titles differ. Each agent's rating is the highest it gave the
finding. Two different findings that share a location (radon's "too complex" and vulture's
"unused method" on one line) are no conflict, whatever their severities.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable

from pydantic import BaseModel, ConfigDict, Field

from corral.core.findings.schema import AgentFindings, Finding, Severity, severity_rank

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
    suppressed_by: int | None = None
    """The seq of the suppression (the report's `suppressions`) that set it aside, if any."""


class SeverityConflict(BaseModel):
    """One finding that agents rated differently."""

    model_config = ConfigDict(extra="forbid")

    location: str
    severities: dict[str, Severity]
    """Agent -> the highest severity it gave this finding."""
    findings: list[str]
    """Ids of the merged findings that are this one finding (one, or several naming one rule or
    CWE at this location)."""
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


_CWE = re.compile(r"\bcwe[-_/ ]?(\d+)\b", re.IGNORECASE)


def weakness(finding: Finding) -> str | None:
    """What makes two differently titled findings at one place the same finding, if anything:
    the CWE its rule names (`CWE-78`, `external/cwe/cwe-78`), else its rule within its tool."""
    if not finding.rule:
        return None
    if match := _CWE.search(finding.rule):
        return f"CWE-{int(match[1])}"
    return f"rule {finding.rule} of {finding.tool}" if finding.tool else f"rule {finding.rule}"


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
    weaknesses = {
        f"CF-{fp[:12]}": {w for _, _, f in group if (w := weakness(f)) is not None}
        for fp, group in groups.items()
    }
    return MergedFindings(
        findings=merged, conflicts=_conflicts(merged, weaknesses), agents=sorted(agents)
    )


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


def _same_findings(
    findings: list[MergedFinding], weaknesses: dict[str, set[str]]
) -> list[tuple[list[MergedFinding], set[str]]]:
    """The findings at one location grouped into the same finding: linked by a shared weakness
    (transitively), each group with the weaknesses that link it."""
    groups: list[tuple[list[MergedFinding], set[str]]] = []
    for finding in findings:
        named = set(weaknesses.get(finding.id, set()))
        members = [finding]
        for group in [g for g in groups if g[1] & named]:
            groups.remove(group)
            members += group[0]
            named |= group[1]
        groups.append((members, named))
    return groups


def _conflicts(
    merged: list[MergedFinding], weaknesses: dict[str, set[str]]
) -> list[SeverityConflict]:
    by_location: dict[str, list[MergedFinding]] = {}
    for finding in merged:
        by_location.setdefault(finding.location, []).append(finding)
    conflicts = []
    for location in sorted(by_location):
        for members, named in _same_findings(by_location[location], weaknesses):
            rated: dict[str, Severity] = {}
            for report in (r for finding in members for r in finding.reported):
                known = rated.get(report.agent, report.severity)
                rated[report.agent] = _highest([report.severity, known])
            if len(set(rated.values())) < 2:
                continue  # one agent, or agents that agree
            ids = sorted(finding.id for finding in members)
            if len(ids) == 1:
                reason = f"agents gave {ids[0]} different severities"
            else:
                reason = (
                    f"agents rated {', '.join(ids)} differently, findings of one "
                    f"{' / '.join(sorted(named))}"
                )
            conflicts.append(
                SeverityConflict(
                    location=location,
                    severities=dict(sorted(rated.items())),
                    findings=ids,
                    reason=reason,
                )
            )
    conflicts.sort(key=lambda c: (c.location, c.findings))
    return conflicts
