"""Suppressing a rule or a path for one review: recorded with who and why, the report written
again (still valid) with the findings marked, SARIF's `suppressions` field, and decisions then
bound to that report. A real run directory and repository; the real command."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from corral.core.findings.merge import merge_findings
from corral.core.findings.schema import AgentFindings, Finding
from corral.core.log import EventWriter, read_log
from corral.core.log import events as ev
from corral.core.log.state import fold
from corral.core.report.model import build_report
from corral.core.report.render import load_report, write_report
from corral.core.review.gate import ReviewRefused, approve, reject, suppress
from corral.core.runs.rundir import RunDir
from tests.core.engine_helpers import corral, events_of
from tests.core.operator_helpers import make_reviewable_run

FINDINGS = [
    Finding(
        id="1",
        severity="critical",
        title="SQL built from input",
        file="src/db.py",
        line=4,
        rule="sqli",
        tool="semgrep",
    ),
    Finding(id="2", severity="high", title="Weak hash", file="src/auth.py", line=9, rule="md5"),
    Finding(
        id="3",
        severity="low",
        title="Fixture password",
        file="tests/fixtures/users.py",
        line=2,
        rule="secret",
    ),
    Finding(
        id="4", severity="low", title="Hard-coded key", file="src/keys.py", line=1, rule="secret"
    ),
]


def reviewable(repo: Path) -> tuple[RunDir, str]:
    """A finished run whose report (built by the engine's own code) holds four findings."""
    rundir, _, _ = make_reviewable_run(repo)
    state = fold(read_log(rundir.events).events)
    merged = merge_findings([AgentFindings(agent="a", attempt=1, findings=FINDINGS)])
    report = build_report(state, merged)
    sha = write_report(report, rundir.path)

    async def write() -> None:
        writer, _ = await EventWriter.open(rundir.events)
        await writer.append(
            ev.ReportWritten(
                path=str(rundir.path / "report.json"),
                sha256=sha,
                findings=len(report.findings),
                conflicts=0,
                synthesized=True,
            )
        )
        await writer.close()

    asyncio.run(write())
    return rundir, sha


def test_suppressing_a_rule_is_recorded_and_the_report_shows_it(repo: Path) -> None:
    rundir, sha = reviewable(repo)
    done = suppress(rundir, "bob", "rule", "secret", "fixtures and a key rotated today", sha)
    assert len(done.findings) == 2

    recorded = [e for e in events_of(rundir) if isinstance(e, ev.FindingsSuppressed)]
    assert [(e.by, e.kind, e.pattern, e.reason) for e in recorded] == [
        ("bob", "rule", "secret", "fixtures and a key rotated today")
    ]
    written = events_of(rundir)[-1]
    assert isinstance(written, ev.ReportWritten)
    report, on_disk = load_report(rundir.path / "report.json")  # it validates
    assert on_disk == written.sha256 == done.report_sha256 != sha
    assert report.log_seq == recorded[0].seq
    aside = {f.title: f.suppressed_by for f in report.findings}
    assert aside == {
        "SQL built from input": None,
        "Weak hash": None,
        "Fixture password": recorded[0].seq,
        "Hard-coded key": recorded[0].seq,
    }
    assert report.summary.total == 4, "a suppressed finding is still counted"
    [listed] = report.suppressions
    assert (listed.by, listed.kind, listed.pattern) == ("bob", "rule", "secret")
    assert sorted(listed.findings) == sorted(
        f.id for f in report.findings if f.suppressed_by is not None
    )

    markdown = (rundir.path / "report.md").read_text()
    assert "## Suppressed for this review" in markdown
    assert "by bob: fixtures and a key rotated today (2 finding(s)" in markdown
    sarif = json.loads((rundir.path / "report.sarif").read_text())
    results = {r["message"]["text"]: r for r in sarif["runs"][0]["results"]}
    assert "suppressions" not in results["SQL built from input"]
    assert results["Hard-coded key"]["suppressions"] == [
        {
            "kind": "external",
            "status": "accepted",
            "justification": "fixtures and a key rotated today",
            "properties": {"by": "bob", "seq": recorded[0].seq, "rule": "secret"},
        }
    ]

    with pytest.raises(ReviewRefused, match="changed since it was shown"):
        approve(rundir, "bob", sha)
    assert approve(rundir, "bob", done.report_sha256).decision == "approved"
    with pytest.raises(ReviewRefused, match="already approved"):
        suppress(rundir, "bob", "rule", "md5", "too late", done.report_sha256)


def test_a_path_covers_a_file_a_directory_or_a_glob_and_the_oldest_wins(repo: Path) -> None:
    rundir, sha = reviewable(repo)
    first = suppress(rundir, "bob", "path", "tests/", "test code", sha)
    assert len(first.findings) == 1
    second = suppress(
        rundir, "carol", "path", "src/*.py", "all of src, for now", first.report_sha256
    )
    assert len(second.findings) == 3, "the fixture is already set aside by the first"
    report, _ = load_report(rundir.path / "report.json")
    assert [len(s.findings) for s in report.suppressions] == [1, 3]
    assert all(f.suppressed_by is not None for f in report.findings)


def test_refusals_name_what_is_wrong(repo: Path) -> None:
    rundir, sha = reviewable(repo)
    with pytest.raises(ReviewRefused, match="needs a reason"):
        suppress(rundir, "bob", "rule", "sqli", "  ", sha)
    with pytest.raises(ReviewRefused, match="covers none"):
        suppress(rundir, "bob", "rule", "no-such-rule", "why not", sha)
    with pytest.raises(ReviewRefused, match="inside the repository"):
        suppress(rundir, "bob", "path", "../elsewhere", "why not", sha)
    with pytest.raises(ReviewRefused, match="changed since it was shown"):
        suppress(rundir, "bob", "rule", "sqli", "why not", "0" * 64)
    reject(rundir, "bob", "no", sha)
    with pytest.raises(ReviewRefused, match="already rejected"):
        suppress(rundir, "bob", "rule", "sqli", "why not", sha)
    assert not any(isinstance(e, ev.FindingsSuppressed) for e in events_of(rundir))


def test_the_command_suppresses_and_show_lists_it(repo: Path) -> None:
    rundir, sha = reviewable(repo)
    done = corral(
        repo,
        "review",
        "suppress",
        rundir.run_id,
        "--rule",
        "md5",
        "--reason",
        "legacy",
        "--sha",
        sha,
        check=True,
    )
    assert "rule md5 suppressed by" in done.stdout
    shown = corral(repo, "review", "show", rundir.run_id, "--findings", "hash", check=True).stdout
    assert "⊘ rule md5 suppressed by" in shown
    assert ": legacy" in shown
    doc = json.loads(corral(repo, "review", "show", rundir.run_id, "--json", check=True).stdout)
    assert doc["report"]["suppressions"][0]["reason"] == "legacy"
    piped = corral(repo, "review", "suppress", rundir.run_id, "--path", "src", "--reason", "x")
    assert piped.returncode == 2
    assert "--sha" in piped.stderr
