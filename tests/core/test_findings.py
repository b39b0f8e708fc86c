"""Audit agents' output: strict validation of untrusted files, SARIF, and the merge."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from corral.core.findings.merge import fingerprint, merge_findings
from corral.core.findings.output import load_output
from corral.core.findings.schema import (
    MAX_FILE_BYTES,
    AgentFindings,
    Finding,
    FindingsError,
    findings_json_schema,
)
from corral.core.report.model import Summary


def finding(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"id": "F1", "severity": "high", "title": "SQL injection"}
    base.update(fields)
    return base


def write_findings(directory: Path, findings: list[dict[str, Any]], **top: Any) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "findings.json").write_text(
        json.dumps({"version": 1, **top, "findings": findings})
    )
    return directory


def sarif(results: list[dict[str, Any]], rules: list[dict[str, Any]] | None = None) -> str:
    driver: dict[str, Any] = {"name": "scanner", "rules": rules or []}
    return json.dumps(
        {"version": "2.1.0", "runs": [{"tool": {"driver": driver}, "results": results}]}
    )


def sarif_result(uri: str, line: int, **fields: Any) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ruleId": "R1",
        "message": {"text": "tainted input reaches a query"},
        "locations": [
            {"physicalLocation": {"artifactLocation": {"uri": uri}, "region": {"startLine": line}}}
        ],
    }
    result.update(fields)
    return result


def rejected(directory: Path) -> str:
    with pytest.raises(FindingsError) as caught:
        load_output(directory, "agent", 1)
    return str(caught.value)


def test_valid_findings_json_and_sarif_load(tmp_path: Path) -> None:
    out = write_findings(
        tmp_path / "out",
        [
            finding(file="./src//db.py", line=12, detail="line one\r\nline two\tindented"),
            finding(id="F2", severity="info", title="No MFA", asset="AWS root account", tool="cli"),
        ],
        tool="manual-review",
    )
    rules = [
        {
            "id": "R1",
            "shortDescription": {"text": "SQL injection"},
            "help": {"text": "use parameters"},
            "properties": {"security-severity": "9.1"},
        },
        {"id": "R2", "defaultConfiguration": {"level": "note"}},
    ]
    results = [
        sarif_result("src/db.py", 12),
        sarif_result("src/a%20b.py", 3, ruleId="R2", ruleIndex=1),
        sarif_result("src/c.py", 1, ruleId="R3", level="error"),
        sarif_result("src/d.py", 1, ruleId="R4", kind="pass"),
        {"ruleId": "R5", "message": {"text": "repository-wide\nsecond line"}},
    ]
    (out / "scan.sarif").write_text(sarif(results, rules))
    (out / "notes.txt").write_text("ignored: not a findings file")

    loaded = load_output(out, "auditor", 2)

    assert (loaded.agent, loaded.attempt, loaded.sources) == (
        "auditor",
        2,
        ["findings.json", "scan.sarif"],
    )
    own, mfa, *scanned = loaded.findings
    assert own.file == "src/db.py"
    assert own.detail == "line one\nline two\tindented"
    assert own.tool == "manual-review"
    assert mfa.tool == "cli"
    assert [(f.file, f.line, f.severity, f.title) for f in scanned] == [
        ("src/db.py", 12, "critical", "SQL injection"),
        ("src/a b.py", 3, "low", "tainted input reaches a query"),
        ("src/c.py", 1, "high", "tainted input reaches a query"),
        (None, None, "medium", "repository-wide"),
    ]
    assert scanned[0].recommendation == "use parameters"
    assert scanned[0].tool == "scanner"
    assert scanned[3].asset == "repository"
    assert findings_json_schema()["properties"]["version"]["const"] == 1


@pytest.mark.parametrize(
    ("findings", "expected"),
    [
        ([finding(severity="urgent", file="a.py")], "findings[0].severity: Input should be"),
        ([finding()], "findings[0]: needs a file or an asset"),
        ([finding(file="../etc/passwd")], "findings[0].file: '../etc/passwd' climbs out with '..'"),
        ([finding(file="src/../../x")], "climbs out with '..'"),
        ([finding(file="/etc/passwd")], "findings[0].file: '/etc/passwd' is absolute"),
        (
            [finding(asset="x", title="\x1b[2J\x1b[31mpwned")],
            "findings[0].title: contains a terminal escape",
        ),
        (
            [finding(asset="x", detail="ok\x9b31m")],
            "findings[0].detail: contains a terminal escape",
        ),
        ([finding(asset="x", detail="a\rb")], "contains a carriage return"),
        (
            [finding(asset="x", recommendation="\u202eevil")],
            "bidirectional control character (U+202E)",
        ),
        ([finding(asset="x", title="two\nlines")], "findings[0].title: spans several lines"),
        (
            [finding(asset="x", detail="y" * 70_000)],
            "findings[0].detail: String should have at most 65536",
        ),
        ([finding(asset="x", line="3")], "findings[0].line: Input should be a valid integer"),
        ([finding(asset="x", extra=1)], "findings[0].extra: Extra inputs are not permitted"),
        ([finding(asset="x"), finding(asset="y")], "'F1' is used twice"),
    ],
)
def test_invalid_findings_are_rejected_with_file_field_and_reason(
    tmp_path: Path, findings: list[dict[str, Any]], expected: str
) -> None:
    message = rejected(write_findings(tmp_path / "out", findings))
    assert expected in message
    assert message.startswith(("findings.json: ", str(tmp_path)))
    assert "\x1b" not in message  # the error itself is safe to print


def test_oversized_unreadable_and_missing_outputs(tmp_path: Path) -> None:
    big = tmp_path / "big"
    write_findings(big, [finding(asset="x", detail="A" * (10 * 1024 * 1024))])
    assert f"the limit is {MAX_FILE_BYTES} bytes" in rejected(big)

    linked = tmp_path / "linked"
    linked.mkdir()
    secret = tmp_path / "secret.json"
    secret.write_text("{}")
    os.symlink(secret, linked / "findings.json")
    assert "findings.json: is a symlink" in rejected(linked)

    latin = tmp_path / "latin"
    latin.mkdir()
    (latin / "findings.json").write_bytes(b'{"version": 1, "findings": [], "tool": "\xe9"}')
    assert "is not UTF-8" in rejected(latin)

    empty = tmp_path / "empty"
    empty.mkdir()
    assert "an audit agent must write one" in rejected(empty)

    deep = tmp_path / "deep"
    deep.mkdir()
    (deep / "x.sarif").write_text("[" * 100_000 + "]" * 100_000)
    assert "x.sarif" in rejected(deep)


def test_a_file_or_key_name_with_escapes_is_spelled_out_in_the_reason(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "evil\x1b]0;pwned\x07\u202e.sarif").write_text("not json")
    key = "k\x1b[2J\x9b"
    (out / "findings.json").write_text(json.dumps({"version": 1, "findings": [], key: 1}))
    message = rejected(out)
    assert "evil\\x1b]0;pwned\\x07\\u202e.sarif: Invalid JSON" in message
    assert "findings.json: k\\x1b[2J\\x9b: Extra inputs are not permitted" in message
    assert not any(char in message for char in "\x1b\x07\x9b\u202e")


def test_bad_sarif_is_rejected_with_its_place(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.sarif").write_text(sarif([sarif_result("file:///etc/shadow", 1)]))
    (out / "b.sarif").write_text(sarif([sarif_result("src/x.py", 0)]))
    (out / "c.sarif").write_text(json.dumps({"version": "2.0.0", "runs": []}))
    (out / "d.sarif").write_text(sarif([sarif_result("../x.py", 1)]))
    (out / "e.sarif").write_text(
        sarif([sarif_result("src/x.py", 1, properties={"security-severity": "high"})])
    )
    message = rejected(out)
    assert "a.sarif: runs[0].results[0]: 'file:///etc/shadow' is absolute" in message
    assert (
        "b.sarif: runs[0].results[0].locations[0].physicalLocation.region.startLine: Input should be greater"
        in message
    )
    assert "c.sarif: version: Input should be '2.1.0'" in message
    assert "d.sarif: runs[0].results[0].file: '../x.py' climbs out" in message
    assert "e.sarif: runs[0].results[0]: properties.security-severity is not a score" in message


def test_one_agents_bad_output_does_not_stop_the_others(tmp_path: Path) -> None:
    good = write_findings(tmp_path / "good", [finding(file="a.py", line=1)])
    bad = write_findings(tmp_path / "bad", [finding(file="../a.py", line=1)])
    loaded, refused = [], {}
    for name, directory in (("good", good), ("bad", bad)):
        try:
            loaded.append(load_output(directory, name, 1))
        except FindingsError as exc:
            refused[name] = str(exc)
    assert [part.agent for part in loaded] == ["good"]
    assert "climbs out" in refused["bad"]
    assert merge_findings(loaded).agents == ["good"]


def make(agent: str, *findings: dict[str, Any]) -> AgentFindings:
    return AgentFindings(agent, 1, [Finding.model_validate(f) for f in findings])


def test_five_agents_duplicates_merged_with_agreement_and_conflicts() -> None:
    sqli = {"title": "SQL injection", "file": "src/db.py", "line": 12}
    mfa = {"title": "No MFA on root", "asset": "AWS root account"}
    parts = [
        make("a1", finding(id="1", **sqli), finding(id="2", severity="medium", **mfa)),
        make(
            "a2",
            finding(id="x", tool="semgrep", rule="py.sqli", **{**sqli, "title": "sql  Injection."}),
        ),
        make(
            "a3",
            finding(id="y", severity="medium", **sqli),
            finding(id="z", severity="low", title="Weak hash", file="src/h.py"),
        ),
        make("a4", finding(id="m", severity="medium", **{**mfa, "asset": "aws ROOT  account"})),
        make("a5"),  # found nothing, and said so
    ]

    merged = merge_findings(parts)

    assert merged.agents == ["a1", "a2", "a3", "a4", "a5"]
    by_title = {f.title: f for f in merged.findings}
    sql = by_title["SQL injection"]
    assert (sql.agents, sql.agreement, sql.severity) == (["a1", "a2", "a3"], 3, "high")
    assert sorted(r.severity for r in sql.reported) == ["high", "high", "medium"]
    assert sql.rules == ["py.sqli"]
    assert sql.tools == ["semgrep"]
    no_mfa = by_title["No MFA on root"]
    assert (no_mfa.agents, no_mfa.agreement, no_mfa.severity) == (["a1", "a4"], 2, "medium")
    assert by_title["Weak hash"].agreement == 1
    assert len(merged.findings) == 3
    assert [f.severity for f in merged.findings] == ["high", "medium", "low"]  # most severe first
    (conflict,) = merged.conflicts
    assert conflict.location == "file:src/db.py:12"
    assert conflict.severities == {"a1": "high", "a2": "high", "a3": "medium"}
    assert conflict.findings == [sql.id]
    assert Summary.of(merged.findings) == Summary(high=1, medium=1, low=1, total=3)
    assert merge_findings(reversed(parts)) == merged  # order of arrival does not matter


def test_two_different_findings_at_one_place_are_no_severity_conflict() -> None:
    """radon's "too complex" and vulture's "unused method" on one line are two findings."""
    place = {"file": "src/app.py", "line": 3}
    radon = finding(
        id="cc", severity="medium", title="method A.run is too complex", tool="radon", rule="cc-D"
    )
    vulture = finding(
        id="v", severity="low", title="Unused method 'run'", tool="vulture", rule="unused-method"
    )
    bucket = finding(id="b1", severity="critical", title="Public bucket", asset="s3://logs")
    policy = finding(id="b2", severity="low", title="Bucket policy is broad", asset="S3://logs")
    parts = [
        make("radon", {**radon, **place}),
        make("vulture", {**vulture, **place}),
        make("a", bucket),
        make("b", policy),
    ]
    merged = merge_findings(parts)
    assert len(merged.findings) == 4
    assert merged.conflicts == []


def test_the_same_rule_or_cwe_at_one_place_rated_differently_is_a_conflict() -> None:
    # two agents running one tool, whose versions word the finding differently
    old = finding(id="1", title="Use of shell=True", tool="bandit", rule="B602")
    new = finding(
        id="2", severity="medium", title="subprocess with shell=True", tool="bandit", rule="B602"
    )
    # two tools naming one weakness by its CWE
    cwe = finding(id="3", severity="critical", title="OS command injection", rule="CWE-78")
    tagged = finding(id="4", severity="low", title="Shell run", rule="external/cwe/cwe-78")
    # one rule id from two tools is two rules; one agent's own two ratings are no disagreement
    ruff = finding(id="5", severity="low", title="Line too long", tool="ruff", rule="E501")
    other = finding(id="6", severity="high", title="Other thing", tool="other", rule="E501")
    twice = finding(id="7", severity="low", title="Shell call again", tool="bandit", rule="B602")
    at = [{"file": f, "line": 1} for f in ("a.py", "b.py", "c.py")]
    parts = [
        make("a1", {**old, **at[0]}, {**cwe, **at[1]}, {**ruff, **at[2]}, {**twice, **at[0]}),
        make("a2", {**new, **at[0]}, {**tagged, **at[1]}, {**other, **at[2]}),
    ]
    merged = merge_findings(parts)
    assert [(c.location, c.severities, len(c.findings)) for c in merged.conflicts] == [
        ("file:a.py:1", {"a1": "high", "a2": "medium"}, 3),
        ("file:b.py:1", {"a1": "critical", "a2": "low"}, 2),
    ]
    assert "rule B602 of bandit" in merged.conflicts[0].reason
    assert "CWE-78" in merged.conflicts[1].reason
    assert merge_findings(reversed(parts)) == merged


def test_fingerprint_ignores_tool_rule_severity_and_id() -> None:
    one = Finding.model_validate(finding(file="a.py", line=3, tool="t1", rule="r1"))
    two = Finding.model_validate(
        finding(
            id="other", severity="low", file="./a.py", line=3, tool="t2", title="sql injection!"
        )
    )
    three = Finding.model_validate(finding(file="a.py", line=4))
    assert fingerprint(one) == fingerprint(two) != fingerprint(three)
