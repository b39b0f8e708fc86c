"""Merge-back end to end: conflicts predicted while agents run, found at merge, one report, review."""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

from corral.core.log import events as ev
from tests.conftest import git, wait_until
from tests.core.engine_helpers import (
    agent_block,
    corral,
    events_of,
    kill9,
    only_run,
    start_corral,
    state_of,
    wait_for_event,
    wait_for_run,
    write_plan,
)

PY = sys.executable


def editing_agent(path: str, text: str, gate: Path | None = None) -> list[str]:
    """An agent that rewrites `path` (uncommitted) and, with a gate, waits for it to open."""
    wait = f"while [ ! -f {gate} ]; do sleep 0.05; done; " if gate else ""
    return ["sh", "-c", f"printf '{text}\\n' > {path}; {wait}echo edited"]


def test_same_lines_conflict_is_predicted_then_left_out_and_approve_lands_the_rest(
    repo: Path, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    body = (
        agent_block("alpha", editing_agent("README.md", "alpha was here", gate))
        + agent_block("beta", editing_agent("README.md", "beta was here", gate))
        + agent_block("gamma", editing_agent("NOTES.md", "gamma notes", gate))
    )
    plan = write_plan(tmp_path, body, header='conflict_interval = "100ms"\nmin_success = 3\n')
    base = git(repo, "rev-parse", "main")
    engine = start_corral(repo, "run", str(plan), "--quiet")
    rundir = wait_for_run(repo)
    predicted = wait_for_event(
        rundir, lambda e: isinstance(e, ev.ConflictPredicted), what="a predicted conflict"
    )
    assert isinstance(predicted, ev.ConflictPredicted)
    assert predicted.agents == ["alpha", "beta"]
    assert [(f.path, f.kind) for f in predicted.files] == [("README.md", "content")]
    assert state_of(rundir).agents["alpha"].state == "running", "found while the agents still run"
    gate.touch()
    assert engine.wait(timeout=60) == 0
    state = state_of(rundir)
    assert [m.agent for m in state.merge.merged] == ["alpha", "gamma"]
    (left,) = state.merge.left_out
    assert (left.agent, left.conflicts_with) == ("beta", ["alpha"])
    assert [f.path for f in left.files] == ["README.md"]
    assert state.conflicts["alpha+beta"].actual
    assert git(repo, "rev-parse", "main") == base, "the base branch is untouched until approval"
    report = json.loads((rundir.path / "report.json").read_text())
    assert report["merge_conflicts"][0]["agents"] == ["alpha", "beta"]
    # review: approve binds to the sha shown and lands exactly the integration commit
    shown = corral(repo, "review", "show", rundir.run_id, check=True)
    sha = shown.stdout.split("report sha256: ")[1].split()[0]
    assert sha == hashlib.sha256((rundir.path / "report.json").read_bytes()).hexdigest()
    stale = corral(repo, "review", "approve", rundir.run_id, "--sha", "0" * 64)
    assert stale.returncode == 1
    assert "changed since it was shown" in stale.stderr
    approved = corral(repo, "review", "approve", rundir.run_id, "--sha", sha, check=True)
    assert "approved by" in approved.stdout
    integration = state.merge.integration_commit
    assert git(repo, "rev-parse", "main^1", "main^2").split() == [base, integration]
    assert git(repo, "show", "main:README.md") == "alpha was here"
    assert git(repo, "show", "main:NOTES.md") == "gamma notes"
    assert git(repo, "status", "--porcelain") == "", "the user's checkout took the landing"
    decision = events_of(rundir)[-1]
    assert isinstance(decision, ev.ReportApproved)
    assert decision.landed == git(repo, "rev-parse", "main")


def test_reject_needs_a_reason_and_lands_nothing(repo: Path, tmp_path: Path) -> None:
    plan = write_plan(tmp_path, agent_block("one", editing_agent("README.md", "changed")))
    corral(repo, "run", str(plan), "--quiet", check=True)
    rundir = only_run(repo)
    sha = hashlib.sha256((rundir.path / "report.json").read_bytes()).hexdigest()
    missing = corral(repo, "review", "reject", rundir.run_id, "--sha", sha)
    assert missing.returncode == 2
    assert "--reason" in missing.stderr
    before = git(repo, "rev-parse", "main")
    rejected = corral(
        repo, "review", "reject", rundir.run_id, "--sha", sha, "--reason", "not this way"
    )
    assert rejected.returncode == 0, rejected.stderr
    assert git(repo, "rev-parse", "main") == before
    review = state_of(rundir).review
    assert review is not None
    assert (review.decision, review.reason) == ("rejected", "not this way")


def findings_agent(findings: list[dict[str, object]]) -> list[str]:
    payload = json.dumps({"version": 1, "findings": findings})
    code = (
        "import os, pathlib, sys\n"
        "out = pathlib.Path(os.environ['CORRAL_OUTPUT']) / 'findings.json'\n"
        "out.write_text(sys.argv[1])\n"
    )
    return [PY, "-c", code, payload]


def finding(fid: str, severity: str, file: str, line: int, title: str) -> dict[str, object]:
    return {"id": fid, "severity": severity, "file": file, "line": line, "title": title}


def test_five_auditors_merge_with_agreement_and_severity_conflicts(
    repo: Path, tmp_path: Path
) -> None:
    shared = finding("s", "high", "src/app.py", 1, "Hard-coded credential")
    body = ""
    for index in range(4):
        own = finding(f"o{index}", "low", "README.md", index + 1, f"Style issue {index}")
        body += agent_block(f"auditor{index}", findings_agent([shared, own]), kind="audit")
    disagreeing = finding("d", "medium", "src/app.py", 1, "Hard-coded credential")
    body += agent_block("auditor4", findings_agent([disagreeing]), kind="audit")
    escape = finding("bad", "low", "../etc/passwd", 1, "Outside \x1b[31mthe repo")
    body += agent_block("liar", findings_agent([escape]), kind="audit")
    plan = write_plan(tmp_path, body, header="min_success = 5\n")
    result = corral(repo, "run", str(plan), "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    state = state_of(only_run(repo))
    assert state.agents["liar"].state == "dead_lettered"
    assert "invalid output" in state.agents["liar"].reason
    assert "liar" in state.rejected_findings
    report = json.loads((only_run(repo).path / "report.json").read_text())
    credential = [f for f in report["findings"] if f["title"] == "Hard-coded credential"]
    assert len(credential) == 1, "identical findings are merged"
    assert len(credential[0]["agents"]) == 5
    assert report["finding_conflicts"], "high vs medium on the same line is a conflict"
    counts = report["summary"]
    total = sum(v for k, v in counts.items() if k in ("critical", "high", "medium", "low", "info"))
    assert total == len(report["findings"]) == 5
    assert not any("passwd" in json.dumps(f) for f in report["findings"])


def test_engine_killed_during_the_report_write_leaves_a_report_matching_the_log(
    repo: Path, tmp_path: Path
) -> None:
    body = "".join(
        agent_block(f"w{i}", editing_agent(f"file{i}.txt", f"work {i}")) for i in range(6)
    )
    plan = write_plan(tmp_path, body)
    engine = start_corral(repo, "run", str(plan), "--quiet")
    rundir = wait_for_run(repo)
    wait_until(lambda: (rundir.path / "report.md").exists(), timeout=60, what="the report write")
    kill9(engine)
    on_disk = rundir.path / "report.json"
    if on_disk.exists():
        logged = [e for e in events_of(rundir) if isinstance(e, ev.ReportWritten)]
        current = hashlib.sha256(on_disk.read_bytes()).hexdigest()
        json.loads(on_disk.read_text())  # whole, never torn
        if logged:
            assert logged[-1].sha256 == current
    result = corral(repo, "run", "--resume", rundir.run_id, "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    state = state_of(rundir)
    assert state.report is not None
    assert hashlib.sha256(on_disk.read_bytes()).hexdigest() == state.report.sha256
    assert corral(repo, "verify", rundir.run_id).returncode == 0


def test_below_min_success_the_validated_findings_are_kept_in_a_partial_report(
    repo: Path, tmp_path: Path
) -> None:
    """One rejected auditor fails the run but does not throw away the others' findings."""
    body = agent_block(
        "good1",
        findings_agent([finding("g", "high", "src/app.py", 1, "Hard-coded credential")]),
        kind="audit",
    )
    body += agent_block(
        "good2", findings_agent([finding("h", "low", "README.md", 1, "Typo")]), kind="audit"
    )
    liar = finding("bad", "low", "../etc/passwd", 1, "Outside the repo")
    body += agent_block("liar", findings_agent([liar]), kind="audit")
    plan = write_plan(tmp_path, body, header="min_success = 3\n")
    result = corral(repo, "run", str(plan), "--quiet")
    rundir = only_run(repo)
    state = state_of(rundir)
    assert state.verdict == "failed", result.stdout + result.stderr
    assert state.report is not None
    assert not state.report.synthesized
    assert state.report.findings == 2
    report = json.loads((rundir.path / "report.json").read_text())
    assert sorted(f["title"] for f in report["findings"]) == ["Hard-coded credential", "Typo"]
    assert report["summary"]["total"] == 2
    assert report["partial"] is True
    assert report["verdict"]["met"] is False
    assert "liar" in report["partial_reason"]
    markdown = (rundir.path / "report.md").read_text()
    assert "PARTIAL" in markdown
    assert "Hard-coded credential" in markdown
    sarif = json.loads((rundir.path / "report.sarif").read_text())
    assert len(sarif["runs"][0]["results"]) == 2
    assert sarif["runs"][0]["properties"]["partial"] is True
    assert "liar" in sarif["runs"][0]["properties"]["partial_reason"]
    assert corral(repo, "verify", rundir.run_id).returncode == 0
    approve = corral(repo, "review", "approve", rundir.run_id, "--sha", state.report.sha256)
    assert approve.returncode != 0
    assert "min_success" in approve.stdout + approve.stderr


def test_an_auditor_whose_retry_validates_counts_and_its_first_rejection_stays_listed(
    repo: Path, tmp_path: Path
) -> None:
    """A rejected first attempt does not taint the valid second one (the report used to fail)."""
    code = (
        "import json, os, pathlib\n"
        "out = pathlib.Path(os.environ['CORRAL_OUTPUT']) / 'findings.json'\n"
        "where = '../x' if os.environ['CORRAL_ATTEMPT'] == '1' else 'src/app.py'\n"
        "found = {'id': 'x', 'severity': 'low', 'file': where, 'line': 1, 'title': 'Unused'}\n"
        "out.write_text(json.dumps({'version': 1, 'findings': [found]}))\n"
    )
    plan = write_plan(tmp_path, agent_block("a", [PY, "-c", code], kind="audit", retries=1))
    result = corral(repo, "run", str(plan), "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    rundir = only_run(repo)
    report = json.loads((rundir.path / "report.json").read_text())
    assert [f["title"] for f in report["findings"]] == ["Unused"]
    assert report["verdict"]["met"] is True
    assert [(e["agent"], e["attempt"]) for e in report["validation_errors"]] == [("a", 1)]


def test_two_tools_reporting_different_things_on_one_line_do_not_disagree(
    repo: Path, tmp_path: Path
) -> None:
    """radon's "too complex" and vulture's "unused method" on one line: no severity conflict;
    two agents rating one finding differently still are one."""
    complex_ = {**finding("cc", "medium", "src/app.py", 1, "Too complex"), "rule": "cc-D"}
    unused = {**finding("v", "low", "src/app.py", 1, "Unused method 'run'"), "rule": "unused"}
    body = agent_block("radon", findings_agent([complex_]), kind="audit")
    body += agent_block("vulture", findings_agent([unused]), kind="audit")
    body += agent_block("strict", findings_agent([{**unused, "severity": "high"}]), kind="audit")
    plan = write_plan(tmp_path, body)
    result = corral(repo, "run", str(plan), "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads((only_run(repo).path / "report.json").read_text())
    assert len(report["findings"]) == 2
    assert [c["severities"] for c in report["finding_conflicts"]] == [
        {"strict": "high", "vulture": "low"}
    ]
