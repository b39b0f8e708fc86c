"""Findings read for a person to look at: an agent's CORRAL_OUTPUT dir (corral findings JSON or
SARIF 2.1.0) and the run's report.json, whatever shape they turn out to have, best effort.

The strict reader the engine merges with is schema.py (`load_output`); this one shows what is
there even when it would be rejected, so a person can see why. It keeps that reader's limits and
file rules: files read by `read_untrusted` (no links, devices or oversized files), at most
MAX_FILES files and MAX_FINDINGS findings an agent, SARIF levels as sarif.py maps them. The report
is corral's own file, merged from many agents: its size and count caps are options. Text is made
inert (one line each) as it is read; paths are only ever shown, never opened."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corral.core.findings.output import read_untrusted
from corral.core.findings.sarif import LEVEL_SEVERITY
from corral.core.findings.schema import (
    MAX_FILE_BYTES,
    MAX_FILES,
    MAX_FINDINGS,
    SARIF_SUFFIXES,
    FindingsError,
)
from corral.core.trust.inert import inert as inert_lines
from corral.core.trust.inert import one_line as inert

REPORT_MAX_BYTES = 32 << 20
"""report.json merges every agent's findings (each up to MAX_FILE_BYTES), so it may be bigger."""
REPORT_MAX_FINDINGS = 20_000
"""Findings of a report shown at most."""
SEVERITY_ORDER = ("critical", "high", "error", "medium", "warning", "low", "note", "info", "none")
"""Most severe first: corral's severities with SARIF's levels among them, for documents that
use those words."""


@dataclass(frozen=True)
class Finding:
    severity: str
    title: str
    location: str
    agent: str
    rule: str = ""
    id: str = ""
    file: str = ""
    """The repository path it is about, as the document spelled it ('' for an asset)."""
    line: int | None = None
    detail: str = ""
    """Several lines, escapes and controls removed."""
    recommendation: str = ""
    tool: str = ""
    suppressed: str = ""
    """Who set it aside for this review and why ('' when nobody did)."""

    def matches(self, needle: str) -> bool:
        needle = needle.lower()
        return any(
            needle in part.lower()
            for part in (self.severity, self.title, self.location, self.agent, self.rule)
        )


@dataclass
class Loaded:
    findings: list[Finding]
    problems: list[str]
    raw: dict[str, Any] | None = None
    sha256: str = ""


def read_bounded(path: Path, limit: int = MAX_FILE_BYTES) -> bytes | None:
    """A regular file's bytes by schema.py's rules (no links, devices or files over `limit`),
    or None."""
    try:
        return read_untrusted(path, limit)
    except FindingsError:
        return None


def _text(value: Any) -> str:
    if isinstance(value, str):
        return inert(value, limit=300)
    if isinstance(value, dict):
        for key in ("text", "message", "markdown", "id", "name"):
            if isinstance(value.get(key), str):
                return inert(value[key], limit=300)
    if isinstance(value, int | float):
        return str(value)
    return ""


DETAIL_LIMIT = 16_000
"""Characters of a finding's detail or recommendation kept for display."""


def _long_text(value: Any) -> str:
    """Several lines of a document's text, inert, at most DETAIL_LIMIT characters."""
    if isinstance(value, dict):
        value = value.get("text") or value.get("markdown")
    return inert_lines(value[:DETAIL_LIMIT], lines=True) if isinstance(value, str) else ""


