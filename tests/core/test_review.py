"""The human gate on a real repository: decisions bind to the report and the base branch."""

from __future__ import annotations

import hashlib
from pathlib import Path

import filelock
import pytest

from corral.core.log import events as ev
from corral.core.log import read_log
from corral.core.log.state import fold
from corral.core.review.gate import ReviewRefused, approve, reject
from corral.core.runs.rundir import RunDir
from tests.conftest import git
from tests.core.engine_helpers import corral
from tests.core.operator_helpers import make_reviewable_run


def trailer(repo: Path, key: str, rev: str = "main") -> str:
    return git(repo, "log", "-1", f"--format=%(trailers:key={key},valueonly)", rev)


def test_approve_lands_the_integration_commit_and_names_the_approver(repo: Path) -> None:
    rundir, sha, integration = make_reviewable_run(repo)
    snapshot = git(repo, "rev-parse", "main")
    result = approve(rundir, "bob", sha)
    landed = git(repo, "rev-parse", "main")
    assert result.landed == landed
    assert git(repo, "rev-parse", "main^1", "main^2").split() == [snapshot, integration], (
        "an approval merge of exactly the integration commit onto the snapshot"
    )
    assert git(repo, "rev-parse", "main^{tree}") == git(
        repo, "rev-parse", f"{integration}^{{tree}}"
    )
    assert trailer(repo, "Approved-by") == "bob"
    assert trailer(repo, "Corral-Report-SHA256") == sha
    assert trailer(repo, "Corral-Run") == "r1"
    last = read_log(rundir.events).events[-1]
    assert isinstance(last, ev.ReportApproved)
    assert (last.by, last.report_sha256, last.landed) == ("bob", sha, landed)
    previous_line = rundir.events.read_bytes().splitlines()[-2]
    assert last.log_head == hashlib.sha256(previous_line).hexdigest(), (
        "approval binds to the log head it saw"
    )
    assert trailer(repo, "Corral-Log-Head") == last.log_head
    with pytest.raises(ReviewRefused, match="already approved by bob"):
        approve(rundir, "carol", sha)


def test_approve_updates_the_checkout_it_lands_in(repo: Path) -> None:
    rundir, sha, _ = make_reviewable_run(repo)
    approve(rundir, "bob", sha)
    assert git(repo, "status", "--porcelain") == "", "nothing staged in reverse"
    assert (repo / "src" / "app.py").read_text() == "print('merged work')\n"


def test_approve_refuses_over_uncommitted_work_and_lands_nothing(repo: Path) -> None:
    rundir, sha, _ = make_reviewable_run(repo)
    before = git(repo, "rev-parse", "main")
    (repo / "src" / "app.py").write_text("my unsaved edit\n")
    with pytest.raises(ReviewRefused, match=r"uncommitted changes .*src/app\.py"):
        approve(rundir, "bob", sha)
    assert git(repo, "rev-parse", "main") == before
    assert (repo / "src" / "app.py").read_text() == "my unsaved edit\n"
    assert fold(read_log(rundir.events).events).review is None
    git(repo, "checkout", "--", "src/app.py")
    assert approve(rundir, "bob", sha).decision == "approved", "once saved away, it lands"


def test_a_reviewer_name_cannot_forge_trailers(repo: Path) -> None:
    rundir, sha, _ = make_reviewable_run(repo)
    approve(rundir, "bob\nApproved-by: mallory\x1b[2J", sha)
    assert trailer(repo, "Approved-by") == "bob Approved-by: mallory [2J"


def forget_the_last_event(rundir: RunDir) -> None:
    """The log as it was before its last append: what a crash just before that append leaves."""
    lines = rundir.events.read_bytes().splitlines(keepends=True)
    rundir.events.write_bytes(b"".join(lines[:-1]))


