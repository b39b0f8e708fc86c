"""The report: built from the folded log and merged findings, validated, written atomically."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from corral.core.findings.merge import MergedFindings, merge_findings
from corral.core.findings.sarif import parse_sarif
from corral.core.findings.schema import AgentFindings, Finding
from corral.core.log import events as ev
from corral.core.log.state import RunState, fold
from corral.core.report.model import Report, Summary, build_report
from corral.core.report.render import (
    REPORT_JSON,
    REPORT_MD,
    REPORT_SARIF,
    load_report,
    render_markdown,
    write_report,
)

SNAPSHOT = "a" * 40
ENGINE = ev.EngineInfo(pid=1, start_time=0.0, host="h", user="u")


def run_events(kinds: dict[str, str], required: int) -> list[ev.Event]:
    agents = [ev.AgentSummary(id=name, kind=kind, command=["x"]) for name, kind in kinds.items()]  # type: ignore[arg-type]
    return [
        ev.RunStarted(
            seq=1,
            ts=100.0,
            run_id="r1",
            name="audit of everything",
            repo="/repo",
            base_ref="main",
            snapshot=SNAPSHOT,
            plan_sha256="0" * 64,
            agents=agents,
            max_parallel=2,
            required_successes=required,
            worktree_root="/w",
            engine=ENGINE,
        )
    ]


def attempt(
    agent: str, outcome: ev.AttemptOutcome, start: float, end: float, number: int = 1, **kw: Any
) -> list[ev.Event]:
    return [
        ev.AgentStarting(
            ts=start,
            agent=agent,
            attempt=number,
            workspace="/w",
            branch=f"corral/r1/{agent}/{number}",
            output_dir="/o",
            log_path="/l",
        ),
        ev.AgentStarted(ts=start, agent=agent, attempt=number, pid=10, proc_start_time=1.0),
        ev.AgentFinished(ts=end, agent=agent, attempt=number, outcome=outcome, **kw),
    ]


def finding(agent_id: str, severity: str, title: str, **where: Any) -> Finding:
    return Finding.model_validate({"id": agent_id, "severity": severity, "title": title, **where})


def audit_run() -> tuple[RunState, MergedFindings]:
    events = run_events({"a1": "audit", "a2": "audit", "a3": "audit", "bad": "audit"}, required=2)
    events += attempt("a1", "succeeded", 100.0, 110.5, exit_code=0)
    events += attempt("a2", "failed", 100.0, 101.0, exit_code=2, reason="exited 2")
    events += [ev.AgentRetried(agent="a2", attempt=2, delay=1.0, reason="exited 2")]
    events += attempt("a2", "succeeded", 102.0, 104.0, number=2, exit_code=0)
    events += attempt("a3", "succeeded", 100.0, 103.0, exit_code=0)
    events += attempt("bad", "succeeded", 100.0, 102.0, exit_code=0)
    events += [
        ev.FindingsRejected(
            agent="bad", attempt=1, reason="findings.json: findings[0].file: '../x' climbs out"
        )
    ]
    state = fold(events)
    merged = merge_findings(
        [
            AgentFindings("a1", 1, [finding("1", "high", "SQL injection", file="db.py", line=3)]),
            AgentFindings(
                "a2",
                2,
                [
                    finding("x", "medium", "SQL injection", file="db.py", line=3),
                    finding("y", "info", "Banner", asset="web"),
                ],
            ),
            AgentFindings("a3", 1, []),
        ]
    )
    return state, merged


def test_report_from_state_and_findings_validates_and_round_trips(tmp_path: Path) -> None:
    state, merged = audit_run()

    report = build_report(state, merged)

    assert report.synthesized
    assert (report.verdict.met, report.verdict.succeeded, report.verdict.min_success) == (
        True,
        3,
        2,
    )
    assert [(f.agent, f.reason) for f in report.verdict.failed] == [
        ("bad", "its output was rejected: findings.json: findings[0].file: '../x' climbs out")
    ]
    a2 = next(a for a in report.agents if a.id == "a2")
    assert (a2.attempts, a2.duration, a2.state) == (2, 3.0, "succeeded")
    assert [att.exit_code for att in a2.attempt_details] == [2, 0]
    assert report.summary == Summary(high=1, info=1, total=2)
    assert report.findings[0].agreement == 2
    assert [c.severities for c in report.finding_conflicts] == [{"a1": "high", "a2": "medium"}]
    assert [(e.agent, e.attempt) for e in report.validation_errors] == [("bad", 1)]
    assert Report.model_validate_json(report.model_dump_json()) == report
    assert build_report(state, merged) == report  # no clock: the same inputs, the same report

    digest = write_report(report, tmp_path)

    data = (tmp_path / REPORT_JSON).read_bytes()
    assert hashlib.sha256(data).hexdigest() == digest
    assert load_report(tmp_path / REPORT_JSON) == (report, digest)
    assert write_report(report, tmp_path) == digest  # byte-identical when rewritten
    markdown = (tmp_path / REPORT_MD).read_text()
    assert "SQL injection" in markdown
    assert "output rejected" in markdown
    assert (tmp_path / REPORT_JSON).stat().st_mode & 0o777 == 0o600
    sarif = json.loads((tmp_path / REPORT_SARIF).read_text())
    assert sarif["version"] == "2.1.0"
    assert [t["id"] for t in sarif["runs"][0]["taxonomies"][0]["taxa"]] == ["a1", "a2", "a3", "bad"]
    again = parse_sarif(
        REPORT_SARIF, (tmp_path / REPORT_SARIF).read_bytes()
    )  # our own reader accepts it
    assert [(f.title, f.severity, f.file, f.line, f.asset) for f in again] == [
        (f.title, f.severity, f.file, f.line, f.asset) for f in report.findings
    ]


def test_below_min_success_nothing_is_merged_the_findings_are_partial_and_failures_named() -> None:
    events = run_events({"c1": "coding", "c2": "coding", "c3": "coding"}, required=2)
    events += attempt("c1", "succeeded", 0.0, 5.0, exit_code=0)
    events += attempt("c2", "timed_out", 0.0, 60.0, reason="ran past its timeout of 60s")
    events += [ev.AgentDeadLettered(agent="c2", attempts=1, reason="timed out on every attempt")]
    events += [ev.AgentSkipped(agent="c3", reason="dependency c2 failed")]
    state = fold(events)
    some = merge_findings([AgentFindings("c1", 1, [finding("1", "low", "x", asset="y")])])

    report = build_report(state, some)

    assert not report.synthesized
    assert not report.verdict.met
    assert [f.agents for f in report.findings] == [["c1"]]
    assert report.summary.total == 1
    assert report.partial
    assert "min_success 2 not met (1 succeeded)" in report.partial_reason
    assert "c2: timed out on every attempt" in report.partial_reason
    assert [(f.agent, f.state, f.reason) for f in report.verdict.failed] == [
        ("c2", "dead_lettered", "timed out on every attempt"),
        ("c3", "skipped", "dependency c2 failed"),
    ]
    markdown = render_markdown(report)
    assert "NOT met" in markdown
    assert "PARTIAL report" in markdown
    assert "dependency c2 failed" in markdown
    assert Report.model_validate_json(report.model_dump_json()) == report
    unmarked = {**report.model_dump(), "partial": False, "partial_reason": ""}
    with pytest.raises(ValidationError, match="partial"):
        Report.model_validate(unmarked)


def test_coding_run_report_carries_merge_conflicts_and_verification() -> None:
    events = run_events({"a": "coding", "b": "coding", "c": "coding"}, required=2)
    for name in "abc":
        events += attempt(name, "succeeded", 0.0, 1.0, exit_code=0)
    files = [ev.ConflictFile(path="src/app.py", kind="content")]
    events += [
        ev.ConflictPredicted(key="a+c", agents=["a", "c"], files=files),
        ev.BranchMerged(agent="a", attempt=1, branch="corral/r1/a/1", commit="1" * 40),
        ev.BranchMerged(agent="b", attempt=1, branch="corral/r1/b/1", commit="2" * 40),
        ev.BranchLeftOut(
            agent="c",
            attempt=1,
            branch="corral/r1/c/1",
            reason="conflicts with a",
            conflicts_with=["a"],
            files=files,
        ),
        ev.VerificationFinished(
            command=["pytest"], passed=True, exit_code=0, log_path="/v.log", commit="2" * 40
        ),
    ]
    report = build_report(fold(events))
    assert report.integration_commit == "2" * 40
    assert report.integration_branch == "corral/r1/integration"
    assert [m.agent for m in report.merged] == ["a", "b"]
    assert report.left_out[0].files == files
    assert [(c.key, c.predicted, c.actual) for c in report.merge_conflicts] == [("a+c", True, True)]
    assert report.verification is not None
    assert report.verification.passed


def test_inconsistent_reports_are_refused() -> None:
    state, merged = audit_run()
    good = build_report(state, merged).model_dump()
    wrong_count = {**good, "summary": {**good["summary"], "high": 5}}
    with pytest.raises(ValidationError, match="does not count"):
        Report.model_validate(wrong_count)
    stranger = json.loads(json.dumps(good))
    stranger["findings"][0]["agents"] = ["a1", "ghost"]
    with pytest.raises(ValidationError, match="unknown agents"):
        Report.model_validate(stranger)
    dangling = json.loads(json.dumps(good))
    dangling["finding_conflicts"][0]["findings"] = ["CF-000000000000"]
    with pytest.raises(ValidationError, match="names unknown findings"):
        Report.model_validate(dangling)
    unsynthesised = {**good, "synthesized": False}
    with pytest.raises(ValidationError, match="min_success"):
        Report.model_validate(unsynthesised)
    partial_but_met = {**good, "partial": True, "partial_reason": "why"}
    with pytest.raises(ValidationError, match="partial"):
        Report.model_validate(partial_but_met)


WRITER = """
import sys
from pathlib import Path
from corral.core.report.model import Report
from corral.core.report.render import write_report
reports = [Report.model_validate_json(Path(p).read_bytes()) for p in sys.argv[2:4]]
print("ready", flush=True)
n = 0
while True:
    write_report(reports[n % 2], Path(sys.argv[1]))
    n += 1
