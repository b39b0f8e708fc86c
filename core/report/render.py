"""Writing the report: `report.json` (the model), `report.md` for people, `report.sarif` for tools.

Each file is written whole or not at all (`atomic.write_atomic`: temp file, fsync, rename, fsync
the directory; docs/reliability.md M3); `report.json` goes last, and its sha256 is what the log records
and a reviewer approves. Agent text reaching Markdown is made inert (`core.inert`: no escape or
control reaches whoever prints the file, T5) and escaped so it cannot add links, HTML or
structure; `report.json` spells the C1 and bidirectional controls as `\\uXXXX` (`inert_json`).

SARIF: one run whose driver is corral, since the findings are already merged across tools. Each
merged finding is one rule and one result; the agents are a taxonomy (`corral-agents`) that each
result references, and `properties` carry severity, agreement, tools and the source rule ids.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from corral.core.atomic import write_atomic
from corral.core.findings.merge import MergedFinding
from corral.core.report.model import Report
from corral.core.trust.inert import inert, inert_json
from corral.core.trust.integrity import describe_change, describe_when, printable

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
REPORT_SARIF = "report.sarif"
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
AGENT_TAXONOMY = "corral-agents"
SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "2.0", "info": "0.0"}
SARIF_LEVEL = {
    "critical": "error",
    "high": "error",
    "medium": "warning",
    "low": "note",
    "info": "none",
}

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+!|~])")


def md(text: str) -> str:
    """Agent text as inert Markdown: special characters escaped, one line."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(inert(text).split()))


def md_block(text: str) -> str:
    """Agent text as inert Markdown paragraphs (line breaks kept)."""
    lines = inert(text, lines=True).splitlines()
    return "\n".join(md(line) + "  " if line.strip() else "" for line in lines).strip()


def _where(finding: MergedFinding) -> str:
    if finding.file is not None:
        return f"{finding.file}:{finding.line}" if finding.line is not None else finding.file
    return finding.asset or "?"


