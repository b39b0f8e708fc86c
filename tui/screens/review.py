"""The review: the merged report's summary, findings (grouped, filterable, with a detail pane:
review_findings.py), conflicts with both
sides, merged and left-out branches with diffs, verification; `a` approve and `r` reject go
through the operator API, the same code path as `corral review` (review_decide.py). When an agent tampered with the
shared repository, a tampering tab appears (and opens), approve stays dimmed, and `t`
acknowledges it after a confirmation."""

from __future__ import annotations

import json
from typing import ClassVar

from rich.syntax import Syntax
from rich.text import Text
from textual import getters, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.message import Message
from textual.widgets import Static, TabbedContent, TabPane

from corral.core.findings.display import (
    Loaded,
    SeverityConflict,
    read_report,
    severity_conflicts,
)
from corral.core.log.state import RunState
from corral.tui import look, ops
from corral.tui.bridge import RunSession
from corral.tui.feed import RunFeed
from corral.tui.hunks import conflict_sides
from corral.tui.screens.dialogs import AskScreen
from corral.tui.screens.review_findings import ReviewFindingsPart
from corral.tui.text import inert
from corral.tui.widgets.footer import CorralFooter
from corral.tui.widgets.review_parts import (
    BranchesTable,
    ReviewFindings,
    branch_rows,
    summary_text,
    tampering_text,
    verification_text,
)
from corral.tui.widgets.tables import ConflictsTable, KeyTable


