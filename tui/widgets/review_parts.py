"""What the review screen draws: findings grouped by severity, merged and left-out branches, the
summary lines and the verification result. Pure functions of the state and the report."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text

from corral.core.findings.display import Finding, Loaded, counts_by_severity, severity_rank
from corral.core.log.state import RunState, TamperingState
from corral.core.trust.integrity import describe_change, describe_when
from corral.tui import look
from corral.tui.text import inert
from corral.tui.widgets.tables import KeyTable, Row

TABS = ("findings", "conflicts", "branches", "verification", "raw")


class ReviewFindings(KeyTable):
    COLUMNS: ClassVar[list[tuple[str, str, int]]] = [
        ("severity", "severity", 10),
        ("title", "finding", 48),
        ("location", "where", 28),
        ("agent", "agent", 18),
        ("rule", "rule", 16),
    ]


class BranchesTable(KeyTable):
    COLUMNS: ClassVar[list[tuple[str, str, int]]] = [
        ("outcome", "outcome", 11),
        ("agent", "agent", 18),
        ("branch", "branch", 34),
        ("detail", "detail", 50),
    ]


GROUPINGS = ("severity", "rule", "tool", "file")
"""What the findings are grouped by; a key cycles through them in this order."""
NONE_GROUP = "(none)"


def group_of(finding: Finding, by: str) -> str:
    """The group a finding falls in when grouped `by` severity, rule, tool or file."""
    if by == "rule":
        value = finding.rule
    elif by == "tool":
        value = finding.tool
    elif by == "file":
        value = finding.file or finding.location
    else:
        value = finding.severity
    return value or NONE_GROUP


def finding_key(index: int) -> str:
    """A finding's row key: its index in the report as read (Loaded.findings)."""
    return f"finding:{index}"


def finding_at(loaded: Loaded | None, key: str | None) -> Finding | None:
    if loaded is None or not key or not key.startswith("finding:"):
        return None
    index = int(key.removeprefix("finding:"))
    return loaded.findings[index] if 0 <= index < len(loaded.findings) else None


def finding_groups(
    loaded: Loaded, by: str = "severity", collapsed: frozenset[str] = frozenset()
) -> list[tuple[str, Row]]:
    """A header row per group (its count, ▼ open or ▶ collapsed), then the group's findings,
    most severe first. Severity groups come most severe first, the others by name."""
    groups: dict[str, list[int]] = {}
    for index, finding in enumerate(loaded.findings):
        groups.setdefault(group_of(finding, by), []).append(index)

    def group_order(name: str) -> tuple[int, str]:
        if by == "severity":
            return severity_rank(name), name
        return (1 if name == NONE_GROUP else 0), name.lower()

    rows: list[tuple[str, Row]] = []
    for name in sorted(groups, key=group_order):
        members = sorted(
            groups[name],
            key=lambda i: (
                severity_rank(loaded.findings[i].severity),
                loaded.findings[i].location,
                loaded.findings[i].agent,
            ),
        )
        shut = name in collapsed
        style = look.SEVERITY_STYLE.get(name, "bold") if by == "severity" else "bold"
        rows.append(
            (
                f"group:{name}",
                {
                    "severity": Text(
                        f"{'▶' if shut else '▼'} {inert(name, limit=60)}", style=style
                    ),
                    "title": Text(
                        f"{len(members)} finding(s)" + (" · enter opens" if shut else ""),
                        style="bold",
                    ),
                    "location": Text(""),
                    "agent": Text(""),
                    "rule": Text(""),
                },
            )
        )
        if shut:
            continue
        for index in members:
            finding = loaded.findings[index]
            rows.append(
                (
                    finding_key(index),
                    {
                        "severity": Text(
                            f"{'⊘' if finding.suppressed else ' '} {finding.severity}",
                            style="dim"
                            if finding.suppressed
                            else look.SEVERITY_STYLE.get(finding.severity, ""),
                        ),
                        "title": Text(finding.title, style="dim" if finding.suppressed else ""),
                        "location": Text(finding.location, style="dim"),
                        "agent": Text(finding.agent),
                        "rule": Text(finding.rule, style="dim"),
                    },
                )
            )
    return rows


def branch_rows(state: RunState) -> list[tuple[str, Row]]:
    rows: list[tuple[str, Row]] = []
    for merged in state.merge.merged:
        rows.append(
            (
                f"merged:{merged.agent}",
                {
                    "outcome": Text("✔ merged", style="green"),
                    "agent": Text(inert(merged.agent, limit=60)),
                    "branch": Text(inert(merged.branch, limit=120)),
                    "detail": Text(f"→ {merged.commit[:12]}", style="dim"),
                },
            )
        )
    for left in state.merge.left_out:
        rows.append(
            (
                f"left:{left.agent}",
                {
                    "outcome": Text("✘ left out", style="red bold"),
                    "agent": Text(inert(left.agent, limit=60)),
                    "branch": Text(inert(left.branch, limit=120)),
                    "detail": Text(inert(left.reason, limit=200)),
                },
            )
        )
    return rows


