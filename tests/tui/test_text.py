"""Agent text is drawn inert, and findings are read from whatever shape an agent wrote."""

from __future__ import annotations

import json
from pathlib import Path

from corral.core.findings.display import agent_findings, counts_by_severity, read_report
from corral.tui.look import freshness, sparkline
from corral.tui.text import inert, inert_lines


def test_escapes_and_controls_are_removed() -> None:
    hostile = "ok\x1b[31mred\x1b[0m\x1b]0;title\x07\x1b]52;c;ZXZpbA==\x07\x1bP+q\x1b\\\x9b2J\x07\u202edone"
    assert inert(hostile) == "okreddone"
    assert inert("a\nb\tc") == "a ⏎ b c"
    assert inert("x" * 50, limit=10) == "x" * 9 + "…"


def test_output_lines_behave_like_a_terminal() -> None:
    assert inert_lines("10%\r50%\r100%\ndone\x1b[K\n") == ["100%", "done", ""]
    assert inert_lines("a\r\nb") == ["a", "b"]


def test_freshness_is_a_glyph_not_only_a_colour() -> None:
    assert freshness(1, 60, False)[0] == "●"
    assert freshness(30, 60, False)[0] == "◐"
    assert freshness(61, 60, False)[0] == "○"
    assert freshness(1, 60, True)[0] == "○"
    assert sparkline([0, 1, 2, 4]) == " ▂▄█"


def test_findings_from_corral_json_and_sarif(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.json").write_text(
        json.dumps(
            {"findings": [{"severity": "high", "title": "x\x1b[2J", "path": "a.py", "line": 3}]}
        )
    )
    sarif = {
        "version": "2.1.0",
        "runs": [
            {
                "results": [
                    {
                        "level": "warning",
                        "ruleId": "R1",
                        "message": {"text": "careful"},
                        "locations": [
                            {
                                "physicalLocation": {
                                    "artifactLocation": {"uri": "b.py"},
                                    "region": {"startLine": 9},
                                }
                            }
                        ],
                    }
                ]
            }
        ],
    }
    (out / "b.sarif").write_text(json.dumps(sarif))
    (out / "c.json").write_text("{not json")
    (out / "link.json").symlink_to("/etc/passwd")
    loaded = agent_findings(str(out), "audit-1")
    assert [(f.severity, f.title, f.location) for f in loaded.findings] == [
        ("high", "x", "a.py:3"),
        ("medium", "careful", "b.py:9"),
    ]
    assert counts_by_severity(loaded.findings) == {"high": 1, "medium": 1}
    assert any("c.json" in p for p in loaded.problems)
    assert any("link.json" in p for p in loaded.problems)


def test_report_is_read_with_the_sha_of_the_bytes_shown(tmp_path: Path) -> None:
    report = tmp_path / "report.json"
    report.write_text('{"findings": []}')
    loaded = read_report(str(report))
    assert loaded.findings == []
    assert len(loaded.sha256) == 64
    assert read_report(str(tmp_path / "missing.json")).problems


def test_an_agent_stream_shows_in_the_header_and_the_progress_cell_made_inert() -> None:
    from corral.core.log import events as ev
    from corral.core.log.state import AgentState, RunState, apply
    from corral.tui.look import progress_text
    from corral.tui.widgets.run_header import header_text

    state = RunState(run_id="r", snapshot="0" * 40)
    state.agents["a"] = AgentState(id="a", kind="coding", command=["claude"], state="running")
    apply(
        state,
        ev.AgentActivity(
            agent="a",
            attempt=1,
            model="claude-sonnet-4-5",
            tokens_in=63542,
            tokens_out=39,
            cost_usd=0.192936,
            cost_source="cli",
            turns=2,
            tool_calls=1,
            tools=[ev.ToolUse(name="Write", summary="hello\x1b[2J.txt")],
        ),
    )
    header = header_text(state, 0.0, engine_live=True, read_only=False).plain
    assert "Σ 63.6k tok $0.19 2t" in header
    cell = progress_text(state.agents["a"]).plain
    assert cell.startswith("63.6k tok $0.19 2t [claude-sonnet-4-5] » Write hello")
    assert "\x1b" not in cell


def test_the_workspace_cell_says_where_a_remote_agent_runs() -> None:
    """Here: the worktree alone; on an `ssh` host: `HOST:PATH`; on a Ray node: the node and its
    host name first. Names from a plan or a node are made inert."""
    from corral.core.log.state import AgentState, AttemptState
    from corral.tui.look import workspace_text

    def cell(**where: str) -> str:
        attempt = AttemptState(number=1, workspace="/wt/a-1", **where)  # type: ignore[arg-type]
        agent = AgentState(id="a", kind="coding", command=["x"], attempts=[attempt])
        return workspace_text(agent).plain

    assert cell() == "/wt/a-1"
    assert cell(host="build-7") == "build-7:/wt/a-1"
    assert cell(node="f" * 40, host="ray-2") == "node ffffffffffff (ray-2) /wt/a-1"
    assert cell(host="evil\x1b[2J") == "evil:/wt/a-1"
