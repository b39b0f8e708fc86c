"""The review's findings: the detail pane with the code that lands, the editor at the line,
grouping and folding. A real repository, a real integration commit, real git reads."""

from __future__ import annotations

import asyncio
import copy
import json
import os
import shlex
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from corral.core.findings.merge import merge_findings
from corral.core.findings.schema import AgentFindings, Finding
from corral.core.log import events as ev
from corral.core.log import read_log
from corral.core.log.state import fold
from corral.core.report.model import build_report
from corral.core.report.render import write_report
from corral.core.review.gate import reviewer_identity
from corral.core.runs.rundir import RunDir, runs_root
from corral.tui.app import CorralApp
from corral.tui.hunks import parse_hunks
from corral.tui.screens.dialogs import AskScreen, ConfirmScreen
from corral.tui.screens.review import ReviewScreen
from tests.conftest import git
from tests.core.engine_helpers import events_of
from tests.tmux import Tmux
from tests.tui.conftest import screen_text, until
from tests.tui.synthetic import REPORT, dead_engine, review_run_events, write_events

DB_LINES = [f"row_{n} = {n}" for n in range(1, 61)]
DB_LINES[41] = "sql = 'SELECT * FROM users WHERE id = ' + request.args['id']"


@pytest.fixture
def audited(repo: Path) -> RunDir:
    """A finished run whose integration commit holds src/db.py, the critical finding's file."""
    snapshot = git(repo, "rev-parse", "main")
    git(repo, "switch", "-q", "-c", "corral/r1/api-auth/1", "main")
    (repo / "src" / "db.py").write_text("\n".join(DB_LINES) + "\n")
    git(repo, "add", "src/db.py")
    git(repo, "commit", "-qm", "db")
    integration = git(repo, "rev-parse", "HEAD")
    git(repo, "switch", "-q", "main")
    report: dict[str, Any] = copy.deepcopy(REPORT)
    first = report["findings"][0]
    first["detail"] = "The id goes into the query string unescaped.\nAny user can read any row."
    first["recommendation"] = "Pass the id as a bound parameter."
    first["tools"] = ["semgrep"]
    rundir = RunDir(runs_root(repo / ".git") / "20231114-221320-abcdef")
    rundir.create()
    rundir.plan.write_text("[[agent]]\nid='a'\ncommand=['true']\n")
    path = rundir.path / "report.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    write_events(rundir, review_run_events(repo, path, dead_engine(), snapshot, integration))
    return rundir


def review_of(app: CorralApp) -> ReviewScreen | None:
    screen = app.screen
    return screen if isinstance(screen, ReviewScreen) and screen.loaded is not None else None


def test_the_detail_pane_shows_the_finding_and_the_code_that_lands(
    repo: Path, audited: RunDir
) -> None:
    integration = git(repo, "rev-parse", "corral/r1/api-auth/1")

    async def scenario() -> None:
        app = CorralApp(repo, audited.run_id)
        async with app.run_test(size=(160, 60)) as pilot:
            await until(pilot, lambda: review_of(app), what="the review")
            review = review_of(app)
            assert review is not None
            assert review.findings.current_key == "group:critical"
            await pilot.press("j")
            await until(pilot, lambda: "request.args['id']" in screen_text(pilot), what="the code")
            text = screen_text(pilot)
            assert "The id goes into the query string unescaped." in text
            assert "Any user can read any row." in text
            assert "Pass the id as a bound parameter." in text
            assert "tool semgrep" in text
            assert "rule sqli" in text
            assert f"src/db.py at {integration[:12]} (what lands)" in text
            assert "row_36 = 36" in text, "six lines either side"
            assert "row_48 = 48" in text
            assert "row_35 = 35" not in text
            await pilot.press("j")  # the high group's header: the pane is empty
            assert "Pass the id" not in screen_text(pilot)
            await pilot.press("j")  # a finding at a file the commit does not have
            await until(
                pilot, lambda: "src/auth.py is not in" in screen_text(pilot), what="why not"
            )
            assert "request.args" not in screen_text(pilot)

    asyncio.run(scenario())


