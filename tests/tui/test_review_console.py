"""The review screen deciding for real: core.review (the code path of `corral review`) on a real
repository; the event log records the decision with the reviewer and the report hash."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from textual.containers import VerticalScroll

from corral.core.log import events as ev
from corral.core.review.gate import reviewer_identity
from corral.core.runs.listing import summarize_runs
from corral.core.runs.rundir import RunDir, list_runs, runs_root
from corral.tui.app import CorralApp
from corral.tui.screens.dialogs import AskScreen, ConfirmScreen
from corral.tui.screens.review import ReviewScreen
from corral.tui.screens.runs import run_row
from tests.conftest import git
from tests.core.engine_helpers import agent_block, corral, events_of, only_run, write_plan
from tests.core.engine_helpers import wait_for_event as wait_for_log_event
from tests.tui.conftest import screen_text, until
from tests.tui.synthetic import dead_engine, review_run_events, write_events, write_report


def branch(repo: Path, name: str, text: str) -> str:
    git(repo, "switch", "-q", "-c", name, "main")
    (repo / "src" / "app.py").write_text(text)
    git(repo, "commit", "-qam", name)
    commit = git(repo, "rev-parse", "HEAD")
    git(repo, "switch", "-q", "main")
    return commit


@pytest.fixture
def reviewable(repo: Path) -> RunDir:
    """A finished run: api-auth merged into the integration commit, api-billing left out."""
    snapshot = git(repo, "rev-parse", "main")
    integration = branch(repo, "corral/r1/api-auth/1", "print('auth')\n")
    branch(repo, "corral/r1/api-billing/1", "print('billing')\n")
    rundir = RunDir(runs_root(repo / ".git") / "20231114-221320-abcdef")
    rundir.create()
    rundir.plan.write_text("[[agent]]\nid='a'\ncommand=['true']\n")
    report = write_report(rundir.path / "report.json")
    write_events(rundir, review_run_events(repo, report, dead_engine(), snapshot, integration))
    return rundir


def review_of(app: CorralApp) -> ReviewScreen | None:
    screen = app.screen
    return screen if isinstance(screen, ReviewScreen) and screen.loaded is not None else None


def test_walk_conflicts_then_reject_with_a_reason(repo: Path, reviewable: RunDir) -> None:
    before = git(repo, "rev-parse", "main")

    async def scenario() -> None:
        app = CorralApp(repo, reviewable.run_id)
        async with app.run_test(size=(160, 48)) as pilot:
            await until(pilot, lambda: review_of(app), what="a finished run to open in review")
            review = review_of(app)
            assert review is not None
            assert "critical 1" in screen_text(pilot)
            await pilot.press("n")
            assert review.tabs.active == "conflicts"
            await until(
                pilot,
                lambda: ">>>>>>> corral/r1/api-billing/1" in screen_text(pilot),
                what="the conflicting hunks, with git's markers",
            )
            text = screen_text(pilot)
            assert "<<<<<<< corral/r1/api-auth/1" in text
            assert "── src/app.py (content)" in text
            assert "print('auth')" in text
            assert "print('billing')" in text
            assert review.query_one("#left-scroll").border_title == "◀ api-auth · conflicting hunks"
            await pilot.press("n")
            assert review.conflicts.current_key == "severity:file:src/session.py:7 CF-2"
            await until(
                pilot, lambda: "sec-scan rated it high" in screen_text(pilot), what="ratings"
            )
            assert "lint rated it low" in screen_text(pilot)
            await pilot.press("N")
            assert review.conflicts.current_key == "api-auth+api-billing"

            await pilot.press("r")
            await until(pilot, lambda: isinstance(app.screen, AskScreen), what="the reason prompt")
            await pilot.press("enter")
            assert isinstance(app.screen, AskScreen), "an empty reason is refused"
            await pilot.press(*"billing lost", "enter")
            await until(
                pilot, lambda: "rejected by" in screen_text(pilot), what="the decision shown"
            )
            active = {b.binding.id: b.enabled for b in app.screen.active_bindings.values()}
            assert active["review.approve"] is False
            assert active["review.reject"] is False

    asyncio.run(scenario())
    last = events_of(reviewable)[-1]
    assert isinstance(last, ev.ReportRejected)
    assert (last.by, last.reason) == (reviewer_identity(), "billing lost")
    assert git(repo, "rev-parse", "main") == before, "a rejection lands nothing"


def test_the_side_by_side_of_a_severity_conflict_splits_the_agents_by_rating(
    repo: Path, reviewable: RunDir
) -> None:
    """Three agents, two of them agreeing: the two stand on one side, not split by count."""
    report = json.loads((reviewable.path / "report.json").read_text())
    report["finding_conflicts"][0]["severities"] = {
        "deep-scan": "high",
        "lint": "low",
        "sec-scan": "high",
    }
    (reviewable.path / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    events = review_run_events(
        repo,
        reviewable.path / "report.json",
        dead_engine(),
        git(repo, "rev-parse", "main"),
        git(repo, "rev-parse", "corral/r1/api-auth/1"),
    )
    reviewable.events.unlink()
    write_events(reviewable, events)

    def title(app: CorralApp, side: str) -> str:
        return str(app.screen.query_one(f"#{side}-scroll", VerticalScroll).border_title)

    async def scenario() -> None:
        app = CorralApp(repo, reviewable.run_id)
        async with app.run_test(size=(160, 48)) as pilot:
            await until(pilot, lambda: review_of(app), what="a finished run to open in review")
            await pilot.press("n", "n")
            await until(pilot, lambda: "lint rated it low" in screen_text(pilot), what="ratings")
            assert title(app, "left") == "◀ high: deep-scan, sec-scan"
            assert title(app, "right") == "▶ low: lint"
            text = screen_text(pilot)
            assert "deep-scan rated it high" in text
            assert "sec-scan rated it high" in text

    asyncio.run(scenario())


def test_approve_names_what_lands_and_lands_it(repo: Path, reviewable: RunDir) -> None:
    before = git(repo, "rev-parse", "main")
    integration = git(repo, "rev-parse", "corral/r1/api-auth/1")

    async def scenario() -> None:
        app = CorralApp(repo, reviewable.run_id)
        async with app.run_test(size=(120, 36)) as pilot:
            await until(pilot, lambda: review_of(app), what="the review")
            await pilot.press("a")
            await until(
                pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation"
            )
            confirm = app.screen
            assert isinstance(confirm, ConfirmScreen)
            body = str(confirm.body)
            assert f"moves it {before[:12]} → a merge of {integration[:12]}" in body
            assert "1 merged branch(es): api-auth" in body
            assert "1 left out: api-billing" in body
            await pilot.press("y")
            await until(
                pilot, lambda: "approved by" in screen_text(pilot), what="the decision shown"
            )

    asyncio.run(scenario())
    last = events_of(reviewable)[-1]
    assert isinstance(last, ev.ReportApproved)
    assert (last.by, last.landed) == (reviewer_identity(), git(repo, "rev-parse", "main"))
    assert git(repo, "status", "--porcelain") == "", "the console's approve updates the checkout"
    assert git(repo, "rev-parse", "main^1", "main^2").split() == [before, integration]
    approver = git(repo, "log", "-1", "--format=%(trailers:key=Approved-by,valueonly)", "main")
    assert approver == reviewer_identity()


def test_approve_is_dimmed_when_the_report_changed_on_disk(repo: Path, reviewable: RunDir) -> None:
    (reviewable.path / "report.json").write_text('{"findings": []}\n')

    async def scenario() -> None:
        app = CorralApp(repo, reviewable.run_id)
        async with app.run_test(size=(120, 36)) as pilot:
            await until(pilot, lambda: review_of(app), what="the review")
            assert "CHANGED ON DISK" in screen_text(pilot)
            active = {b.binding.id: b.enabled for b in app.screen.active_bindings.values()}
            assert active["review.approve"] is False
            await pilot.press("a")
            await pilot.pause(0.2)
            assert isinstance(app.screen, ReviewScreen)

    asyncio.run(scenario())
    assert not isinstance(events_of(reviewable)[-1], ev.ReportApproved | ev.ReportRejected)


@pytest.mark.slow
def test_reject_a_report_the_engine_wrote(repo: Path, tmp_path: Path) -> None:
    """End to end once the engine writes reports: run, finish, open in review, reject."""
    body = agent_block("one", ["sh", "-c", "sleep 1; echo one > one.txt"])
    plan = write_plan(tmp_path, body, header="min_success = 0\n")
    assert corral(repo, "run", str(plan), "--detach").returncode == 0
    rundir = only_run(repo)
    wait_for_log_event(
        rundir, lambda e: isinstance(e, ev.EngineStopped), timeout=60, what="the end"
    )
    if not any(isinstance(e, ev.ReportWritten) for e in events_of(rundir)):
        pytest.skip("the engine does not write report.json yet")

    async def scenario() -> None:
        app = CorralApp(repo, rundir.run_id)
        async with app.run_test(size=(120, 36)) as pilot:
            await until(pilot, lambda: review_of(app), what="the review")
            await pilot.press("r")
            await until(pilot, lambda: isinstance(app.screen, AskScreen), what="the reason prompt")
            await pilot.press(*"not now", "enter")
            await until(pilot, lambda: "rejected by" in screen_text(pilot), what="the decision")

    asyncio.run(scenario())
    assert isinstance(events_of(rundir)[-1], ev.ReportRejected)


PLANTED = ev.RepoTampered(
    live=["api-auth#1", "api-billing#1"],
    seen="attempt_end",
    changes=[
        ev.RepoChange(
            kind="config",
            name="config",
            old="a" * 64 + " 644",
            new="b" * 64 + " 644",
            restored=True,
            kept="/runs/r1/tampering/1/config",
            detail=["+ [core] fsmonitor = /tmp/planted.sh"],
        ),
        ev.RepoChange(kind="ref", name="refs/heads/main", old="c" * 40, new="d" * 40),
    ],
)


def test_tampering_dims_approve_until_t_acknowledges_it(repo: Path, reviewable: RunDir) -> None:
    write_events(reviewable, [PLANTED])

    def enabled(app: CorralApp) -> dict[str, bool]:
        return {b.binding.id or "": b.enabled for b in app.screen.active_bindings.values()}

    async def scenario() -> None:
        app = CorralApp(repo, reviewable.run_id)
        async with app.run_test(size=(120, 36)) as pilot:
            await until(pilot, lambda: review_of(app), what="the review")
            review = review_of(app)
            assert review is not None
            await until(pilot, lambda: review.tabs.active == "tampering", what="its tab opened")
            await until(pilot, lambda: "NOT ACKNOWLEDGED" in screen_text(pilot), what="its text")
            text = screen_text(pilot)
            assert "REPOSITORY TAMPERED" in text
            assert "while api-auth#1, api-billing#1 ran" in text
            assert "+ [core] fsmonitor = /tmp/planted.sh" in text
            assert "refs/heads/main moved cccccccccccc → dddddddddddd" in text
            assert enabled(app)["review.approve"] is False
            await pilot.press("a")
            await pilot.pause(0.2)
            assert isinstance(app.screen, ReviewScreen), "approve waits for the acknowledgement"

            await pilot.press("t")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the question")
            confirm = app.screen
            assert isinstance(confirm, ConfirmScreen)
            assert "Acknowledge 1 tampering report(s)" in confirm.title_text
            assert "fsmonitor" in str(confirm.body)
            await pilot.press("y")
            await until(
                pilot, lambda: "tampering acknowledged" in screen_text(pilot), what="the record"
            )
            assert enabled(app)["review.approve"] is True
            assert (
                "review.acknowledge" not in enabled(app) or not enabled(app)["review.acknowledge"]
            )

    asyncio.run(scenario())
    last = events_of(reviewable)[-1]
    assert isinstance(last, ev.TamperingAcknowledged)
    assert (last.by, last.through_seq) == (reviewer_identity(), events_of(reviewable)[-2].seq)


def test_shift_r_reruns_a_left_out_agent_and_is_dimmed_on_a_merged_one(
    repo: Path, reviewable: RunDir
) -> None:
    reviewable.plan.write_text(
        agent_block("api-auth", ["true"])
        + agent_block("api-billing", ["sh", "-c", "echo billing > billing.txt"])
    )
    integration = git(repo, "rev-parse", "corral/r1/api-auth/1")

    async def scenario() -> None:
        app = CorralApp(repo, reviewable.run_id)
        async with app.run_test(size=(160, 48)) as pilot:
            await until(pilot, lambda: review_of(app), what="the review")
            review = review_of(app)
            assert review is not None

            def offered() -> bool:
                active = {b.binding.id: b.enabled for b in app.screen.active_bindings.values()}
                return active["review.rerun_agent"]

            await pilot.press("3")
            await until(
                pilot,
                lambda: review.branches.current_key == "merged:api-auth",
                what="the merged branch highlighted",
            )
            assert not offered(), "a merged agent has nothing to re-run"
            await pilot.press("R")
            await pilot.pause(0.1)
            assert app.screen is review, "nothing asked"
            await pilot.press("down")
            await until(
                pilot,
                lambda: review.branches.current_key == "left:api-billing" and offered(),
                what="R offered on the left-out branch",
            )
            assert "Re-run" in screen_text(pilot), "in the footer"
            help_rows = app.help_rows(app.screen_stack[-1])
            assert ("R", "Re-run", "review.rerun_agent", True) in help_rows, "and in the help"
            titles = [command.title for command in app.get_system_commands(app.screen_stack[-1])]
            assert "Re-run api-billing on the integration branch" in titles
            await pilot.press("R")
            await until(
                pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation"
            )
            await pilot.press("y")
            await until(
                pilot,
                lambda: any(
                    "re-runs api-billing in the background" in note.message
                    for note in app._notifications
                ),
                what="the new run named",
            )

    asyncio.run(scenario())
    (rerun,) = [run for run in list_runs(repo / ".git") if run.run_id != reviewable.run_id]
    started = wait_for_log_event(
        rerun, lambda e: isinstance(e, ev.RunStarted), what="the re-run's start"
    )
    assert isinstance(started, ev.RunStarted)
    assert started.snapshot == integration
    assert started.rerun_of is not None
    assert (started.rerun_of.run, started.rerun_of.agents) == (reviewable.run_id, ["api-billing"])
    wait_for_log_event(rerun, lambda e: isinstance(e, ev.EngineStopped), timeout=60, what="its end")
    (listed,) = [run for run in summarize_runs(repo / ".git") if run.run_id == rerun.run_id]
    cell = run_row(listed, 0.0)["agents"]
    assert f"re-runs api-billing of {reviewable.run_id}" in str(cell), "the runs list says so"
