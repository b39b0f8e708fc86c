"""What the review's finding pane draws: the finding's title and where it is, who reported it
with which rule and tool, its detail and recommendation, and the code around its line in the
commit that would land. A pure function of the finding and the excerpt read for it."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.syntax import Syntax
from rich.text import Text

from corral.core.findings.display import Finding
from corral.tui import look
from corral.tui.ops import Excerpt
from corral.tui.text import inert


def finding_detail(finding: Finding, excerpt: Excerpt | None) -> Group:
    head = Text()
    head.append(f"{finding.severity} ", style=look.SEVERITY_STYLE.get(finding.severity, "bold"))
    head.append(finding.title, style="bold")
    head.append(f"\n{finding.location or 'no location'}", style="dim")
    facts = [
        (label, value)
        for label, value in (
            ("id", finding.id),
            ("agents", finding.agent),
            ("rule", finding.rule),
            ("tool", finding.tool),
        )
        if value
    ]
    if facts:
        head.append("\n" + "  ".join(f"{label} {value}" for label, value in facts))
    if finding.suppressed:
        head.append(f"\n⊘ {finding.suppressed}", style="yellow")
    parts: list[RenderableType] = [head]
    for label, body in (("detail", finding.detail), ("recommendation", finding.recommendation)):
        if body:
            parts.append(Text.assemble(("\n" + label + "\n", "bold underline"), body))
    if not finding.file:
        return Group(*parts)
    if excerpt is None:
        parts.append(Text("\nreading the code…", style="dim"))
    elif excerpt.problem:
        parts.append(Text(f"\nno code to show: {inert(excerpt.problem, limit=300)}", style="dim"))
    else:
        parts.append(
            Text(
                f"\n{inert(excerpt.path, limit=200)} at {excerpt.commit[:12]} (what lands) · "
                "e opens it in $EDITOR",
                style="bold",
            )
        )
        parts.append(
            Syntax(
                excerpt.text,
                Syntax.guess_lexer(excerpt.path),
                theme="ansi_dark",
                line_numbers=True,
                start_line=excerpt.first,
                highlight_lines={finding.line} if finding.line else None,
                word_wrap=False,
                background_color="default",
            )
        )
    return Group(*parts)
