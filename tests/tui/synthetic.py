"""Fixed event logs for console tests: every timestamp is fixed, so with a frozen clock the
screens are the same on every run (snapshot tests) and nothing needs an engine."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from pathlib import Path
from typing import Literal

from corral.core.log import EventWriter
from corral.core.log import events as ev
from corral.core.runs.rundir import RunDir, runs_root
from corral.core.runtime.procfs import process_start_time

T0 = 1_700_000_000.0
NOW = T0 + 300.0
"""The frozen clock of the synthetic runs: five minutes after the start."""


def frozen_clock() -> float:
    return NOW


def this_engine(user: str = "alice") -> ev.EngineInfo:
    """The test process poses as the engine, so the run counts as live."""
    pid = os.getpid()
    return ev.EngineInfo(pid=pid, start_time=process_start_time(pid) or 0.0, host="ci", user=user)


def dead_engine() -> ev.EngineInfo:
    return ev.EngineInfo(pid=2**22 - 7, start_time=1.0, host="ci", user="alice")


def write_events(rundir: RunDir, events: list[ev.EventBase]) -> None:
    async def write() -> None:
        writer, _ = await EventWriter.open(rundir.events)
        await writer.append_many(events)
        await writer.close()

    rundir.create()
    asyncio.run(write())


def summary(
    agent: str,
    kind: Literal["coding", "audit"] = "coding",
    *,
    retries: int = 0,
    depends_on: list[str] | None = None,
) -> ev.AgentSummary:
    return ev.AgentSummary(
        id=agent,
        kind=kind,
        command=["sh", "-c", f"work-on {agent}"],
        heartbeat_timeout=60.0,
        retries=retries,
        depends_on=depends_on or [],
    )


def at(seconds: float) -> float:
    return T0 + seconds


def started(
    run_id: str, repo: Path, agents: list[ev.AgentSummary], engine: ev.EngineInfo, snapshot: str
) -> ev.RunStarted:
    return ev.RunStarted(
        ts=at(0),
        run_id=run_id,
        name="nightly",
        repo=str(repo),
        base_ref="main",
        snapshot=snapshot,
        plan_sha256="0" * 64,
        agents=agents,
        max_parallel=4,
        required_successes=4,
        worktree_root="/work/wt",
        engine=engine,
    )


def launch(
    agent: str, attempt: int, when: float, pid: int, root: str = "/work/runs/r1"
) -> list[ev.EventBase]:
    return [
        ev.AgentStarting(
            ts=at(when),
            agent=agent,
            attempt=attempt,
            workspace=f"/work/wt/nightly/{agent}-{attempt}",
            branch=f"corral/r1/{agent}/{attempt}",
            output_dir=f"{root}/agents/{agent}/{attempt}/out",
            log_path=f"{root}/agents/{agent}/{attempt}/output.log",
        ),
        ev.AgentStarted(
            ts=at(when + 0.2), agent=agent, attempt=attempt, pid=pid, proc_start_time=at(when)
        ),
    ]


def beats(
    agent: str, attempt: int, start: float, end: float, every: float, source: ev.HeartbeatSource
) -> list[ev.EventBase]:
    out: list[ev.EventBase] = []
    t = start
    while t <= end:
        out.append(ev.AgentHeartbeat(ts=at(t), agent=agent, attempt=attempt, source=source))
        t += every
    return out


def live_run_events(
    repo: Path,
    engine: ev.EngineInfo,
    snapshot: str = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678",
    root: str = "/work/runs/r1",
) -> list[ev.EventBase]:
    """A dashboard worth looking at: every kind of agent state, locks with a waiter, conflicts."""
    agents = [
        summary("api-auth"),
        summary("api-billing"),
        summary("docs"),
        summary("lint", "audit"),
        summary("sec-scan", "audit"),
        summary("migrate", retries=2),
        summary("ui", depends_on=["api-auth"]),
        summary("perf", "audit"),
        summary("flaky"),
    ]
    out: list[ev.EventBase] = [started("20231114-221320-abcdef", repo, agents, engine, snapshot)]
    out += (
        launch("api-auth", 1, 1, 101, root)
        + launch("api-billing", 1, 2, 102)
        + launch("docs", 1, 3, 103)
    )
    out += launch("lint", 1, 4, 104) + launch("sec-scan", 1, 5, 105) + launch("migrate", 1, 6, 106)
    out.append(
        ev.AgentWaiting(
            ts=at(6), agent="ui", attempt=1, reason="waiting for api-auth", on=["api-auth"]
        )
    )
    out += launch("perf", 1, 7, 107) + launch("flaky", 1, 8, 108)
    out.append(
        ev.LockAcquired(
            ts=at(9),
            lock="ports",
            agent="api-auth",
            attempt=1,
            request_id="r1",
            token=1,
            declared=True,
        )
    )
    out += beats("docs", 1, 10, 60, 5, "output")
    out.append(
        ev.AgentFinished(
            ts=at(62), agent="docs", attempt=1, outcome="succeeded", exit_code=0, duration=59
        )
    )
    out.append(
        ev.AgentFinished(
            ts=at(70), agent="lint", attempt=1, outcome="succeeded", exit_code=0, duration=66
        )
    )
    out.append(
        ev.AgentFinished(
            ts=at(80),
            agent="migrate",
            attempt=1,
            outcome="failed",
            exit_code=2,
            reason="exit status 2",
        )
    )
    out.append(
        ev.AgentRetried(
            ts=at(80),
            agent="migrate",
            attempt=2,
            delay=1.0,
            reason="attempt 1 failed: exit status 2",
        )
    )
    out += launch("migrate", 2, 82, 109)
    out.append(
        ev.LockAcquired(
            ts=at(260),
            lock="db-schema",
            agent="migrate",
            attempt=2,
            request_id="r2",
            token=7,
            ttl=60.0,
            expires_at=at(320),
        )
    )
    out.append(
        ev.LockWaiting(
            ts=at(270),
            lock="db-schema",
            agent="api-billing",
            attempt=1,
            request_id="r3",
            holder="migrate",
            holder_token=7,
        )
    )
    out.append(
        ev.LockAcquired(
            ts=at(100),
            lock="release-notes",
            agent="docs",
            attempt=1,
            request_id="r4",
            token=3,
            ttl=30.0,
            expires_at=at(130),
        )
    )
    out.append(ev.LockReleased(ts=at(110), lock="release-notes", token=3, agent="docs"))
    out.append(
        ev.AgentFinished(
            ts=at(120),
            agent="perf",
            attempt=1,
            outcome="timed_out",
            reason="ran past its timeout of 120s",
        )
    )
    out.append(
        ev.AgentDeadLettered(ts=at(120), agent="perf", attempts=1, reason="attempt 1 timed_out")
    )
    out.append(
        ev.AgentFinished(
            ts=at(130), agent="flaky", attempt=1, outcome="killed", reason="killed by alice"
        )
    )
    out.append(ev.AgentCancelled(ts=at(130), agent="flaky", by="alice", reason="not needed"))
    out.append(
        ev.ConflictPredicted(
            ts=at(200),
            key="api-auth+api-billing",
            agents=["api-auth", "api-billing"],
            files=[
                ev.ConflictFile(path="src/session.py", kind="content"),
                ev.ConflictFile(path="src/models/user.py", kind="content"),
            ],
        )
    )
    out.append(
        ev.ConflictPredicted(
            ts=at(210),
            key="migrate+@base",
            agents=["migrate", "@base"],
            files=[ev.ConflictFile(path="db/schema.sql", kind="modify_delete")],
        )
    )
    out += beats("api-auth", 1, 200, 297, 2, "beat")
    out.append(
        ev.AgentHeartbeat(
            ts=at(298),
            agent="api-auth",
            attempt=1,
            source="beat",
            progress=0.4,
            message="refactoring login flow",
        )
    )
    out += beats("api-billing", 1, 150, 280, 10, "output")
    out += beats("migrate", 2, 240, 295, 3, "beat")
    out.append(
        ev.AgentHeartbeat(
            ts=at(296),
            agent="migrate",
            attempt=2,
            source="beat",
            progress=0.75,
            message="\x1b[31mapplying\x1b]0;pwned\x07 0042_users.sql\x1b[2J",
        )
    )
    out += beats("sec-scan", 1, 100, 200, 20, "cpu")
    out.append(ev.AgentStalled(ts=at(260), agent="sec-scan", attempt=1, silent_for=60.0))
    return out


REPORT = {
    "format": "corral-report",
    "run_id": "r1",
    "findings": [
        {
            "id": "CF-1",
            "severity": "critical",
            "title": "SQL built from request input",
            "location": "file:src/db.py:42",
            "file": "src/db.py",
            "line": 42,
            "agents": ["sec-scan"],
            "rules": ["sqli"],
        },
        {
            "id": "CF-2",
            "severity": "high",
            "title": "Session cookie without Secure",
            "location": "file:src/session.py:7",
            "file": "src/session.py",
            "line": 7,
            "agents": ["sec-scan", "lint"],
            "rules": ["cookie-secure"],
        },
        {
            "id": "CF-3",
            "severity": "high",
            "title": "Password hash uses MD5",
            "location": "file:src/auth.py:88",
            "file": "src/auth.py",
            "line": 88,
            "agents": ["lint"],
            "rules": ["weak-hash"],
        },
        {
            "id": "CF-4",
            "severity": "medium",
            "title": "Unpinned dependency\x1b]52;c;ZXZpbA==\x07",
            "location": "file:requirements.txt:3",
            "file": "requirements.txt",
            "line": 3,
            "agents": ["lint"],
            "rules": ["pin"],
        },
        {
            "id": "CF-5",
            "severity": "low",
            "title": "TODO left in code",
            "location": "asset:payments service",
            "asset": "payments service",
            "agents": ["lint"],
            "rules": ["todo"],
        },
    ],
    "finding_conflicts": [
        {
            "location": "file:src/session.py:7",
            "severities": {"sec-scan": "high", "lint": "low"},
            "findings": ["CF-2"],
            "reason": "agents rated this location differently; decide which severity stands",
        }
    ],
}


def review_run_events(
    repo: Path, report: Path, engine: ev.EngineInfo, snapshot: str, integration: str
) -> list[ev.EventBase]:
    """A finished run with a report: two branches merged, one left out on a conflict."""
    sha = hashlib.sha256(report.read_bytes()).hexdigest()
    agents = [
        summary("api-auth"),
        summary("api-billing"),
        summary("lint", "audit"),
        summary("sec-scan", "audit"),
    ]
    out: list[ev.EventBase] = [started("20231114-221320-abcdef", repo, agents, engine, snapshot)]
    for number, agent in enumerate(("api-auth", "api-billing", "lint", "sec-scan")):
        out += launch(agent, 1, 1 + number, 200 + number)
        out.append(
            ev.AgentFinished(
                ts=at(100 + number), agent=agent, attempt=1, outcome="succeeded", exit_code=0
            )
        )
    out.append(
        ev.ConflictPredicted(
            ts=at(50),
            key="api-auth+api-billing",
            agents=["api-auth", "api-billing"],
            files=[ev.ConflictFile(path="src/app.py", kind="content")],
        )
    )
    out.append(
        ev.BranchMerged(
            ts=at(110),
            agent="api-auth",
            attempt=1,
            branch="corral/r1/api-auth/1",
            commit=integration,
        )
    )
    out.append(
        ev.BranchLeftOut(
            ts=at(111),
            agent="api-billing",
            attempt=1,
            branch="corral/r1/api-billing/1",
            reason="conflicts with api-auth on src/app.py",
            conflicts_with=["api-auth"],
            files=[ev.ConflictFile(path="src/app.py", kind="content")],
        )
    )
    out.append(
        ev.VerificationFinished(
            ts=at(120),
            command=["pytest", "-q"],
            passed=True,
            exit_code=0,
            log_path="/work/runs/r1/verify.log",
            commit=integration,
        )
    )
    out.append(
        ev.RunFinished(
            ts=at(121), verdict="passed", succeeded=4, required=4, reason="4 of 4 agents succeeded"
        )
    )
    out.append(
        ev.ReportWritten(
            ts=at(122), path=str(report), sha256=sha, findings=5, conflicts=1, synthesized=True
        )
    )
    out.append(ev.EngineStopped(ts=at(123), reason="finished"))
    return out


def write_report(path: Path) -> Path:
    path.write_text(json.dumps(REPORT, indent=2) + "\n")
    return path


def make_live_run(repo: Path, *, live: bool = True, root: str = "/work/runs/r1") -> RunDir:
    rundir = RunDir(runs_root(repo / ".git") / "20231114-221320-abcdef")
    engine = this_engine() if live else dead_engine()
    write_events(rundir, live_run_events(repo, engine, root=root))
    return rundir
