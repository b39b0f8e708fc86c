"""From real worktrees to events to the folded state and the report: one conflict, two sightings."""

from __future__ import annotations

from pathlib import Path

from corral.core.log import events as ev
from corral.core.log.merge_events import integration_events, matrix_events, verification_event
from corral.core.log.state import fold
from corral.core.report.model import build_report
from corral.worktrees.conflicts import ConflictMatrix
from corral.worktrees.integrate import commit_leftovers, integrate
from corral.worktrees.snapshot import snapshot_commit
from corral.worktrees.verify import Verification
from tests.conftest import git
from tests.worktrees.merge_helpers import agent, base_repo, conflict_scene, edit_line


def test_predicted_while_running_then_left_out_at_merge(tmp_path: Path) -> None:
    repo = base_repo(tmp_path)
    base = git(repo, "rev-parse", "main")
    spaces = {name: agent(repo, name) for name in ("alice", "bob", "carol")}
    edit_line(spaces["alice"].path / "src/app.py", 4, "alice")
    edit_line(spaces["bob"].path / "src/app.py", 4, "bob")
    (spaces["carol"].path / "docs/guide.md").write_text("carol\n")
    summaries = [ev.AgentSummary(id=name, kind="coding", command=["x"]) for name in spaces]
    log: list[ev.Event] = [
        ev.RunStarted(
            run_id="r1",
            name="fix",
            repo=str(repo),
            base_ref="main",
            snapshot=base,
            plan_sha256="0" * 64,
            agents=summaries,
            max_parallel=3,
            required_successes=2,
            worktree_root=str(tmp_path),
            engine=ev.EngineInfo(pid=1, start_time=0.0, host="h", user="u"),
        )
    ]

    matrix = ConflictMatrix(repo, base)
    log += matrix_events(matrix.update({n: snapshot_commit(w.path) for n, w in spaces.items()}))
    predicted = fold(log).conflicts
    assert list(predicted) == ["alice+bob"]
    assert predicted["alice+bob"].predicted

    for name, ws in spaces.items():
        log += [ev.AgentFinished(agent=name, attempt=1, outcome="succeeded", exit_code=0)]
        commit_leftovers(ws.path, name, 1, branch=ws.branch)
    result = integrate(repo, "r1", base, [(n, 1, w.branch) for n, w in spaces.items()])
    log += integration_events(result)
    assert result.worktree is not None
    outcome = Verification(True, 0)
    log += [verification_event(outcome, ["pytest"], "/v.log", result.commit)]

    state = fold(log)
    conflict = state.conflicts["alice+bob"]
    assert (conflict.predicted, conflict.actual) == (True, True)
    assert [f.path for f in conflict.files] == ["src/app.py"]
    assert state.merge.integration_commit == result.commit
    report = build_report(state)
    assert [m.agent for m in report.merged] == ["alice", "carol"]
    assert [(lo.agent, lo.conflicts_with) for lo in report.left_out] == [("bob", ["alice"])]
    assert report.integration_commit == git(repo, "rev-parse", "corral/r1/integration")
    assert git(repo, "rev-parse", "main") == base


def test_an_actual_conflict_is_recorded_per_pair_with_only_that_pairs_files(
    tmp_path: Path,
) -> None:
    """`c` touches the files `z` conflicts in but merges cleanly with it: no `c+z` conflict."""
    repo, base, branches = conflict_scene(tmp_path)
    summaries = [ev.AgentSummary(id=name, kind="coding", command=["x"]) for name, _, _ in branches]
    log: list[ev.Event] = [
        ev.RunStarted(
            run_id="r1",
            name="fix",
            repo=str(repo),
            base_ref="main",
            snapshot=base,
            plan_sha256="0" * 64,
            agents=summaries,
            max_parallel=4,
            required_successes=4,
            worktree_root=str(tmp_path),
            engine=ev.EngineInfo(pid=1, start_time=0.0, host="h", user="u"),
        )
    ]
    log += [
        ev.AgentFinished(agent=name, attempt=1, outcome="succeeded", exit_code=0)
        for name, _, _ in branches
    ]
    log += [ev.MergeStarted()]
    log += integration_events(integrate(repo, "r1", base, branches, checkout=False))

    report = build_report(fold(log))

    assert [(c.key, [f.path for f in c.files], c.actual) for c in report.merge_conflicts] == [
        ("a+z", ["src/app.py"], True),
        ("d+z", ["src/lib.py"], True),
    ]
