"""SARIF 2.1.0 from audit agents and scanners, turned into corral findings.

No SARIF model on PyPI fits untrusted input: `sarif-om` (attrs classes) validates nothing, and
`sarif-pydantic` makes every field optional and keeps unknown fields. So the parts corral reads
are validated strictly here (types, `version == "2.1.0"`, levels, line numbers), other SARIF
properties are ignored, and every value taken into a finding then passes `Finding`'s checks
(plain text, sizes, repository-relative paths).

Severity: a `security-severity` property (a CVSS-like score, on the result or its rule, as
GitHub code scanning reads it) wins: >= 9.0 critical, >= 7.0 high, >= 4.0 medium, > 0 low, else
info. Without one, the level (the result's, else the rule's default, else SARIF's default
`warning`): error -> high, warning -> medium, note -> low, none -> info.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_camel

from corral.core.findings.schema import (
    MAX_LINE,
    Finding,
    FindingsError,
    Problem,
    Severity,
    validation_problems,
)

Level = Literal["none", "note", "warning", "error"]
LEVEL_SEVERITY: dict[str, Severity] = {
    "error": "high",
    "warning": "medium",
    "note": "low",
    "none": "info",
}
SKIPPED_KINDS = frozenset({"pass", "notApplicable"})
"""Results that say a check passed or did not apply: not findings."""
NO_LOCATION_ASSET = "repository"


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", alias_generator=to_camel, populate_by_name=True)


class Message(_Model):
    text: str | None = None
    markdown: str | None = None


class Region(_Model):
    start_line: Annotated[int, Field(ge=1)] | None = None


class ArtifactLocation(_Model):
    uri: str | None = None
    uri_base_id: str | None = None


class PhysicalLocation(_Model):
    artifact_location: ArtifactLocation | None = None
    region: Region | None = None


class LogicalLocation(_Model):
    name: str | None = None
    fully_qualified_name: str | None = None


class Location(_Model):
    physical_location: PhysicalLocation | None = None
    logical_locations: list[LogicalLocation] = Field(default_factory=list)


class ReportingConfiguration(_Model):
    level: Level | None = None


class Rule(_Model):
    id: str
    name: str | None = None
    short_description: Message | None = None
    full_description: Message | None = None
    help: Message | None = None
    default_configuration: ReportingConfiguration | None = None
    properties: dict[str, Any] | None = None


class Driver(_Model):
    name: str
    version: str | None = None
    rules: list[Rule] = Field(default_factory=list)


class Tool(_Model):
    driver: Driver


class Result(_Model):
    rule_id: str | None = None
    rule_index: Annotated[int, Field(ge=0)] | None = None
    kind: str | None = None
    level: Level | None = None
    message: Message
    locations: list[Location] = Field(default_factory=list)
    guid: str | None = None
    properties: dict[str, Any] | None = None


class Run(_Model):
    tool: Tool
    results: list[Result] | None = None


class SarifLog(_Model):
    version: Literal["2.1.0"]
    runs: list[Run]


def score_severity(score: float) -> Severity:
    if score >= 9.0:
        return "critical"
    if score >= 7.0:
        return "high"
    if score >= 4.0:
        return "medium"
    if score > 0.0:
        return "low"
    return "info"


def _security_severity(properties: dict[str, Any] | None, where: str) -> float | None:
    if not properties or "security-severity" not in properties:
        return None
    raw = properties["security-severity"]
    try:
        score = (
            float(raw) if isinstance(raw, str | int | float) and not isinstance(raw, bool) else None
        )
    except ValueError:
        score = None
    if score is None or not math.isfinite(score) or not 0.0 <= score <= 10.0:
        raise ValueError(f"{where}properties.security-severity is not a score from 0 to 10")
    return score


def result_severity(result: Result, rule: Rule | None) -> Severity:
    score = _security_severity(result.properties, "")
    if score is None and rule is not None:
        score = _security_severity(rule.properties, f"its rule {rule.id!r}: ")
    if score is not None:
        return score_severity(score)
    level = result.level
    if level is None and rule is not None and rule.default_configuration is not None:
        level = rule.default_configuration.level
    return LEVEL_SEVERITY[level or "warning"]


def sarif_path(uri: str) -> str:
    """The repository-relative path of an artifact URI (validated again by `Finding`)."""
    parts = urlsplit(uri)
    if parts.scheme == "file" or uri.startswith("/"):
        raise ValueError(f"{uri!r} is absolute; give a path relative to the repository root")
    if parts.scheme or parts.netloc:
        raise ValueError(f"{uri!r} is a URL, not a file in the repository")
    return unquote(parts.path)


def _rule_of(run: Run, result: Result) -> Rule | None:
    rules = run.tool.driver.rules
    if result.rule_index is not None and result.rule_index < len(rules):
        return rules[result.rule_index]
    if result.rule_id is not None:
        return next((rule for rule in rules if rule.id == result.rule_id), None)
    return None


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[: MAX_LINE - 1] + "…" if len(line) > MAX_LINE else line


def _finding_fields(run: Run, result: Result, own_id: str) -> dict[str, Any]:
    rule = _rule_of(run, result)
    message = result.message.text or result.message.markdown or ""
    title = ""
    if rule is not None:
        title = (rule.short_description and rule.short_description.text) or rule.name or ""
    title = title or _first_line(message) or result.rule_id or "(untitled)"
    fields: dict[str, Any] = {
        "id": result.guid or own_id,
        "severity": result_severity(result, rule),
        "title": title,
        "detail": message,
        "recommendation": (rule.help.text or "") if rule is not None and rule.help else "",
        "tool": run.tool.driver.name,
        "rule": result.rule_id or (rule.id if rule is not None else None),
    }
    location = result.locations[0] if result.locations else None
    physical = location.physical_location if location else None
    if physical and physical.artifact_location and physical.artifact_location.uri:
        fields["file"] = sarif_path(physical.artifact_location.uri)
        if physical.region and physical.region.start_line is not None:
            fields["line"] = physical.region.start_line
    elif location and location.logical_locations:
        logical = location.logical_locations[0]
        fields["asset"] = logical.fully_qualified_name or logical.name or NO_LOCATION_ASSET
    else:
        fields["asset"] = NO_LOCATION_ASSET
    return fields


def parse_sarif(name: str, data: bytes) -> list[Finding]:
    """Findings from one SARIF 2.1.0 file; FindingsError names every problem."""
    try:
        log = SarifLog.model_validate_json(data)
    except ValidationError as exc:
        raise FindingsError(validation_problems(name, exc)) from None
    findings: list[Finding] = []
    problems: list[Problem] = []
    for r, run in enumerate(log.runs):
        for i, result in enumerate(run.results or []):
            where = f"runs[{r}].results[{i}]"
            if result.kind in SKIPPED_KINDS:
                continue
            try:
                fields = _finding_fields(run, result, f"{name}#{len(findings) + 1}")
                findings.append(Finding.model_validate(fields))
            except ValidationError as exc:
                problems += validation_problems(name, exc, prefix=where)
            except ValueError as exc:
                problems.append(Problem(name, where, str(exc)))
    if problems:
        raise FindingsError(problems)
    return findings
