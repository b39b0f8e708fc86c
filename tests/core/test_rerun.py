"""Re-running a left-out agent on the integration branch (`corral rerun`, core/runs/rerun.py):
a real run whose two coding agents conflict, the re-run of the one left out, and both landed."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from corral.core.log import events as ev
from corral.core.log.state import AgentState, RunState
from corral.core.log.state_models import ReviewState
from corral.core.runs.rerun import RerunRefused, check_rerun, toml_bytes
from corral.core.runs.rundir import RunDir, runs_root
from tests.conftest import git, wait_until
from tests.core.engine_helpers import agent_block, corral, only_run, state_of, write_plan

SEES_THEN_EDITS = "cp README.md seen-by-beta.txt; printf 'beta was here\\n' > README.md"
"""beta keeps a copy of README.md as its worktree had it, then rewrites it (as alpha does)."""


def _sha(repo: Path, run: str) -> str:
    shown = corral(repo, "review", "show", run, check=True)
    return shown.stdout.split("report sha256: ")[1].split()[0]


def _finished(repo: Path, run: str) -> RunState:
    rundir = RunDir(runs_root(repo / ".git") / run)

    def done() -> RunState | None:
        if not rundir.events.exists():
            return None
        state = state_of(rundir)
        return state if state.status == "finished" and state.report is not None else None

    found = wait_until(done, timeout=60, what=f"run {run} to finish")
    assert isinstance(found, RunState)
    return found


def test_a_left_out_agent_reruns_on_the_integration_and_lands_after_its_origin(
    repo: Path, tmp_path: Path
) -> None:
    body = agent_block(
        "alpha", ["sh", "-c", "printf 'alpha was here\\n' > README.md"]
    ) + agent_block("beta", ["sh", "-c", SEES_THEN_EDITS], depends_on=["alpha"], retries=1)
    plan = write_plan(tmp_path, body, header="min_success = 1\n")
    base = git(repo, "rev-parse", "main")
    corral(repo, "run", str(plan), "--quiet", check=True)
    first = only_run(repo)
    old = state_of(first)
    assert [m.agent for m in old.merge.merged] == ["alpha"]
    assert [left.agent for left in old.merge.left_out] == ["beta"]
    integration = old.merge.integration_commit
    assert integration is not None
    report = (first.path / "report.md").read_text()
    assert f"`corral rerun {first.run_id} beta`" in report, "the report says how to redo it"

    merged = corral(repo, "rerun", first.run_id, "alpha")
    assert merged.returncode == 1
    assert "alpha was not left out of run" in merged.stderr
    assert "(left out: beta)" in merged.stderr
    unknown = corral(repo, "rerun", first.run_id, "nobody")
    assert unknown.returncode == 1
    assert "has no agent nobody; its agents: alpha, beta" in unknown.stderr

    started = corral(repo, "rerun", first.run_id, "beta", check=True)
    found = re.search(r"run (\S+) is running in the background", started.stdout)
    assert found, started.stdout
    second = found[1]
    new = _finished(repo, second)
    assert new.snapshot == integration, "the re-run starts from what the review would land"
    assert new.base_ref == "main"
    assert new.rerun_of == ev.RerunOrigin(
        run=first.run_id, agents=["beta"], integration_commit=integration
    )
    assert list(new.agents) == ["beta"]
    frozen = tomllib.loads((runs_root(repo / ".git") / second / "plan.toml").read_text())
    assert [agent["id"] for agent in frozen["agent"]] == ["beta"]
    assert frozen["agent"][0]["depends_on"] == [], "alpha is not re-run: beta waits for nothing"
    assert frozen["agent"][0]["retries"] == 1, "its own settings are kept"
    target = new.merge.integration_commit
    assert target is not None
    assert git(repo, "show", f"{target}:seen-by-beta.txt") == "alpha was here", (
        "beta's worktree held alpha's change"
    )
    listed = corral(repo, "runs", check=True).stdout
    assert f"re-runs beta of {first.run_id}" in listed

    early = corral(repo, "review", "approve", second, "--sha", _sha(repo, second))
    assert early.returncode == 1
    assert f"approve run {first.run_id} first" in early.stderr
    assert git(repo, "rev-parse", "main") == base, "nothing landed"

    corral(repo, "review", "approve", first.run_id, "--sha", _sha(repo, first.run_id), check=True)
    corral(repo, "review", "approve", second, "--sha", _sha(repo, second), check=True)
    assert git(repo, "show", "main:README.md") == "beta was here"
    assert git(repo, "show", "main:seen-by-beta.txt") == "alpha was here"
    assert git(repo, "rev-parse", "main^2") == target
    assert git(repo, "rev-parse", "main^1^2") == integration, "on top of the first approval"
    assert git(repo, "status", "--porcelain") == ""


@pytest.mark.parametrize("origin", ["approved", "rejected"])
def test_a_rerun_lands_on_an_approved_origin_and_never_on_a_rejected_one(
    repo: Path, tmp_path: Path, origin: str
) -> None:
    body = agent_block(
        "alpha", ["sh", "-c", "printf 'alpha was here\\n' > README.md"]
    ) + agent_block("beta", ["sh", "-c", SEES_THEN_EDITS])
    corral(repo, "run", str(write_plan(tmp_path, body, header="min_success = 1\n")), "--quiet")
    first = only_run(repo).run_id
    if origin == "approved":  # before the re-run starts: its base is already there
        corral(repo, "review", "approve", first, "--sha", _sha(repo, first), check=True)
    started = corral(repo, "rerun", first, "beta", check=True)
    found = re.search(r"run (\S+) is running in the background", started.stdout)
    assert found, started.stdout
    _finished(repo, found[1])
    base = git(repo, "rev-parse", "main")
    if origin == "rejected":
        shown = _sha(repo, first)
        corral(repo, "review", "reject", first, "--sha", shown, "--reason", "no", check=True)
        refused = corral(repo, "review", "approve", found[1], "--sha", _sha(repo, found[1]))
        assert refused.returncode == 1
        assert f"run {first} was rejected by" in refused.stderr
        assert git(repo, "rev-parse", "main") == base, "nothing landed"
        return
    corral(repo, "review", "approve", found[1], "--sha", _sha(repo, found[1]), check=True)
    assert git(repo, "show", "main:README.md") == "beta was here"
    assert git(repo, "show", "main:seen-by-beta.txt") == "alpha was here"


def _ended() -> RunState:
    """A finished run in which alpha merged and beta was left out."""
    state = RunState(run_id="r1", status="finished")
    state.agents = {name: AgentState(id=name, kind="coding", command=["true"]) for name in "ab"}
    state.merge.integration_commit = "c" * 40
    state.merge.left_out = [ev.BranchLeftOut(agent="b", attempt=1, branch="x", reason="conflict")]
    return state


@pytest.mark.parametrize(
    ("change", "said"),
    [
        ("running", "run r1 has not finished"),
        ("rejected", "run r1 was rejected by bob"),
        ("merged nothing", "run r1 has no integration branch"),
    ],
)
def test_a_rerun_is_refused_saying_why(change: str, said: str) -> None:
    state = _ended()
    if change == "running":
        state.status = "running"
    elif change == "rejected":
        state.review = ReviewState(decision="rejected", by="bob", report_sha256="0", log_head="0")
    else:
        state.merge.integration_commit = None
    with pytest.raises(RerunRefused, match=said):
        check_rerun(state, ["b"])
    check_rerun(_ended(), ["b"])  # the same run, unchanged, may be re-run


def test_the_narrowed_plan_is_written_as_toml_that_reads_back_the_same() -> None:
    data = {
        "run": {"name": 'a "quoted"\x7f name', "verify": ["pytest", "-q"], "backoff": 0.5},
        "defaults": {"retries": 2, "env": {"A": "1"}},
        "agent": [{"id": "beta", "command": ["sh", "-c", "echo 'hi'\n"], "tty": True}],
    }
    assert tomllib.loads(toml_bytes(data).decode()) == data
