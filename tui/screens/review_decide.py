"""The review screen's decisions: `a` approve, `r` reject and `t` acknowledge tampering, each
confirmed, then taken through the operator API (core/operator/decisions.py, the same path as
`corral review`); `R` re-runs the highlighted left-out agent on the integration branch (a new
run, core/operator/actions.py rerun, the same path as `corral rerun`). When a key is offered
is core's rule (core/operator/policy.py); the reviewer is the console's operator, read once when
it started."""

from __future__ import annotations

import asyncio

from rich.text import Text
from textual import work

from corral.core.findings.display import Loaded, counts_by_severity
from corral.core.log.state import RunState
from corral.core.operator import actions, decisions, policy
from corral.core.operator.errors import OperatorError
from corral.tui import ops
from corral.tui.screens.base import RunScreen
from corral.tui.screens.dialogs import AskScreen, ConfirmScreen
from corral.tui.text import inert
from corral.tui.widgets.review_parts import tampering_text


class ReviewDecisions(RunScreen):
    """The decision half of the review screen (review.py draws the report)."""

    loaded: Loaded | None = None

    def palette_target(self, action: str) -> str:
        named = {"approve", "reject", "acknowledge", "suppress"}
        if action == "rerun_agent":
            agent = self.left_out_highlighted()
            return f"{inert(agent, limit=60)} on the integration branch" if agent else ""
        return f"run {self.session.run_id}" if action in named else ""

    def left_out_highlighted(self) -> str | None:
        """The agent of the highlighted left-out branch (review.py knows the table)."""
        return None

    def rerun_allowed(self) -> bool | None:
        """check_action for `R`: offered on a left-out agent core would re-run, else dimmed."""
        agent = self.left_out_highlighted()
        feed = self.session.feed
        if self.session.read_only or agent is None or feed is None:
            return None
        return None if policy.rerun_blocker(feed.state, agent) else True

    @work(group="decisions", exclusive=True)
    async def action_rerun_agent(self) -> None:
        agent = self.left_out_highlighted()
        if agent is None or self.rerun_allowed() is not True:
            return
        run = self.session.run_id
        body = Text(
            f"A new run of {inert(agent, limit=60)} alone, as run {run} ran it, starting from "
            f"run {run}'s integration commit (what approving it lands), so it sees the work "
            f"that merged. Approve run {run} first, then the new run lands on top."
        )
        title = f"Re-run {inert(agent, limit=60)} on the integration branch?"
        if not await self.app.push_screen_wait(
            ConfirmScreen(title, body, yes="re-run", danger=False)
        ):
            return
        try:
            started = await asyncio.to_thread(
                actions.rerun, self.session.rundir, [agent], by=self.session.operator
            )
        except OperatorError as exc:
            self.notify(inert(str(exc)), title="re-run refused", severity="error", timeout=10)
            return
        self.notify(
            f"run {started.run_id} re-runs {inert(agent, limit=60)} in the background",
            title="re-run",
        )

    """The report as read for display, with the sha256 of exactly the bytes shown."""

    def pending_tampering(self) -> bool:
        feed = self.session.feed
        return feed is not None and bool(feed.state.unacknowledged_tampering())

    def shown_sha256(self) -> str | None:
        return self.loaded.sha256 if self.loaded is not None else None

    def decidable(self) -> str:
        """Why a decision cannot be taken now ('' when it can)."""
        feed = self.session.feed
        if not self.session.may_review:
            return "read-only"
        if feed is None:
            return "no report yet"
        return policy.decision_blocker(feed.state, self.shown_sha256())

    def decision_allowed(self, action: str) -> bool | None:
        """check_action for the decision keys: True offered, None dimmed, False hidden."""
        feed = self.session.feed
        if action == "reject":
            return None if self.decidable() else True
        if action == "approve":
            if not self.session.may_review or feed is None:
                return None
            return None if policy.approve_blocker(feed.state, self.shown_sha256()) else True
        # acknowledge
        if not self.pending_tampering() or feed is None:
            return False  # nothing to acknowledge in this run: the key has no place here
        return (
            None if not self.session.may_review or policy.acknowledge_blocker(feed.state) else True
        )

    def landing(self, diffstat: str = "") -> Text:
        feed = self.session.feed
        assert feed is not None
        assert self.loaded is not None
        state = feed.state
        merged = [m.agent for m in state.merge.merged]
        left = [f"{b.agent} ({b.reason})" for b in state.merge.left_out]
        text = Text()
        target = state.merge.integration_commit
        if target and target != state.snapshot:
            text.append(
                f"Lands on {inert(state.base_ref)}: moves it {state.snapshot[:12]} → a merge of "
                f"{target[:12]} that names you as the approver\n",
                style="bold",
            )
            text.append(
                f"  checkouts of {inert(state.base_ref)} are updated (refused if they have "
                "uncommitted changes to the files it changes)\n"
            )
            text.append(
                f"  {len(merged)} merged branch(es): {inert(', '.join(merged), limit=300) or '-'}\n"
            )
        else:
            text.append(
                f"Publishes the report; nothing lands on {inert(state.base_ref)}.\n", style="bold"
            )
        text.append(f"  {len(left)} left out: {inert('; '.join(left), limit=300) or '-'}\n")
        if diffstat:
            text.append(f"what lands:\n{diffstat}\n", style="dim")
        text += warnings(state)
        counts = counts_by_severity(self.loaded.findings)
        text.append(
            f"  {len(self.loaded.findings)} findings ({', '.join(f'{k} {v}' for k, v in counts.items()) or 'none'}), "
            f"{len(state.conflicts)} conflicts\n"
        )
        text.append(f"  report sha256 {self.loaded.sha256[:16]}", style="dim")
        return text

    @work(group="decisions", exclusive=True)
    async def action_approve(self) -> None:
        if self.decidable() or self.loaded is None:
            return
        if self.pending_tampering():
            self.notify("acknowledge the tampering first (t)", title="approve waits", timeout=6)
            return
        shown, operator = self.loaded.sha256, self.session.operator
        title = f"Approve run {self.session.run_id} as {operator.reviewer}?"
        state = self.session.feed.state if self.session.feed is not None else None
        stat = ""
        if state is not None and state.merge.integration_commit:
            stat = await asyncio.to_thread(
                ops.diffstat, state.repo, state.snapshot, state.merge.integration_commit
            )
        body = self.landing(stat)
        if not await self.app.push_screen_wait(ConfirmScreen(title, body, yes="approve")):
            return
        try:
            result = await asyncio.to_thread(
                decisions.approve, self.session.rundir, operator, shown
            )
        except OperatorError as exc:
            self.notify(inert(str(exc)), title="approve refused", severity="error", timeout=10)
        else:
            self.notify(inert(result.message), title="approved")

    @work(group="decisions", exclusive=True)
    async def action_reject(self) -> None:
        if self.decidable() or self.loaded is None:
            return
        shown, operator = self.loaded.sha256, self.session.operator
        reason = await self.app.push_screen_wait(
            AskScreen(
                f"Reject run {self.session.run_id} as {operator.reviewer}?",
                "Reason (required; nothing lands):",
                required="a reason is required",
            )
        )
        if not reason:
            return
        try:
            result = await asyncio.to_thread(
                decisions.reject, self.session.rundir, operator, reason, shown
            )
        except OperatorError as exc:
            self.notify(inert(str(exc)), title="reject refused", severity="error", timeout=10)
        else:
            self.notify(inert(result.message), title="rejected")

    @work(group="decisions", exclusive=True)
    async def action_acknowledge(self) -> None:
        feed = self.session.feed
        pending = feed.state.unacknowledged_tampering() if feed is not None else []
        if feed is None or not pending or self.decision_allowed("acknowledge") is not True:
            return
        operator = self.session.operator
        body = tampering_text(pending, footnote=False)
        body.append(
            "\nAcknowledging records that you read these reports; approve then no longer "
            "waits for them. Nothing in the repository changes.",
            style="bold",
        )
        title = (
            f"Acknowledge {len(pending)} tampering report(s) of run {self.session.run_id} "
            f"as {operator.reviewer}?"
        )
        if not await self.app.push_screen_wait(ConfirmScreen(title, body, yes="acknowledge")):
            return
        rundir, through = self.session.rundir, pending[-1].seq
        try:
            message = await asyncio.to_thread(
                decisions.acknowledge_tampering, rundir, operator, through
            )
        except OperatorError as exc:
            self.notify(inert(str(exc)), title="acknowledge refused", severity="error", timeout=10)
        else:
            self.notify(inert(message), title="acknowledged")


def warnings(state: RunState) -> Text:
    """What a person approving should know went wrong in the run: agents that used up their
    retries, locks someone broke, tampering (acknowledged by now, or approve would wait)."""
    text = Text()
    dead = [a for a in state.agents.values() if a.state == "dead_lettered"]
    if dead:
        named = "; ".join(f"{a.id} ({a.reason or 'no reason recorded'})" for a in dead)
        text.append(f"  ✘ {len(dead)} dead-lettered: {inert(named, limit=300)}\n", style="red")
    broken = [lock for lock in state.locks.values() if lock.last_event.startswith("broken")]
    if broken:
        named = "; ".join(f"{lock.name} ({lock.last_event})" for lock in broken)
        text.append(
            f"  ⚠ {len(broken)} lock(s) broken: {inert(named, limit=300)}\n", style="yellow"
        )
    if state.tampering:
        by = sorted({t.acknowledged_by or "nobody yet" for t in state.tampering})
        text.append(
            f"  ⚠ {len(state.tampering)} tampering report(s), acknowledged by "
            f"{inert(', '.join(by), limit=120)}\n",
            style="red bold",
        )
    return text