def render_markdown(report: Report) -> str:
    out: list[str] = [f"# corral report: {md(report.name or report.run_id)}", ""]
    out.append(f"- run `{report.run_id}` on `{md(report.base_ref)}` at `{report.snapshot[:12]}`")
    verdict = report.verdict
    status = "met" if verdict.met else "NOT met: the verdict is failed and nothing was merged"
    out.append(f"- min_success {verdict.min_success}, succeeded {verdict.succeeded}: {status}")
    if report.partial:
        out.append(f"- **PARTIAL report**: {md(report.partial_reason)}")
    summary = report.summary
    out.append(
        f"- findings: {summary.total} (critical {summary.critical}, high {summary.high}, "
        f"medium {summary.medium}, low {summary.low}, info {summary.info}); severity conflicts: "
        f"{len(report.finding_conflicts)}; merge conflicts: {len(report.merge_conflicts)}"
    )
    if report.usage is not None:
        usage = report.usage
        cost = "unknown" if usage.cost_usd is None else f"${usage.cost_usd:.4f}"
        out.append(
            f"- agent usage: {usage.tokens_in + usage.tokens_out} tokens ({usage.tokens_in} in, "
            f"{usage.tokens_out} out, {usage.tokens_cached} cached), cost {cost}, "
            f"{usage.turns} turns, {usage.tool_calls} tool calls"
        )
    if report.tampering:
        out.append(
            f"- **THE SHARED REPOSITORY WAS TAMPERED WITH** ({len(report.tampering)} report(s), "
            "below): approve waits until a person acknowledges it"
        )
    out += [
        "",
        "## Agents",
        "",
        "| agent | kind | state | attempts | seconds | note |",
        "|---|---|---|---|---|---|",
    ]
    for agent in report.agents:
        rejected = agent.findings_rejected
        note = f"output rejected: {rejected}" if rejected is not None else agent.reason
        if agent.usage is not None:
            used = agent.usage
            cost = "" if used.cost_usd is None else f", ${used.cost_usd:.4f}"
            model = f"{used.model}: " if used.model else ""
            spent = f"{model}{used.tokens_in + used.tokens_out} tokens{cost}, {used.turns} turns"
            note = f"{spent}; {note}" if note else spent
        out.append(
            f"| {md(agent.id)} | {agent.kind} | {agent.state} | {agent.attempts} | "
            f"{agent.duration:.1f} | {md(note)} |"
        )
    if verdict.failed:
        out += ["", "## Failed agents", ""]
        out += [f"- **{md(f.agent)}** ({f.state}): {md(f.reason)}" for f in verdict.failed]
    if report.validation_errors:
        out += ["", "## Rejected outputs", ""]
        out += [
            f"- **{md(e.agent)}** attempt {e.attempt}: {md(e.reason)}"
            for e in report.validation_errors
        ]
    out += _tampering_markdown(report)
    if report.merged or report.left_out:
        out += ["", "## Merge", ""]
        if report.integration_commit:
            out.append(
                f"Integration branch `{report.integration_branch}` at `{report.integration_commit[:12]}`."
            )
            out.append("")
        out += [
            f"- merged **{md(m.agent)}** attempt {m.attempt} (`{md(m.branch)}`)"
            for m in report.merged
        ]
        for lo in report.left_out:
            files = ", ".join(f"{md(f.path)} ({f.kind})" for f in lo.files)
            out.append(
                f"- LEFT OUT **{md(lo.agent)}** attempt {lo.attempt}: {md(lo.reason)}"
                + (f"; files: {files}" if files else "")
            )
        if report.left_out and report.integration_commit:
            agents = " ".join(md(lo.agent) for lo in report.left_out)
            out += [
                "",
                "Redo the left-out work on top of this integration (a new run, landed after this "
                f"one): `corral rerun {md(report.run_id)} {agents}`.",
            ]
    if report.verification is not None:
        v = report.verification
        result = "passed" if v.passed else f"FAILED (exit {v.exit_code})"
        out += [
            "",
            "## Verification",
            "",
            f"`{md(' '.join(v.command))}` on `{v.commit[:12]}`: {result}; log `{md(v.log_path)}`",
        ]
    if report.merge_conflicts:
        out += ["", "## Merge conflicts", ""]
        for c in report.merge_conflicts:
            when = "/".join(
                w for w, on in (("predicted", c.predicted), ("at merge", c.actual)) if on
            )
            files = ", ".join(f"{md(f.path)} ({f.kind})" for f in c.files)
            out.append(f"- {md(' and '.join(c.agents))} ({when}): {files}")
    if report.finding_conflicts:
        out += ["", "## Severity conflicts (for a person to settle)", ""]
        for sc in report.finding_conflicts:
            rated = ", ".join(f"{md(agent)}: {sev}" for agent, sev in sc.severities.items())
            out.append(f"- {md(sc.location)}: {rated} ({md(sc.reason)})")
    if report.suppressions:
        out += ["", "## Suppressed for this review", ""]
        for s in report.suppressions:
            out.append(
                f"- #{s.seq} {s.kind} `{md(s.pattern)}` by {md(s.by)}: {md(s.reason)} "
                f"({len(s.findings)} finding(s): {', '.join(s.findings) or '-'})"
            )
    if report.findings:
        out += ["", "## Findings", ""]
        for f in report.findings:
            aside = f" (suppressed #{f.suppressed_by})" if f.suppressed_by is not None else ""
            out += [f"### {f.severity.upper()} {md(f.title)}{aside}", ""]
            agreed = ", ".join(md(a) for a in f.agents)
            out.append(f"`{f.id}` at {md(_where(f))}; reported by {f.agreement} agent(s): {agreed}")
            if f.tools:
                out.append(f"; tools: {md(', '.join(f.tools))}")
            if f.detail:
                out += ["", md_block(f.detail)]
            if f.recommendation:
                out += ["", "**Recommendation:** " + md_block(f.recommendation)]
            out.append("")
    return "\n".join(out).rstrip() + "\n"


def _tampering_markdown(report: Report) -> list[str]:
    if not report.tampering:
        return []
    out = ["", "## Shared repository tampered with", ""]
    out.append(
        "Config, hooks and attributes were restored (the changed versions are kept in the run "
        "directory); refs are left as found."
    )
    for tampering in report.tampering:
        when = describe_when(tampering.live, tampering.seen)
        out += ["", f"- #{tampering.seq} {md(when)}"]
        for change in tampering.changes:
            out.append(f"  - {md(describe_change(change))}")
            out += [f"    - {md(printable(line))}" for line in change.detail]
        if tampering.problem:
            out.append(f"  - problem: {md(printable(tampering.problem, 400))}")
    return out


def _sarif_location(finding: MergedFinding) -> dict[str, Any]:
    if finding.file is not None:
        physical: dict[str, Any] = {
            "artifactLocation": {"uri": finding.file, "uriBaseId": "%SRCROOT%"}
        }
        if finding.line is not None:
            physical["region"] = {"startLine": finding.line}
        return {"physicalLocation": physical}
    return {"logicalLocations": [{"name": finding.asset or "?", "kind": "resource"}]}