def test_b_cycles_the_grouping_and_enter_folds_a_group(repo: Path, audited: RunDir) -> None:
    async def scenario() -> None:
        app = CorralApp(repo, audited.run_id)
        async with app.run_test(size=(160, 48)) as pilot:
            await until(pilot, lambda: review_of(app), what="the review")
            review = review_of(app)
            assert review is not None
            groups = [k for k in review.findings.cells if k.startswith("group:")]
            assert groups == ["group:critical", "group:high", "group:medium", "group:low"]
            await pilot.press("b")
            assert review.grouping == "rule"
            groups = [k for k in review.findings.cells if k.startswith("group:")]
            assert groups == [
                "group:cookie-secure",
                "group:pin",
                "group:sqli",
                "group:todo",
                "group:weak-hash",
            ]
            assert "5 findings by rule" in str(review.findings.border_title)
            await pilot.press("b")
            assert review.grouping == "tool"
            assert [k for k in review.findings.cells if k.startswith("group:")] == [
                "group:semgrep",
                "group:(none)",
            ]
            await pilot.press("b")
            assert review.grouping == "file"
            assert "group:src/db.py" in review.findings.cells
            assert "group:payments service" in review.findings.cells, "an asset is its own group"
            await pilot.press("b")
            assert review.grouping == "severity"

            review.findings.select_key("group:high")
            await pilot.press("enter")
            assert review.collapsed == {"high"}
            assert review.findings.current_key == "group:high"
            shown = list(review.findings.cells)
            assert "finding:1" not in shown, "the high findings are folded"
            assert "finding:2" not in shown
            assert "finding:0" in shown
            assert "finding:3" in shown
            await until(pilot, lambda: "▶ high" in screen_text(pilot), what="the folded mark")
            await pilot.press("enter")
            assert review.collapsed == frozenset()
            assert "finding:1" in review.findings.cells

    asyncio.run(scenario())


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
def test_e_opens_the_file_that_lands_in_the_editor_at_the_line(
    repo: Path, audited: RunDir, tmp_path: Path
) -> None:
    """In a real terminal: the console suspends, $EDITOR gets `+42 FILE` (a read-only copy of
    the file as it lands), the console is back and the copy is gone."""
    record = tmp_path / "editor-args"
    editor = tmp_path / "editor.sh"
    editor.write_text(
        f'#!/bin/sh\nprintf "%s\\n" "$@" "$(stat -c %a "$2")" > {shlex.quote(str(record))}\n'
        f'cat "$2" >> {shlex.quote(str(record))}\necho editor ran; sleep 1\n'
    )
    editor.chmod(0o755)
    socket = f"corral-review-{os.getpid()}-{tmp_path.name}"
    tmux = Tmux(socket)
    command = (
        f"cd {shlex.quote(str(repo))} && EDITOR={shlex.quote(str(editor))} VISUAL= "
        f"exec {shlex.quote(sys.executable)} -m corral.core.cli tui {audited.run_id}"
    )
    try:
        tmux("new-session", "-d", "-s", "console", "-x", "140", "-y", "40", command)
        tmux("set-option", "-g", "escape-time", "0")
        tmux.wait_for("5 findings by severity")
        tmux.keys("j")
        tmux.wait_for("Any user can read any row.")
        tmux.keys("e")
        deadline = time.monotonic() + 20
        while not record.exists() or "row_60" not in record.read_text():
            assert time.monotonic() < deadline, "the editor did not run"
            time.sleep(0.1)
        tmux.wait_for("5 findings by severity", "Any user can read any row.")
    finally:
        tmux.kill()
    args = record.read_text().splitlines()
    assert args[0] == "+42"
    opened = Path(args[1])
    assert opened.name == "db.py"
    assert args[2] == "444", "a read-only copy"
    assert args[3 + 41] == DB_LINES[41], "the integration commit's version"
    assert not (repo / "src" / "db.py").exists(), "the checkout is untouched"
    assert not opened.parent.exists(), "the copy and its directory are removed after the editor"


@pytest.fixture
def validated(repo: Path, audited: RunDir) -> RunDir:
    """`audited` with a report the engine's own code built (suppressing rewrites it)."""
    state = fold(read_log(audited.events).events)
    found = [
        Finding(
            id="a",
            severity="critical",
            title="SQL from input",
            file="src/db.py",
            line=42,
            rule="sqli",
        ),
        Finding(
            id="b",
            severity="low",
            title="Fixture secret",
            file="tests/data.py",
            line=1,
            rule="secret",
        ),
    ]
    report = build_report(state, merge_findings([AgentFindings("sec-scan", 1, found)]))
    sha = write_report(report, audited.path)
    written = ev.ReportWritten(
        path=str(audited.path / "report.json"),
        sha256=sha,
        findings=2,
        conflicts=0,
        synthesized=True,
    )
    write_events(audited, [written])
    return audited


