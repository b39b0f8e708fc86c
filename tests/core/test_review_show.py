"""`corral review show`: through $PAGER on a terminal (never when piped), the findings filters
and the JSON document. A real run directory, the real command, a real pseudo-terminal."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import pty
import select
import shlex
import subprocess
import time
from pathlib import Path

import pytest

from corral.core.log import EventWriter
from corral.core.log import events as ev
from corral.core.runs.rundir import RunDir
from tests.core.engine_helpers import CORRAL, corral
from tests.core.operator_helpers import make_reviewable_run

FINDINGS = [
    {
        "id": "CF-1",
        "severity": "critical",
        "title": "SQL built from request input",
        "location": "file:src/db.py:42",
        "file": "src/db.py",
        "line": 42,
        "detail": "The id goes into the query.\x1b[2J",
        "recommendation": "Bind it as a parameter.",
        "agents": ["sec-scan"],
        "rules": ["sqli"],
        "tools": ["semgrep"],
    },
    {
        "id": "CF-2",
        "severity": "high",
        "title": "Session cookie without Secure",
        "location": "file:src/session.py:7",
        "file": "src/session.py",
        "line": 7,
        "agents": ["lint"],
        "rules": ["cookie-secure"],
    },
    {
        "id": "CF-3",
        "severity": "low",
        "title": "TODO left in code",
        "location": "asset:payments",
        "asset": "payments",
        "agents": ["lint"],
        "rules": ["todo"],
    },
]


def reviewable(repo: Path) -> tuple[RunDir, str]:
    """A finished run whose report holds three findings (a newer report_written names it)."""
    rundir, _, _ = make_reviewable_run(repo)
    report = rundir.path / "report.json"
    report.write_text(json.dumps({"format": "corral-report", "findings": FINDINGS}, indent=2))
    (rundir.path / "report.md").write_text("# Report of r1\n\nthree findings\n")
    sha = hashlib.sha256(report.read_bytes()).hexdigest()

    async def write() -> None:
        writer, _ = await EventWriter.open(rundir.events)
        await writer.append(
            ev.ReportWritten(
                path=str(report), sha256=sha, findings=3, conflicts=0, synthesized=True
            )
        )
        await writer.close()

    asyncio.run(write())
    return rundir, sha


def on_a_terminal(repo: Path, *args: str, env: dict[str, str]) -> str:
    """Run corral with its stdout on a pseudo-terminal; what the terminal showed."""
    main, secondary = pty.openpty()
    proc = subprocess.Popen(
        [*CORRAL, *args],
        cwd=repo,
        stdin=subprocess.DEVNULL,
        stdout=secondary,
        stderr=secondary,
        env={**os.environ, **env},
    )
    os.close(secondary)
    shown = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([main], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # EIO: every writer has closed the terminal
                break
            if not chunk:
                break
            shown += chunk
        elif proc.poll() is not None:
            break
    os.close(main)
    assert proc.wait(timeout=10) == 0, shown.decode(errors="replace")
    return shown.decode(errors="replace")


def test_on_a_terminal_show_goes_through_the_pager(repo: Path, tmp_path: Path) -> None:
    rundir, sha = reviewable(repo)
    paged = tmp_path / "paged"
    pager = tmp_path / "pager.sh"
    pager.write_text(f'#!/bin/sh\necho "args: $*" > {shlex.quote(str(paged))}\ncat >> {paged}\n')
    pager.chmod(0o755)
    shown = on_a_terminal(repo, "review", "show", rundir.run_id, env={"PAGER": f"{pager} --flag"})
    assert "report sha256" not in shown, "the text went to the pager, not the terminal"
    text = paged.read_text()
    assert text.startswith("args: --flag\n")
    assert "# Report of r1" in text
    assert f"report sha256: {sha}" in text


def test_piped_show_prints_and_starts_no_pager(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rundir, sha = reviewable(repo)
    marker = tmp_path / "pager-ran"
    monkeypatch.setenv("PAGER", f"touch {marker}")
    shown = corral(repo, "review", "show", rundir.run_id, check=True).stdout
    assert not marker.exists()
    assert "# Report of r1" in shown
    assert f"report sha256: {sha}" in shown


def test_findings_and_severity_filter_the_listing(repo: Path) -> None:
    rundir, sha = reviewable(repo)
    shown = corral(repo, "review", "show", rundir.run_id, "--severity", "high", check=True).stdout
    assert shown.startswith("2 of 3 findings (at least high)\n")
    assert "SQL built from request input" in shown
    assert "Session cookie without Secure" in shown
    assert "TODO left in code" not in shown
    assert "→ Bind it as a parameter." in shown
    assert "The id goes into the query." in shown
    assert "\x1b" not in shown, "an agent's escape never reaches the terminal"
    assert "rule sqli  tool semgrep" in shown
    assert f"report sha256: {sha}" in shown

    shown = corral(repo, "review", "show", rundir.run_id, "--findings", "lint", check=True).stdout
    assert shown.startswith("2 of 3 findings (matching 'lint')\n")
    assert "SQL built" not in shown
    words = corral(repo, "review", "show", rundir.run_id, "--findings", "lint todo").stdout
    assert words.startswith("1 of 3 findings")
    everything = corral(repo, "review", "show", rundir.run_id, "--findings", check=True).stdout
    assert everything.startswith("3 of 3 findings\n")
    bad = corral(repo, "review", "show", rundir.run_id, "--severity", "severe")
    assert bad.returncode == 2
    assert "invalid choice: 'severe'" in bad.stderr


def test_json_is_the_report_or_the_findings_asked_for(repo: Path) -> None:
    rundir, sha = reviewable(repo)
    whole = json.loads(corral(repo, "review", "show", rundir.run_id, "--json", check=True).stdout)
    assert whole["report_sha256"] == sha
    assert whole["run_id"] == "r1"
    assert whole["report"]["findings"] == FINDINGS
    assert [f["id"] for f in whole["findings"]] == ["CF-1", "CF-2", "CF-3"]
    assert whole["review"] is None
    assert whole["tampering_unacknowledged"] == []
    some = json.loads(
        corral(
            repo,
            "review",
            "show",
            rundir.run_id,
            "--json",
            "--severity",
            "high",
            "--findings",
            "cookie",
            check=True,
        ).stdout
    )
    assert "report" not in some, "a filtered document holds only what matched"
    assert some["findings"] == [FINDINGS[1]]