def summary_text(
    state: RunState, loaded: Loaded | None, *, read_only: bool, acting: str = ""
) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f"review {inert(state.name or state.run_id, limit=40)}", style="bold reverse")
    if state.verdict:
        style = "green bold" if state.verdict == "passed" else "red bold"
        text.append(f" run {state.verdict}", style=style)
    if state.unacknowledged_tampering():
        text.append("  ⚠ REPOSITORY TAMPERED: t acknowledges", style="red bold reverse")
    elif state.tampering:
        text.append("  ⚠ tampering acknowledged", style="yellow")
    report = state.report
    if report is None:
        text.append("  no report yet", style="yellow")
    else:
        current = loaded is not None and loaded.sha256 == report.sha256
        text.append(f"  report {report.sha256[:12]}")
        if current:
            text.append(" ✔ current", style="green")
        elif loaded is not None and loaded.sha256:
            text.append(" ✘ CHANGED ON DISK", style="red bold")
        if not report.synthesized:
            text.append("  below min_success: partial findings, nothing to land", style="red")
    if state.review is not None:
        style = "green bold" if state.review.decision == "approved" else "red bold"
        reason = f": {inert(state.review.reason, limit=80)}" if state.review.reason else ""
        by = inert(state.review.by, limit=40)
        text.append(f"  ✎ {state.review.decision} by {by}{reason}", style=style)
    if read_only:
        text.append("  READ-ONLY", style="bold reverse")
    if acting:
        text.append(f"  as {inert(acting, limit=60)}", style="bold")
    text.append(f"  run {state.run_id}", style="dim")
    text.append("\n")
    if loaded is not None:
        counts = counts_by_severity(loaded.findings)
        text.append(f"{len(loaded.findings)} findings", style="bold")
        for severity, count in counts.items():
            text.append(f"  {severity} {count}", style=look.SEVERITY_STYLE.get(severity, ""))
        if aside := sum(1 for f in loaded.findings if f.suppressed):
            text.append(f"  ⊘ {aside} suppressed", style="yellow")
    text.append(f"   ✔ {len(state.merge.merged)} merged  ✘ {len(state.merge.left_out)} left out")
    text.append(
        f"  ⚠ {len(state.conflicts)} conflicts", style="yellow" if state.conflicts else "dim"
    )
    verification = state.merge.verification
    if verification is not None:
        text.append(
            "  verification ✔ passed" if verification.passed else "  verification ✘ FAILED",
            style="green" if verification.passed else "red bold",
        )
    if state.rejected_findings:
        text.append(f"  ! {len(state.rejected_findings)} agents' output rejected", style="red")
    return text


def verification_text(state: RunState) -> Text:
    result = state.merge.verification
    if result is None:
        return Text(
            "no verification ran (the plan has no verify command, or the merge has not run)",
            style="dim",
        )
    text = Text()
    text.append(
        "✔ passed\n" if result.passed else "✘ FAILED\n",
        style="green bold" if result.passed else "red bold",
    )
    text.append(
        f"command: {inert(' '.join(result.command), limit=400)}\nexit: {result.exit_code}\n"
    )
    text.append(f"commit: {result.commit}\nlog: {inert(result.log_path, limit=300)}\n")
    return text


def tampering_text(tampering: list[TamperingState], *, footnote: bool = True) -> Text:
    """Each report of tampering with the shared repository: who was live, what changed, what
    corral did, and whether a person has acknowledged it."""
    text = Text()
    for report in tampering:
        text.append(f"#{report.seq} ", style="bold")
        text.append(inert(describe_when(report.live, report.seen), limit=300), style="bold")
        if report.acknowledged_by is None:
            text.append("  NOT ACKNOWLEDGED\n", style="red bold")
        else:
            text.append(
                f"  acknowledged by {inert(report.acknowledged_by, limit=80)}\n", style="dim"
            )
        for change in report.changes:
            style = "green" if change.restored else "yellow"
            text.append(f"  • {inert(describe_change(change), limit=400)}\n", style=style)
            for line in change.detail:
                text.append(f"      {inert(line, limit=200)}\n", style="dim")
        if report.problem:
            text.append(f"  ! {inert(report.problem, limit=400)}\n", style="red")
    if not footnote:
        return text
    text.append(
        "\nConfig, hooks and info/attributes were put back as the run found them (the changed "
        "versions are kept in the run directory); refs are left as found. Approve waits until "
        "a person acknowledges every report (t).",
        style="dim",
    )
    return text
