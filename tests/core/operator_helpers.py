"""Helpers for the tests of what a person does once the engine is done (review, operator
actions, integrity): a finished run written straight into a real repository, without running an
engine, and an agent's environment that operator actions must refuse."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

from corral.core.log import EventWriter
from corral.core.log import events as ev
from corral.core.runs.rundir import RunDir, runs_root
from corral.core.trust.integrity import record
from tests.conftest import git
from tests.core.engine_helpers import events_of

FAKE_AGENT = {
    "CORRAL_RUN_ID": "other-run",
    "CORRAL_AGENT_ID": "intruder",
    "CORRAL_ATTEMPT": "3",
    "CORRAL_AGENT_TOKEN": "f00d" * 8,
    "CORRAL_SOCKET": "/nonexistent/control.sock",
}
"""The CORRAL_* variables of an attempt of another run: set them and you are "inside an agent"."""


def refusals(rundir: RunDir) -> list[ev.OperatorActionRefused]:
    """The operator actions `rundir`'s log recorded as refused (asked from inside an agent)."""
    return [e for e in events_of(rundir) if isinstance(e, ev.OperatorActionRefused)]


def make_reviewable_run(
    repo: Path, *, synthesized: bool = True, distinct: bool = False, baseline: bool = False
) -> tuple[RunDir, str, str]:
    """A finished coding run whose integration branch holds one change; returns (run, sha, commit).

    `baseline`: the run also recorded the repository at its start (IntegrityRecorded), as the
    engine does, so the integrity check before approve has something to compare with."""
    snapshot = git(repo, "rev-parse", "main")
    git(repo, "switch", "-q", "-c", "corral/r1/integration")
    (repo / "src" / "app.py").write_text("print('merged work')\n")
    git(repo, "commit", "-qam", "integration")
    integration = git(repo, "rev-parse", "HEAD")
    git(repo, "switch", "-q", "main")
    rundir = RunDir(runs_root(repo / ".git") / "r1")
    rundir.create()
    rundir.plan.write_text(
        f"[run]\nrequire_distinct_reviewer = {'true' if distinct else 'false'}\n[[agent]]\nid='a'\ncommand=['true']\n"
        if distinct
        else "[[agent]]\nid='a'\ncommand=['true']\n"
    )
    report = rundir.path / "report.json"
    report.write_text('{"findings": []}\n')
    sha = hashlib.sha256(report.read_bytes()).hexdigest()
    recorded = [record(repo, repo / ".git", rundir)] if baseline else []

    async def write() -> None:
        writer, _ = await EventWriter.open(rundir.events)
        engine = ev.EngineInfo(pid=1, start_time=0.0, host="h", user="alice")
        summary = ev.AgentSummary(id="a", kind="coding", command=["true"])
        await writer.append_many(
            [
                ev.RunStarted(
                    run_id="r1",
                    name="r1",
                    repo=str(repo),
                    base_ref="main",
                    snapshot=snapshot,
                    plan_sha256="0" * 64,
                    agents=[summary],
                    max_parallel=1,
                    required_successes=1,
                    worktree_root=str(repo / ".git" / "corral" / "worktrees"),
                    engine=engine,
                ),
                *recorded,
                ev.AgentFinished(agent="a", attempt=1, outcome="succeeded"),
                ev.BranchMerged(agent="a", attempt=1, branch="corral/r1/a/1", commit=integration),
                ev.RunFinished(verdict="passed", succeeded=1, required=1, reason="ok"),
                ev.ReportWritten(
                    path=str(report), sha256=sha, findings=0, conflicts=0, synthesized=synthesized
                ),
            ]
        )
        await writer.close()

    asyncio.run(write())
    return rundir, sha, integration
