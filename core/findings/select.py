"""Picking findings of a report for a person: words to match (severity, agent, file, rule,
title, as the console's `/` filter) and a least severity. `corral review show --findings
--severity` and its `--json` use it; the console's filter is the same `Finding.matches`."""

from __future__ import annotations

from typing import Any

from corral.core.findings.display import Finding, Loaded, severity_rank


def matching(loaded: Loaded, words: str = "", at_least: str | None = None) -> list[int]:
    """Indexes (into `loaded.findings`) of the findings that match every word and are at
    least as severe as `at_least`, most severe first."""
    needles = words.split()
    limit = severity_rank(at_least) if at_least else None
    picked = [
        index
        for index, finding in enumerate(loaded.findings)
        if all(finding.matches(needle) for needle in needles)
        and (limit is None or severity_rank(finding.severity) <= limit)
    ]
    return sorted(picked, key=lambda i: (severity_rank(loaded.findings[i].severity), i))


def raw_findings(loaded: Loaded) -> list[dict[str, Any]]:
    """The report's own finding objects, in the order `loaded.findings` holds them."""
    items = loaded.raw.get("findings") if loaded.raw else None
    return [item for item in items if isinstance(item, dict)] if isinstance(items, list) else []


def describe(finding: Finding) -> str:
    """A finding as plain text lines (already inert: display.py read it so)."""
    where = finding.location or "no location"
    lines = [f"{finding.severity:<9} {finding.title}", f"          {where}"]
    facts = [
        f"{label} {value}"
        for label, value in (
            ("id", finding.id),
            ("agents", finding.agent),
            ("rule", finding.rule),
            ("tool", finding.tool),
        )
        if value
    ]
    if facts:
        lines.append("          " + "  ".join(facts))
    if finding.suppressed:
        lines.append(f"          ⊘ {finding.suppressed}")
    for body, mark in ((finding.detail, ""), (finding.recommendation, "→ ")):
        lines += [f"          {mark}{line}" for line in body.splitlines()]
    return "\n".join(lines)