def test_s_suppresses_the_findings_rule_with_a_reason(repo: Path, validated: RunDir) -> None:
    async def scenario() -> None:
        app = CorralApp(repo, validated.run_id)
        async with app.run_test(size=(160, 48)) as pilot:
            await until(pilot, lambda: review_of(app), what="the review")
            review = review_of(app)
            assert review is not None
            review.findings.select_key("finding:0")
            await pilot.press("s")
            await until(pilot, lambda: isinstance(app.screen, AskScreen), what="what to suppress")
            assert "rule:sqli" in screen_text(pilot)
            await pilot.press("enter")
            await until(
                pilot, lambda: "Why can rule sqli wait?" in screen_text(pilot), what="the reason"
            )
            await pilot.press(*"false positive", "enter")
            await until(
                pilot, lambda: "⊘ 1 suppressed" in screen_text(pilot), what="the new report"
            )
            await until(
                pilot,
                lambda: "rule sqli suppressed by" in screen_text(pilot),
                what="who, in the pane",
            )
            assert ": false positive" in screen_text(pilot)
            assert "✔ current" in screen_text(pilot), "decisions bind to the rewritten report"

    asyncio.run(scenario())
    suppressed = [e for e in events_of(validated) if isinstance(e, ev.FindingsSuppressed)]
    assert [(e.by, e.pattern, e.reason) for e in suppressed] == [
        (reviewer_identity(), "sqli", "false positive")
    ]


def test_approve_names_what_went_wrong_and_what_lands_and_the_log_is_readable(
    repo: Path, audited: RunDir
) -> None:
    """The dialog: dead-lettered agents, broken locks, tampering and the combined diffstat;
    the verification tab: the end of the verification log, escapes inert."""
    log = audited.path / "verify.log"
    log.write_text("collected 12 items\n\x1b[32m12 passed\x1b[0m in 0.4s\x1b]0;pwned\x07\n")
    integration = git(repo, "rev-parse", "corral/r1/api-auth/1")
    write_events(
        audited,
        [
            ev.AgentDeadLettered(agent="lint", attempts=3, reason="timed out 3 times"),
            ev.LockAcquired(lock="db", agent="api-auth", attempt=1, request_id="r", token=1),
            ev.LockBroken(lock="db", token=1, agent="api-auth", by="carol", reason="stuck"),
            ev.RepoTampered(
                live=["api-auth#1"],
                seen="attempt_end",
                changes=[
                    ev.RepoChange(kind="ref", name="refs/heads/x", old="c" * 40, new="d" * 40)
                ],
            ),
            ev.VerificationFinished(
                command=["pytest"], passed=True, exit_code=0, log_path=str(log), commit=integration
            ),
        ],
    )
    tampered = events_of(audited)[-2].seq
    write_events(audited, [ev.TamperingAcknowledged(by="carol", through_seq=tampered)])

    async def scenario() -> None:
        app = CorralApp(repo, audited.run_id)
        async with app.run_test(size=(160, 60)) as pilot:
            await until(pilot, lambda: review_of(app), what="the review")
            await pilot.press("4")
            await until(pilot, lambda: "12 passed in 0.4s" in screen_text(pilot), what="the log")
            assert "collected 12 items" in screen_text(pilot)
            assert "pwned" not in screen_text(pilot)
            await pilot.press("a")
            await until(
                pilot, lambda: isinstance(app.screen, ConfirmScreen), what="the confirmation"
            )
            assert isinstance(app.screen, ConfirmScreen)
            body = str(app.screen.body)
            assert "1 dead-lettered: lint (timed out 3 times)" in body
            assert "1 lock(s) broken: db (broken by carol: stuck)" in body
            assert "1 tampering report(s), acknowledged by carol" in body
            assert "what lands:" in body
            assert "src/db.py | 60 +" in body
            assert "1 file changed, 60 insertions(+)" in body
            await pilot.press("n")

    asyncio.run(scenario())


def test_conflict_hunks_are_split_by_their_markers() -> None:
    merged = "\n".join(
        [
            "a",
            "<<<<<<< ours-branch",
            "one",
            "two",
            "||||||| base",
            "zero",
            "=======",
            "uno",
            ">>>>>>> theirs-branch",
            "b",
            "<<<<<<< ours-branch",
            "=======",
            "added",
            ">>>>>>> theirs-branch",
            "======= not a marker outside a hunk",
        ]
    )
    first, second = parse_hunks(merged)
    assert (first.line, first.ours, first.theirs) == (2, ["one", "two"], ["uno"])
    assert (first.ours_label, first.theirs_label) == ("ours-branch", "theirs-branch")
    assert (second.line, second.ours, second.theirs) == (11, [], ["added"])