"""


@pytest.mark.slow
def test_killed_mid_write_leaves_the_old_or_the_new_report(tmp_path: Path) -> None:
    state, merged = audit_run()
    old = build_report(state, merged)
    new = build_report(state, MergedFindings(agents=merged.agents))  # no findings: a different file
    sources = tmp_path / "src"
    sources.mkdir()
    (sources / "old.json").write_text(old.model_dump_json())
    (sources / "new.json").write_text(new.model_dump_json())
    out = tmp_path / "run"
    out.mkdir()
    digests = {write_report(new, out), write_report(old, out)}
    assert len(digests) == 2
    seen: set[str] = set()
    deadline = time.monotonic() + 30
    kills = 0
    while kills < 12 and time.monotonic() < deadline:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                WRITER,
                str(out),
                str(sources / "old.json"),
                str(sources / "new.json"),
            ],
            stdout=subprocess.PIPE,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
        time.sleep(0.01 + 0.013 * kills)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        kills += 1
        report, digest = load_report(out / REPORT_JSON)  # always parses and validates
        assert digest in digests
        seen.add(digest)
        assert report in (old, new)
    assert kills == 12
    write_report(old, out)  # the next writer clears what the killed ones left
    assert sorted(p.name for p in out.iterdir()) == [REPORT_JSON, REPORT_MD, REPORT_SARIF]
