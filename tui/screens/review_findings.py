"""The review screen's findings: the detail pane of the finding under the cursor (with the
code around its line, read from the commit that would land), `e` to open that file in
`$EDITOR` at the line, `b` to cycle the grouping (severity, rule, tool, file), enter on a
group to collapse or open it, and `s` to suppress a rule or a path for this review (through
the operator API, core/operator/decisions.py, as `corral review suppress`)."""

from __future__ import annotations

import asyncio
import subprocess
from typing import ClassVar, Literal

from textual import getters, work
from textual.app import SuspendNotSupported
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widgets import Static

from corral.core.findings.display import Finding, Loaded
from corral.core.operator import decisions
from corral.core.operator.errors import OperatorError
from corral.tui import ops
from corral.tui.screens.dialogs import AskScreen
from corral.tui.screens.review_decide import ReviewDecisions
from corral.tui.text import inert
from corral.tui.widgets.finding_detail import finding_detail
from corral.tui.widgets.review_parts import (
    GROUPINGS,
    ReviewFindings,
    finding_at,
    finding_groups,
)


class ReviewFindingsPart(ReviewDecisions):
    """The findings half of the review screen (review.py composes it)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("e", "edit", "Open in $EDITOR", id="review.edit"),
        Binding("b", "group_by", "Group by", id="review.group_by"),
        Binding("s", "suppress", "Suppress", id="review.suppress"),
    ]

    class FindingRead(Message):
        def __init__(self, key: str, finding: Finding, excerpt: ops.Excerpt | None) -> None:
            super().__init__()
            self.key, self.finding, self.excerpt = key, finding, excerpt

    findings = getters.query_one(ReviewFindings)
    finding_view = getters.query_one("#finding-view", Static)
    finding_pane = getters.query_one("#finding-detail", VerticalScroll)

    loaded: Loaded | None = None
    grouping = "severity"
    collapsed: frozenset[str] = frozenset()
    detail_key = ""

    def integration_commit(self) -> str:
        """The commit a finding's code is read from: what approving lands (the snapshot when
        nothing merged)."""
        feed = self.session.feed
        if feed is None:
            return ""
        return feed.state.merge.integration_commit or feed.state.snapshot

    def regroup(self) -> None:
        """Lay the rows out again (a new grouping, a fold, a filter: a person's action); the
        first report only fills the empty table, which moves no cursor and no tab."""
        loaded = self.loaded
        if loaded is None:
            return
        rows = finding_groups(loaded, self.grouping, self.collapsed)
        if self.findings.row_count:
            self.findings.set_filter(self.findings.filter_text, lambda: rows)
        else:
            self.findings.sync(rows, complete=True)
        self.title_findings()

    def title_findings(self) -> None:
        count = len(self.loaded.findings) if self.loaded is not None else 0
        filtered = self.findings.filter_text
        title = f"{count} findings by {self.grouping} · b regroups · enter folds" + (
            f" · filter {inert(filtered, limit=40)!r}" if filtered else ""
        )
        self.findings.border_title = title
        self.finding_pane.border_title = title

    def current_finding(self) -> Finding | None:
        return finding_at(self.loaded, self.findings.current_key)

    def show_finding(self, key: str | None) -> None:
        """The pane follows the cursor; the code is read in a thread."""
        finding = finding_at(self.loaded, key)
        if key is None or finding is None:
            self.detail_key = ""
            self.finding_view.update("")
            return
        if key == self.detail_key:
            return
        self.detail_key = key
        self.finding_view.update(finding_detail(finding, None))
        self.read_finding(key, finding)

    @work(group="finding", exclusive=True, thread=True)
    def read_finding(self, key: str, finding: Finding) -> None:
        feed = self.session.feed
        excerpt = None
        if finding.file and feed is not None:
            excerpt = ops.excerpt(
                feed.state.repo, self.integration_commit(), finding.file, finding.line
            )
        self.post_message(self.FindingRead(key, finding, excerpt))

    def on_review_findings_part_finding_read(self, message: FindingRead) -> None:
        if message.key == self.detail_key:  # a slower read must not overwrite a newer one
            self.finding_view.update(finding_detail(message.finding, message.excerpt))

    def action_group_by(self) -> None:
        self.grouping = GROUPINGS[(GROUPINGS.index(self.grouping) + 1) % len(GROUPINGS)]
        self.collapsed = frozenset()
        self.regroup()
        self.notify(f"findings grouped by {self.grouping}", timeout=2)

    def toggle_group(self, key: str) -> None:
        name = key.removeprefix("group:")
        self.collapsed = (
            self.collapsed - {name} if name in self.collapsed else self.collapsed | {name}
        )
        self.regroup()
        self.findings.select_key(key)

    def action_edit(self) -> None:
        """The file as it would land, a read-only copy, in `$EDITOR` at the finding's line; the
        console comes back when the editor exits."""
        finding = self.current_finding()
        feed = self.session.feed
        if finding is None or not finding.file or feed is None:
            self.notify("select a finding about a file", severity="warning")
            return
        path, problem = ops.export_file(feed.state.repo, self.integration_commit(), finding.file)
        if path is None:
            self.notify(inert(problem, limit=300), title="cannot open", severity="warning")
            return
        command = ops.editor_command(path, finding.line)
        try:
            with self.app.suspend():
                print(f"corral: {finding.file} at {self.integration_commit()[:12]}, read-only")
                try:
                    subprocess.run(command, check=False)
                finally:
                    ops.discard_export(path)
        except SuspendNotSupported:
            self.notify(
                f"this console cannot hand over its terminal; the file is at {path}",
                title="no editor here",
                severity="warning",
                timeout=10,
            )
        except OSError as exc:
            ops.discard_export(path)
            self.notify(
                inert(f"{command[0]}: {exc.strerror}", limit=300),
                title="the editor did not start",
                severity="error",
            )

    @work(group="decisions", exclusive=True)
    async def action_suppress(self) -> None:
        """Ask what to set aside (the finding's rule, or its file: editable into a directory
        or a glob), then why; the report is written again showing it."""
        finding = self.current_finding()
        if self.decidable() or self.loaded is None:
            return
        if finding is None:
            self.notify("select a finding: its rule or its file is offered", severity="warning")
            return
        rule = finding.rule.split(", ")[0]
        offered = f"rule:{rule}" if rule else f"path:{finding.file}"
        target = await self.app.push_screen_wait(
            AskScreen(
                f"Suppress for this review of run {self.session.run_id}",
                "rule:ID or path:FILE, DIR/ or GLOB (the findings stay in the report, marked)",
                value=offered,
                required="name a rule or a path",
            )
        )
        if not target:
            return
        kind, _, pattern = target.partition(":")
        if kind not in ("rule", "path") or not pattern.strip():
            self.notify("write rule:ID or path:PATTERN", title="not suppressed", severity="error")
            return
        reason = await self.app.push_screen_wait(
            AskScreen(
                f"Why can {kind} {inert(pattern, limit=60)} wait?",
                "Reason (required; recorded with your name):",
                required="a reason is required",
            )
        )
        if not reason:
            return
        shown, operator = self.loaded.sha256, self.session.operator
        chosen: Literal["rule", "path"] = "rule" if kind == "rule" else "path"
        try:
            done = await asyncio.to_thread(
                decisions.suppress, self.session.rundir, operator, chosen, pattern, reason, shown
            )
        except OperatorError as exc:
            self.notify(inert(str(exc)), title="suppress refused", severity="error", timeout=10)
        else:
            self.notify(inert(done.message), title="suppressed")