class ReviewScreen(ReviewFindingsPart):
    DEFAULT_CSS = """
    ReviewScreen #summary { height: 2; background: $panel; text-wrap: nowrap; text-overflow: ellipsis; }
    ReviewScreen TabbedContent { height: 1fr; }
    ReviewScreen TabPane { padding: 0; }
    ReviewScreen KeyTable { height: 1fr; min-height: 3; }
    ReviewScreen #finding-detail { height: 1fr; border-top: solid $secondary; padding: 0 1; }
    ReviewScreen #sides { height: 2fr; }
    ReviewScreen .side { width: 1fr; border-top: solid $secondary; }
    ReviewScreen #branch-diff { height: 2fr; border-top: solid $secondary; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "approve", "Approve", id="review.approve"),
        Binding("r", "reject", "Reject", id="review.reject"),
        Binding("n", "next_conflict(1)", "Next conflict", id="review.next_conflict"),
        Binding("N", "next_conflict(-1)", "Prev conflict", id="review.prev_conflict"),
        Binding("d", "diff", "Diff", id="review.diff"),
        Binding("slash", "filter", "Filter", id="review.filter"),
        Binding("1", "tab('findings')", "Findings", show=False, id="review.tab_findings"),
        Binding("2", "tab('conflicts')", "Conflicts", show=False, id="review.tab_conflicts"),
        Binding("3", "tab('branches')", "Branches", show=False, id="review.tab_branches"),
        Binding(
            "4", "tab('verification')", "Verification", show=False, id="review.tab_verification"
        ),
        Binding("5", "tab('raw')", "Report", show=False, id="review.tab_raw"),
        Binding("6", "tab('tampering')", "Tampering", show=False, id="review.tab_tampering"),
        Binding("t", "acknowledge", "Acknowledge tampering", id="review.acknowledge"),
        Binding("R", "rerun_agent", "Re-run", id="review.rerun_agent"),
        Binding("escape", "back", "Back", id="review.back"),
    ]

    class ReportLoaded(Message):
        def __init__(self, loaded: Loaded) -> None:
            super().__init__()
            self.loaded = loaded

    class SidesLoaded(Message):
        def __init__(
            self, key: str, left: str, right: str, titles: tuple[str, str], lexer: str = "diff"
        ) -> None:
            super().__init__()
            self.key, self.left, self.right, self.titles = key, left, right, titles
            self.lexer = lexer

    class BranchDiffLoaded(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    summary = getters.query_one("#summary", Static)
    conflicts = getters.query_one("#review-conflicts", ConflictsTable)
    branches = getters.query_one(BranchesTable)
    tabs = getters.query_one(TabbedContent)

    def __init__(self, session: RunSession) -> None:
        super().__init__(session, name="review")
        self.loaded: Loaded | None = None
        self.report_version = -1
        self.sides_key = ""
        self.tampering_tab = False
        self.verification_log = ""

    def compose(self) -> ComposeResult:
        yield Static(Text(" review  loading…"), id="summary")
        with TabbedContent(initial="findings"):
            with TabPane("1 findings", id="findings"):
                yield ReviewFindings()
                yield VerticalScroll(Static(id="finding-view"), id="finding-detail")
            with TabPane("2 conflicts", id="conflicts"):
                yield ConflictsTable(id="review-conflicts")
                with Horizontal(id="sides"):
                    yield VerticalScroll(Static(id="left-side"), classes="side", id="left-scroll")
                    yield VerticalScroll(Static(id="right-side"), classes="side", id="right-scroll")
            with TabPane("3 branches", id="branches"):
                yield BranchesTable()
                yield VerticalScroll(
                    Static(Text("select a branch and press d", style="dim"), id="branch-diff-view"),
                    id="branch-diff",
                )
            with TabPane("4 verification", id="verification"), VerticalScroll():
                yield Static(id="verification-view")
                yield Static(id="verification-log")
            with TabPane("5 report", id="raw"), VerticalScroll():
                yield Static(id="raw-view")
        yield CorralFooter()

    def on_mount(self) -> None:
        super().on_mount()
        self.findings.focus()

    # -- drawing -------------------------------------------------------------------------------

    def redraw(self, feed: RunFeed, now: float, *, since: int, ages: bool) -> None:
        state = feed.state
        if feed.review_version > self.report_version:
            self.report_version = feed.review_version
            self.load_report()
        if feed.review_version > since or feed.run_version > since or since < 0:
            self.show_summary(
                summary_text(
                    state,
                    self.loaded,
                    read_only=not self.session.may_review,
                    acting=self.session.operator.label,
                )
            )
            self.show_tampering(state)
            self.branches.sync(branch_rows(state), complete=True)
            self.query_one("#verification-view", Static).update(verification_text(state))
            verified = state.merge.verification
            if verified is not None and verified.log_path != self.verification_log:
                self.verification_log = verified.log_path
                self.load_verification_log(verified.log_path)
        if feed.conflicts_version > since or since < 0:
            self.sync_conflicts(feed)

    def show_tampering(self, state: RunState) -> None:
        """The tampering tab exists only for a run that has some; it opens once when it appears."""
        if not state.tampering:
            return
        if self.tampering_tab:
            self.query_one("#tampering-view", Static).update(tampering_text(state.tampering))
            return
        self.tampering_tab = True
        self.add_tampering_tab(tampering_text(state.tampering))

    @work(group="tampering-tab")
    async def add_tampering_tab(self, text: Text) -> None:
        view = VerticalScroll(Static(text, id="tampering-view"))
        await self.tabs.add_pane(TabPane("6 tampering", view, id="tampering"))
        self.tabs.active = "tampering"
        view.focus()  # else focus falls to the next pane's scroll view, and its tab opens

    def severity_conflicts(self) -> list[SeverityConflict]:
        return severity_conflicts(self.loaded.raw if self.loaded else None)

    def sync_conflicts(self, feed: RunFeed) -> None:
        """Merge conflicts from the log, then findings the agents rated differently."""
        rows = list(self.conflicts.table_rows(feed))
        for conflict in self.severity_conflicts():
            rated = " ⇄ ".join(f"{agent}: {level}" for agent, level in conflict.severities.items())
            rows.append(
                (
                    conflict.key,
                    {
                        "kind": Text("◆ severity", style="magenta bold"),
                        "agents": Text(rated, style="bold"),
                        "files": Text(conflict.location),
                    },
                )
            )
        self.conflicts.sync(rows, complete=True)
        self.conflicts.border_title = f"{len(rows)} conflicts · n/N walk them"

    @work(group="report", exclusive=True, thread=True)
    def load_report(self) -> None:
        feed = self.session.feed
        report = feed.state.report if feed else None
        loaded = read_report(report.path) if report else Loaded([], ["no report yet"])
        self.post_message(self.ReportLoaded(loaded))

    def on_review_screen_report_loaded(self, message: ReportLoaded) -> None:
        self.loaded = message.loaded
        if self.session.feed is not None:
            self.sync_conflicts(self.session.feed)
        self.detail_key = ""
        self.regroup()
        self.show_finding(self.findings.current_key)
        raw = message.loaded.raw
        body = (
            json.dumps(raw, indent=2)[:200_000]
            if raw is not None
            else "; ".join(message.loaded.problems)
        )
        self.query_one("#raw-view", Static).update(
            Text(inert(body, limit=10**9).replace(" ⏎ ", "\n"))
        )
        feed = self.session.feed
        if feed is not None:
            self.show_summary(
                summary_text(
                    feed.state,
                    self.loaded,
                    read_only=not self.session.may_review,
                    acting=self.session.operator.label,
                )
            )
        self.refresh_bindings()

    def show_summary(self, text: Text) -> None:
        self.summary.update(look.monochrome(text) if self.app.no_color else text)

    # -- which keys are offered (the decisions themselves: review_decide.py) -----------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("approve", "reject", "acknowledge"):
            return self.decision_allowed(action)
        if action == "suppress":
            return self.decision_allowed("reject")  # while a decision can be taken
        if action == "rerun_agent":
            return self.rerun_allowed()
        if action == "tab" and parameters == ("tampering",):
            return True if self.tampering_tab else None
        if action == "next_conflict":
            return True if self.conflicts.row_count else None
        return True

    def left_out_highlighted(self) -> str | None:
        key = self.branches.current_key if self.tabs.active == "branches" else None
        return key.removeprefix("left:") if key and key.startswith("left:") else None

    # -- walking -------------------------------------------------------------------------------

    def action_back(self) -> None:
        self.dismiss(None)

    def action_tab(self, tab: str) -> None:
        if tab == "tampering" and not self.tampering_tab:
            return
        self.tabs.active = tab
        target = {
            "findings": self.findings,
            "conflicts": self.conflicts,
            "branches": self.branches,
        }.get(tab)
        if target is not None:
            target.focus()

    def action_next_conflict(self, step: int) -> None:
        keys = list(self.conflicts.cells)
        if not keys:
            return
        shown = self.tabs.active == "conflicts" and self.sides_key == self.conflicts.current_key
        self.action_tab("conflicts")
        current = self.conflicts.current_key
        index = keys.index(current) if current in keys else -1
        # from another tab, n shows the conflict under the cursor; then it walks on
        index = (index + step) % len(keys) if shown else max(index, 0)
        self.conflicts.select_key(keys[index])
        self.show_sides(keys[index])

    def on_data_table_row_highlighted(self, event: KeyTable.RowHighlighted) -> None:
        if event.data_table is self.findings:
            self.show_finding(event.row_key.value)
        if event.data_table is self.conflicts and event.row_key.value is not None:
            self.show_sides(str(event.row_key.value))
        if event.data_table is self.branches and event.row_key.value is not None:
            self.load_branch_diff(str(event.row_key.value))
        self.update_bindings()

    def on_data_table_row_selected(self, event: KeyTable.RowSelected) -> None:
        key = event.row_key.value
        if event.data_table is self.findings and key is not None and key.startswith("group:"):
            self.toggle_group(key)

    def action_diff(self) -> None:
        if self.tabs.active == "branches":
            self.load_branch_diff(self.branches.current_key or "")
        elif self.conflicts.current_key:
            self.action_tab("conflicts")
            self.show_sides(self.conflicts.current_key)

    def show_sides(self, key: str) -> None:
        if key != self.sides_key:
            self.sides_key = key
            self.load_sides(key)

    def _branch_of(self, agent: str) -> str:
        feed = self.session.feed
        if feed is None:
            return ""
        state = feed.state
        if agent == "@base":
            return state.base_ref
        for merged in state.merge.merged:
            if merged.agent == agent:
                return merged.branch
        for left in state.merge.left_out:
            if left.agent == agent:
                return left.branch
        found = state.agents.get(agent)
        return found.current.branch if found is not None and found.current is not None else ""

    @work(group="sides", exclusive=True, thread=True)
    def load_sides(self, key: str) -> None:
        if key.startswith("severity:"):
            self.severity_sides(key)
            return
        feed = self.session.feed
        conflict = feed.state.conflicts.get(key) if feed else None
        if feed is None or conflict is None or len(conflict.agents) < 2:
            return
        paths = [f.path for f in conflict.files]
        state = feed.state
        left, right = conflict.agents[0], conflict.agents[1]
        ours, theirs = self._branch_of(left), self._branch_of(right)
        hunks = conflict_sides(state.repo, ours, theirs, paths)
        if hunks is not None:  # the real conflicting hunks, with their markers
            titles = (f"{left} · conflicting hunks", f"{right} · conflicting hunks")
            self.post_message(self.SidesLoaded(key, *hunks, titles, lexer="text"))
            return
        self.post_message(
            self.SidesLoaded(
                key,
                ops.branch_diff(state.repo, state.snapshot, self._branch_of(left), paths),
                ops.branch_diff(state.repo, state.snapshot, self._branch_of(right), paths),
                (left, right),
            )
        )

    def severity_sides(self, key: str) -> None:
        """The agents split by their rating: the most severe one on the left, the others on the
        right; each side says who rated it what, then the findings in conflict."""
        found = [c for c in self.severity_conflicts() if c.key == key]
        if not found or self.loaded is None:
            return
        conflict = found[0]
        ratings = conflict.by_rating()
        if conflict.findings:
            at = [f for f in self.loaded.findings if f.id in conflict.findings]
        else:  # a report without finding ids: what is at the location
            where = conflict.location.split(":", 1)[-1]
            at = [f for f in self.loaded.findings if where and f.location == where]

        def side(groups: list[tuple[str, list[str]]]) -> str:
            lines = [f"{name} rated it {rating}" for rating, names in groups for name in names]
            lines += [f"  {f.severity}: {f.title} ({f.location})" for f in at]
            return "\n".join([*lines, "", conflict.reason])

        def title(groups: list[tuple[str, list[str]]]) -> str:
            return " · ".join(f"{rating}: {', '.join(names)}" for rating, names in groups) or "-"

        left, right = ratings[:1], ratings[1:]
        self.post_message(
            self.SidesLoaded(key, side(left), side(right), (title(left), title(right)))
        )

    def on_review_screen_sides_loaded(self, message: SidesLoaded) -> None:
        if message.key != self.sides_key:
            return  # the person has moved on: a slower load must not overwrite the newer one
        for side, text, title in (
            ("left", message.left, message.titles[0]),
            ("right", message.right, message.titles[1]),
        ):
            self.query_one(
                f"#{side}-scroll", VerticalScroll
            ).border_title = f"{'◀' if side == 'left' else '▶'} {inert(title, limit=40)}"
            self.query_one(f"#{side}-side", Static).update(
                Syntax(
                    text,
                    message.lexer,
                    theme="ansi_dark",
                    word_wrap=True,
                    background_color="default",
                )
            )

    class LogLoaded(Message):
        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    @work(group="verification-log", exclusive=True, thread=True)
    def load_verification_log(self, path: str) -> None:
        self.post_message(self.LogLoaded(ops.log_tail(path)))

    def on_review_screen_log_loaded(self, message: LogLoaded) -> None:
        self.query_one("#verification-log", Static).update(Text(message.text))

    @work(group="branch-diff", exclusive=True, thread=True)
    def load_branch_diff(self, key: str) -> None:
        feed = self.session.feed
        if feed is None or ":" not in key:
            return
        agent = key.split(":", 1)[1]
        self.post_message(
            self.BranchDiffLoaded(
                ops.branch_diff(feed.state.repo, feed.state.snapshot, self._branch_of(agent))
            )
        )

    def on_review_screen_branch_diff_loaded(self, message: BranchDiffLoaded) -> None:
        self.query_one("#branch-diff-view", Static).update(
            Syntax(
                message.text, "diff", theme="ansi_dark", word_wrap=False, background_color="default"
            )
        )

    def action_filter(self) -> None:
        loaded = self.loaded

        def apply(text: str | None) -> None:
            if text is None or loaded is None:
                return
            self.findings.filter_text = text
            self.regroup()

        self.action_tab("findings")
        self.app.push_screen(
            AskScreen(
                "/ filter findings",
                "severity, agent, file or words (empty: all)",
                value=self.findings.filter_text,
            ),
            apply,
        )