def _line(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _severity(value: Any) -> str:
    text = _text(value).lower()
    return LEVEL_SEVERITY.get(text, text or "info")


def _location(item: dict[str, Any]) -> str:
    for key in ("file", "path", "asset", "location", "uri"):
        value = item.get(key)
        if isinstance(value, str):
            line = item.get("line") or item.get("start_line")
            return inert(value, limit=200) + (f":{line}" if isinstance(line, int) else "")
        if isinstance(value, dict):
            path = _text(value.get("path") or value.get("file") or value.get("uri"))
            line = value.get("line") or value.get("start_line")
            if path:
                return path + (f":{line}" if isinstance(line, int) else "")
    return ""


def _sarif_location(result: dict[str, Any]) -> str:
    locations = result.get("locations")
    if not isinstance(locations, list) or not locations or not isinstance(locations[0], dict):
        return ""
    physical = locations[0].get("physicalLocation")
    if not isinstance(physical, dict):
        return ""
    artifact = physical.get("artifactLocation")
    uri = _text(artifact.get("uri")) if isinstance(artifact, dict) else ""
    region = physical.get("region")
    line = region.get("startLine") if isinstance(region, dict) else None
    return uri + (f":{line}" if isinstance(line, int) else "")


def from_document(doc: Any, agent: str, limit: int = MAX_FINDINGS) -> list[Finding]:
    """Findings from a corral findings document, a SARIF log or a report, best effort; at most
    `limit` of them."""
    found: list[Finding] = []
    if isinstance(doc, dict) and isinstance(doc.get("runs"), list):  # SARIF
        for run in doc["runs"]:
            results = run.get("results") if isinstance(run, dict) else None
            for result in results if isinstance(results, list) else []:
                if isinstance(result, dict) and len(found) < limit:
                    found.append(
                        Finding(
                            severity=_severity(result.get("level") or "warning"),
                            title=_text(result.get("message")),
                            location=_sarif_location(result),
                            agent=agent,
                            rule=_text(result.get("ruleId")),
                            **_sarif_place(result),
                            detail=_long_text(result.get("message")),
                            tool=_sarif_tool(run),
                        )
                    )
        return found
    items: Any = doc.get("findings") if isinstance(doc, dict) else doc
    aside = _suppressions(doc)
    if isinstance(items, dict):
        items = [f for group in items.values() if isinstance(group, list) for f in group]
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict) or len(found) >= limit:
            continue
        who = item.get("agent") or item.get("agents") or item.get("source") or agent
        if isinstance(who, list):
            who = ", ".join(_text(w) for w in who)
        found.append(
            Finding(
                severity=_severity(item.get("severity") or item.get("level")),
                title=_text(item.get("title") or item.get("message") or item.get("description")),
                location=_location(item),
                agent=_text(who),
                rule=_rules(item),
                id=_text(item.get("id")),
                file=_text(item.get("file") or item.get("path")),
                line=_line(item.get("line") or item.get("start_line")),
                detail=_long_text(item.get("detail") or item.get("description")),
                recommendation=_long_text(item.get("recommendation")),
                tool=_tools(item),
                suppressed=aside.get(_line(item.get("suppressed_by")) or 0, ""),
            )
        )
    return found


def _suppressions(doc: Any) -> dict[int, str]:
    """A report's suppressions by seq, each as one line: what, who and why."""
    items = doc.get("suppressions") if isinstance(doc, dict) else None
    found = {}
    for item in items if isinstance(items, list) else []:
        if isinstance(item, dict) and (seq := _line(item.get("seq"))):
            found[seq] = (
                f"{_text(item.get('kind'))} {_text(item.get('pattern'))} suppressed by "
                f"{_text(item.get('by'))}: {_text(item.get('reason'))}"
            )
    return found


def _sarif_place(result: dict[str, Any]) -> dict[str, Any]:
    """file and line of a SARIF result's first location."""
    location = _sarif_location(result)
    path, _, line = location.rpartition(":")
    if path and line.isdigit():
        return {"file": path, "line": int(line)}
    return {"file": location, "line": None}


def _sarif_tool(run: dict[str, Any]) -> str:
    tool = run.get("tool")
    driver = tool.get("driver") if isinstance(tool, dict) else None
    return _text(driver.get("name")) if isinstance(driver, dict) else ""


def _tools(item: dict[str, Any]) -> str:
    tools = item.get("tools")
    if isinstance(tools, list):
        return ", ".join(_text(tool) for tool in tools[:3])
    return _text(item.get("tool"))