def _sarif_invocation(report: Report) -> dict[str, Any]:
    invocation: dict[str, Any] = {"executionSuccessful": report.verdict.met}
    if report.partial:
        invocation["toolExecutionNotifications"] = [
            {"level": "error", "message": {"text": "partial report: " + report.partial_reason}}
        ]
    return invocation


def render_sarif(report: Report) -> dict[str, Any]:
    agents = [agent.id for agent in report.agents]
    suppressions = {s.seq: s for s in report.suppressions}
    rules = []
    results = []
    for index, f in enumerate(report.findings):
        rules.append(
            {
                "id": f.id,
                "name": f.id,
                "shortDescription": {"text": f.title},
                "help": {"text": f.recommendation or f.title},
                "properties": {
                    "security-severity": SECURITY_SEVERITY[f.severity],
                    "source-rules": f.rules,
                },
            }
        )
        results.append(
            {
                "ruleId": f.id,
                "ruleIndex": index,
                "level": SARIF_LEVEL[f.severity],
                "message": {"text": f.detail or f.title},
                "locations": [_sarif_location(f)],
                "partialFingerprints": {"corralFingerprint/v1": f.fingerprint},
                "taxa": [
                    {
                        "id": agent,
                        "index": agents.index(agent),
                        "toolComponent": {"name": AGENT_TAXONOMY},
                    }
                    for agent in f.agents
                ],
                "properties": {
                    "severity": f.severity,
                    "security-severity": SECURITY_SEVERITY[f.severity],
                    "agents": f.agents,
                    "agreement": f.agreement,
                    "tools": f.tools,
                },
            }
        )
        if f.suppressed_by is not None:
            set_aside = suppressions[f.suppressed_by]
            results[-1]["suppressions"] = [
                {
                    "kind": "external",
                    "status": "accepted",
                    "justification": set_aside.reason,
                    "properties": {
                        "by": set_aside.by,
                        "seq": set_aside.seq,
                        set_aside.kind: set_aside.pattern,
                    },
                }
            ]
    run = {
        "tool": {
            "driver": {
                "name": "corral",
                "rules": rules,
            }
        },
        "taxonomies": [
            {"name": AGENT_TAXONOMY, "taxa": [{"id": agent, "name": agent} for agent in agents]}
        ],
        "originalUriBaseIds": {"%SRCROOT%": {"description": {"text": "the repository root"}}},
        "versionControlProvenance": [
            {"repositoryUri": "file:///" + report.repo.lstrip("/"), "revisionId": report.snapshot}
        ],
        "results": results,
        # a partial report is a run that did not succeed, whose results are still worth reading
        "invocations": [_sarif_invocation(report)],
        "properties": {
            "run_id": report.run_id,
            "synthesized": report.synthesized,
            "partial": report.partial,
            "partial_reason": report.partial_reason,
            "severity_conflicts": [c.model_dump() for c in report.finding_conflicts],
        },
    }
    return {"$schema": SARIF_SCHEMA, "version": "2.1.0", "runs": [run]}


def report_json(report: Report) -> bytes:
    return (inert_json(report.model_dump_json(indent=2)) + "\n").encode()


def _drop_stale_temps(directory: Path) -> None:
    """Temp files a killed writer left (`.report.json.<pid>.tmp`); only the engine writes here."""
    for name in os.listdir(directory):
        if name.startswith((".report.", f".{REPORT_MD}.", f".{REPORT_SARIF}.")) and name.endswith(
            ".tmp"
        ):
            with contextlib.suppress(FileNotFoundError):
                (directory / name).unlink()


def write_report(report: Report, directory: Path) -> str:
    """Write the three files atomically, report.json last; return report.json's sha256."""
    _drop_stale_temps(directory)
    write_atomic(directory / REPORT_MD, render_markdown(report).encode())
    sarif = json.dumps(render_sarif(report), indent=2, sort_keys=True) + "\n"
    write_atomic(directory / REPORT_SARIF, sarif.encode())
    data = report_json(Report.model_validate_json(report_json(report)))  # round-trips, validated
    write_atomic(directory / REPORT_JSON, data)
    return hashlib.sha256(data).hexdigest()


def load_report(path: Path) -> tuple[Report, str]:
    """The report at `path` (validated) and the sha256 of its bytes."""
    data = path.read_bytes()
    return Report.model_validate_json(data), hashlib.sha256(data).hexdigest()