def test_an_approval_interrupted_after_landing_is_finished_by_approving_again(
    repo: Path,
) -> None:
    rundir, sha, _ = make_reviewable_run(repo)
    snapshot = git(repo, "rev-parse", "main")
    landed = approve(rundir, "bob", sha).landed
    assert landed is not None
    forget_the_last_event(rundir)
    # and the checkout as a crash right after the ref moved leaves it: staged in reverse
    git(repo, "read-tree", "-m", "-u", landed, snapshot)
    assert git(repo, "status", "--porcelain") == "M  src/app.py"

    with pytest.raises(ReviewRefused, match="approval by bob that was not recorded"):
        approve(rundir, "carol", sha)
    result = approve(rundir, "bob", sha)

    assert result.landed == landed == git(repo, "rev-parse", "main"), "no second approval merge"
    assert git(repo, "status", "--porcelain") == ""
    review = fold(read_log(rundir.events).events).review
    assert review is not None
    assert (review.decision, review.by, review.landed) == ("approved", "bob", landed)


def test_approving_a_changed_report_is_refused(repo: Path) -> None:
    rundir, sha, _ = make_reviewable_run(repo)
    with pytest.raises(ReviewRefused, match="changed since it was shown"):
        approve(rundir, "bob", "f" * 64)
    (rundir.path / "report.json").write_text('{"findings": ["edited"]}\n')
    with pytest.raises(ReviewRefused, match="not the one the log recorded"):
        approve(rundir, "bob", sha)
    assert fold(read_log(rundir.events).events).review is None


def test_approving_after_the_base_moved_is_refused_and_lands_nothing(repo: Path) -> None:
    rundir, sha, integration = make_reviewable_run(repo)
    (repo / "README.md").write_text("someone else's change\n")
    git(repo, "commit", "-qam", "moved")
    moved = git(repo, "rev-parse", "main")
    with pytest.raises(ReviewRefused, match="moved since the run started"):
        approve(rundir, "bob", sha)
    assert git(repo, "rev-parse", "main") == moved != integration
    assert fold(read_log(rundir.events).events).review is None


def test_reject_needs_a_reason_and_lands_nothing(repo: Path) -> None:
    rundir, sha, _ = make_reviewable_run(repo)
    before = git(repo, "rev-parse", "main")
    with pytest.raises(ReviewRefused, match="needs a reason"):
        reject(rundir, "bob", "   ", sha)
    result = reject(rundir, "bob", "tests are too thin", sha)
    assert result.decision == "rejected"
    assert git(repo, "rev-parse", "main") == before
    review = fold(read_log(rundir.events).events).review
    assert review is not None
    assert (review.decision, review.reason) == ("rejected", "tests are too thin")


def test_no_decision_while_the_engine_runs(repo: Path) -> None:
    rundir, sha, _ = make_reviewable_run(repo)
    with filelock.FileLock(rundir.engine_lock), pytest.raises(ReviewRefused, match="still running"):
        approve(rundir, "bob", sha)


def test_below_min_success_cannot_be_approved(repo: Path) -> None:
    rundir, sha, _ = make_reviewable_run(repo, synthesized=False)
    with pytest.raises(ReviewRefused, match="below min_success"):
        approve(rundir, "bob", sha)


def test_distinct_reviewer_required(repo: Path) -> None:
    rundir, sha, _ = make_reviewable_run(repo, distinct=True)
    with pytest.raises(ReviewRefused, match="requires a different reviewer"):
        approve(rundir, "alice", sha)
    assert approve(rundir, "bob", sha).decision == "approved"


def test_acknowledging_a_run_without_tampering_is_refused_with_one_line(repo: Path) -> None:
    """The gate's refusal is what `corral review acknowledge` prints, with or without --through
    and without a terminal; nothing is recorded."""
    rundir, _, _ = make_reviewable_run(repo)
    before = rundir.events.read_bytes()
    for extra in ([], ["--through", "5"]):
        refused = corral(repo, "review", "acknowledge", "r1", *extra)
        assert refused.returncode == 1
        assert refused.stderr == (
            "corral: nothing to acknowledge: no unacknowledged tampering in this run\n"
        )
    assert rundir.events.read_bytes() == before