def _rules(item: dict[str, Any]) -> str:
    rules = item.get("rules")
    if isinstance(rules, list):
        return ", ".join(_text(rule) for rule in rules[:3])
    return _text(item.get("rule") or item.get("rule_id") or item.get("id"))


@dataclass(frozen=True)
class SeverityConflict:
    """One finding that agents rated differently: for a person to settle."""

    location: str
    severities: dict[str, str]
    reason: str
    findings: tuple[str, ...] = ()
    """Ids of the report's merged findings that are this finding."""

    @property
    def key(self) -> str:
        """Unique in a report: several findings can be in conflict at one location."""
        return f"severity:{self.location} {','.join(self.findings)}".rstrip()

    def by_rating(self) -> list[tuple[str, list[str]]]:
        """The agents grouped by the severity they gave, most severe first."""
        groups: dict[str, list[str]] = {}
        for agent, severity in self.severities.items():
            groups.setdefault(severity, []).append(agent)
        return sorted(groups.items(), key=lambda group: severity_rank(group[0]))


def severity_conflicts(raw: dict[str, Any] | None) -> list[SeverityConflict]:
    """The report's `finding_conflicts`, read defensively."""
    items = raw.get("finding_conflicts") if raw else None
    found = []
    for item in items if isinstance(items, list) else []:
        if not isinstance(item, dict) or not isinstance(item.get("severities"), dict):
            continue
        severities = {_text(agent): _severity(level) for agent, level in item["severities"].items()}
        ids = item.get("findings")
        found.append(
            SeverityConflict(
                _text(item.get("location")),
                severities,
                _text(item.get("reason")),
                tuple(_text(i) for i in ids[:MAX_FILES]) if isinstance(ids, list) else (),
            )
        )
    return found[:REPORT_MAX_FINDINGS]


def agent_findings(output_dir: str, agent: str) -> Loaded:
    """Every .json / .sarif file directly in the agent's output dir."""
    loaded = Loaded([], [])
    root = Path(output_dir) if output_dir else None
    if root is None or not root.is_dir():
        loaded.problems.append("no output directory")
        return loaded
    try:
        names = sorted(os.listdir(root))[:MAX_FILES]
    except OSError as exc:
        loaded.problems.append(f"cannot list {root}: {exc.strerror}")
        return loaded
    for name in names:
        if not name.endswith((".json", *SARIF_SUFFIXES)):
            continue
        data = read_bounded(root / name)
        if data is None:
            loaded.problems.append(f"{inert(name)}: not a regular file, or too big")
            continue
        try:
            doc = json.loads(data)
        except ValueError:
            loaded.problems.append(f"{inert(name)}: not valid JSON")
            continue
        room = MAX_FINDINGS - len(loaded.findings)
        loaded.findings.extend(from_document(doc, agent, room) if room > 0 else [])
    return loaded


def read_report(path: str) -> Loaded:
    """report.json as plain JSON, with the sha256 of exactly the bytes shown."""
    data = read_bounded(Path(path), REPORT_MAX_BYTES) if path else None
    if data is None:
        return Loaded([], ["the report cannot be read"])
    digest = hashlib.sha256(data).hexdigest()
    try:
        doc = json.loads(data)
    except ValueError:
        return Loaded([], ["report.json is not valid JSON"], None, digest)
    raw = doc if isinstance(doc, dict) else {"findings": doc}
    return Loaded(from_document(raw, "", REPORT_MAX_FINDINGS), [], raw, digest)


def severity_rank(severity: str) -> int:
    return SEVERITY_ORDER.index(severity) if severity in SEVERITY_ORDER else len(SEVERITY_ORDER)


def counts_by_severity(findings: list[Finding]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for finding in findings:
        counts[finding.severity] = counts.get(finding.severity, 0) + 1
    return dict(sorted(counts.items(), key=lambda item: severity_rank(item[0])))
