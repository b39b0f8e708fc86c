"""The shared repository's integrity (docs/reliability.md T3), on real repositories with real agents:
what an agent plants in `.git` is reported with the attempts live at the time, restored (the
planted version kept), and approve waits until a person acknowledges it; refs are reported only."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from corral.core.log import events as ev
from corral.core.log.state import RunState, apply, fold
from corral.core.review.gate import ReviewRefused, acknowledge_tampering, approve
from corral.core.runs.rundir import RunDir, runs_root
from corral.core.trust.integrity import check, read_refs, record
from tests.conftest import git
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
from tests.core.operator_helpers import make_reviewable_run


def tampered(rundir: RunDir) -> list[ev.RepoTampered]:
    return [e for e in events_of(rundir) if isinstance(e, ev.RepoTampered)]


def marker_script(tmp_path: Path) -> tuple[Path, Path]:
    """A program that leaves a mark when something runs it (as git would run an fsmonitor)."""
    marker = tmp_path / "planted-program-ran"
    script = tmp_path / "planted.sh"
    script.write_text(f"#!/bin/sh\ntouch {marker}\nexit 1\n")
    script.chmod(0o755)
    return script, marker


# -- the check itself, on a real repository --------------------------------------------------


def logged(event: ev.EventBase, seq: int) -> ev.Event:
    """The event as the log would give it back."""
    return ev.EventAdapter.validate_json(event.model_copy(update={"seq": seq}).model_dump_json())


def baseline_state(repo: Path, rundir: RunDir) -> RunState:
    state = RunState()
    apply(state, logged(record(repo, repo / ".git", rundir), 1))
    return state


AGENT_MARKS = {
    "CORRAL_RUN_ID": "other-run",
    "CORRAL_AGENT_ID": "planter",
    "CORRAL_ATTEMPT": "1",
    "CORRAL_AGENT_TOKEN": "be" * 16,
    "CORRAL_SOCKET": "/nonexistent/control.sock",
}
"""The variables an attempt's processes carry (core/trust/authority.py MARKS)."""


def test_planted_hooks_config_and_attributes_are_restored_and_kept(
    repo: Path, tmp_path: Path
) -> None:
    rundir = RunDir(runs_root(repo / ".git") / "r1")
    rundir.create()
    hooks = repo / ".git" / "hooks"
    sample = next(iter(sorted(hooks.glob("*.sample"))))
    before = {path: path.read_bytes() for path in [*hooks.iterdir(), repo / ".git" / "config"]}
    state = baseline_state(repo, rundir)
    script, _ = marker_script(tmp_path)

    git(repo, "config", "core.hooksPath", str(tmp_path))
    (hooks / "pre-commit").write_text(f"#!/bin/sh\n{script}\n")
    (hooks / "pre-commit").chmod(0o755)
    sample.write_text("#!/bin/sh\nexit 0\n")
    (repo / ".git" / "info" / "attributes").write_text("* filter=planted\n")

    event, _ = check(repo, rundir, state, ["a#1"], "attempt_end")
    assert event is not None
    changes = {change.name: change for change in event.changes}
    assert set(changes) == {"config", "hooks/pre-commit", f"hooks/{sample.name}", "info/attributes"}
    assert all(change.restored for change in event.changes), event.problem
    assert ("+ [core] hookspath = " + str(tmp_path)).lower() in [
        line.lower() for line in changes["config"].detail
    ]
    assert changes["info/attributes"].detail == ["+ * filter=planted"]
    # everything is as it was, the planted hook is gone, and each changed version was kept
    assert {path: path.read_bytes() for path in before} == before
    assert not (hooks / "pre-commit").exists()
    assert not (repo / ".git" / "info" / "attributes").exists()
    kept = Path(changes["hooks/pre-commit"].kept or "")
    assert kept.read_text() == f"#!/bin/sh\n{script}\n"
    assert kept.is_relative_to(rundir.path)
    assert "hookspath" in Path(changes["config"].kept or "").read_text().lower()
    assert "hookspath" not in (repo / ".git" / "config").read_text().lower()

    apply(state, logged(event, 2))
    again, _ = check(repo, rundir, state, ["a#1"], "attempt_end")
    assert again is None, "a restored repository checks clean"


def test_a_changed_baseline_copy_is_not_restored_from(repo: Path) -> None:
    rundir = RunDir(runs_root(repo / ".git") / "r1")
    rundir.create()
    state = baseline_state(repo, rundir)
    assert state.integrity is not None
    (Path(state.integrity.copies) / "config").write_text("[core]\n\tfsmonitor = /bin/evil\n")
    git(repo, "config", "user.name", "someone")
    event, _ = check(repo, rundir, state, [], "approve")
    assert event is not None
    (change,) = event.changes
    assert (change.name, change.restored) == ("config", False)
    assert "copy corral made at run start" in event.problem
    assert "/bin/evil" not in (repo / ".git" / "config").read_text()


def test_refs_are_read_as_git_reads_them_packed_or_loose(repo: Path) -> None:
    git(repo, "tag", "-a", "-m", "v1", "v1")
    git(repo, "branch", "side")
    git(repo, "branch", "corral/other-run/a/1")
    git(repo, "pack-refs", "--all")
    git(repo, "commit", "-q", "--allow-empty", "-m", "loose now")  # main: loose over packed
    git(repo, "branch", "fresh")
    git(repo, "update-ref", "-d", "refs/heads/side")  # gone from packed-refs too
    listed = git(repo, "for-each-ref", "--format=%(objectname) %(refname)").splitlines()
    expected = {name: sha for sha, name in (line.split(" ") for line in listed)}
    refs = read_refs(repo, repo / ".git", ["refs/heads/corral/other-run/a/1"])
    assert refs.pop("HEAD") == "ref: refs/heads/main"
    assert refs == expected, "the same refs and objects as git lists, the asked-for corral one too"
    assert "refs/heads/corral/other-run/a/1" not in read_refs(repo, repo / ".git")


# -- before approval -----------------------------------------------------------------------


def test_tampering_found_before_approve_blocks_it_until_acknowledged(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rundir, sha, _ = make_reviewable_run(repo, baseline=True)
    config = (repo / ".git" / "config").read_bytes()
    script, marker = marker_script(tmp_path)
    git(repo, "config", "core.fsmonitor", str(script))

    with pytest.raises(ReviewRefused, match="corral review acknowledge r1"):
        approve(rundir, "bob", sha)
    (found,) = tampered(rundir)
    assert (found.live, found.seen) == ([], "approve")
    assert (repo / ".git" / "config").read_bytes() == config, "restored before anything else"
    with pytest.raises(ReviewRefused, match="tampered with"):
        approve(rundir, "bob", sha)  # restored is not acknowledged
    assert len(tampered(rundir)) == 1, "the restored repository is not reported twice"

    with pytest.raises(ReviewRefused, match="not among what was shown"):
        acknowledge_tampering(rundir, "bob", found.seq - 1)
    with monkeypatch.context() as inside_an_agent:  # T1: an agent cannot wave it through
        for key, value in AGENT_MARKS.items():
            inside_an_agent.setenv(key, value)
        with pytest.raises(ReviewRefused, match="is an operator action"):
            acknowledge_tampering(rundir, "mallory", found.seq)
    assert fold(events_of(rundir)).unacknowledged_tampering(), "still waits for a person"
    assert "acknowledged by bob" in acknowledge_tampering(rundir, "bob", found.seq)
    state = fold(events_of(rundir))
    assert state.tampering[0].acknowledged_by == "bob"
    assert approve(rundir, "bob", sha).decision == "approved"
    assert not marker.exists(), "corral never ran the planted fsmonitor"


# -- end to end: real engine, real agents ----------------------------------------------------


def test_an_agent_planting_fsmonitor_is_reported_restored_and_blocks_approve(
    repo: Path, tmp_path: Path
) -> None:
    script, marker = marker_script(tmp_path)
    config = (repo / ".git" / "config").read_bytes()
    body = agent_block("planter", ["sh", "-c", f"git config core.fsmonitor {script}; echo p > p"])
    # live while the planter ends, so it is named too: the check cannot tell which one did it
    body += agent_block(
        "bystander", ["sh", "-c", f"while [ ! -s {tmp_path / 'go'} ]; do sleep 0.05; done"]
    )
    plan = write_plan(tmp_path, body, header="max_parallel = 2\n")
    engine = start_corral(repo, "run", str(plan), "--quiet")
    rundir = wait_for_run(repo)
    wait_for_event(rundir, lambda e: isinstance(e, ev.AgentFinished) and e.agent == "planter")
    (tmp_path / "go").write_text("go")
    assert engine.wait(timeout=60) == 0

    (found,) = tampered(rundir)
    assert (found.live, found.seen) == (["bystander#1", "planter#1"], "attempt_end")
    (change,) = found.changes
    assert (change.kind, change.name, change.restored) == ("config", "config", True)
    assert any("fsmonitor" in line and str(script) in line for line in change.detail)
    assert str(script) in Path(change.kept or "").read_text(), "the planted version is kept"
    assert (repo / ".git" / "config").read_bytes() == config
    seqs = {e.seq: e for e in events_of(rundir)}
    after = seqs[found.seq + 1]
    assert isinstance(after, ev.IntegrityRecorded), "the planter's branch is protected next"

    status = corral(repo, "status", rundir.run_id)
    assert "REPOSITORY TAMPERED" in status.stdout
    assert "planter#1" in status.stdout
    assert "corral review acknowledge" in status.stdout
    published = json.loads(corral(repo, "status", rundir.run_id, "--json").stdout)
    assert published["tampering"][0]["live"] == ["bystander#1", "planter#1"]
    assert "integrity" not in published, "the baseline (every ref) is the engine's own"
    report = json.loads((rundir.path / "report.json").read_text())
    assert report["tampering"][0]["live"] == ["bystander#1", "planter#1"]
    markdown = (rundir.path / "report.md").read_text()
    assert "Shared repository tampered with" in markdown
    assert "planter\\#1" in markdown

    sha = state_of(rundir).report.sha256  # type: ignore[union-attr]
    refused = corral(repo, "review", "approve", rundir.run_id, "--sha", sha)
    assert refused.returncode == 1
    assert "acknowledge" in refused.stderr
    shown = corral(repo, "review", "show", rundir.run_id)
    assert f"--through {found.seq}" in shown.stdout
    unbound = corral(repo, "review", "acknowledge", rundir.run_id)
    assert unbound.returncode == 2, "without a terminal it must name what was read"
    ack = corral(repo, "review", "acknowledge", rundir.run_id, "--through", str(found.seq))
    assert ack.returncode == 0, ack.stderr
    last = events_of(rundir)[-1]
    assert isinstance(last, ev.TamperingAcknowledged)
    assert last.through_seq == found.seq
    approved = corral(repo, "review", "approve", rundir.run_id, "--sha", sha)
    assert approved.returncode == 0, approved.stderr
    assert not marker.exists(), "nothing corral ran started the planted fsmonitor"


def test_moving_main_and_deleting_a_siblings_branch_are_reported_and_left(
    repo: Path, tmp_path: Path
) -> None:
    body = agent_block("early", ["sh", "-c", "echo early > early.txt"])
    mover = (
        "echo moved > moved.txt && git add moved.txt && git commit -qm moved && "
        "git update-ref refs/heads/main HEAD && "
        'git update-ref -d "refs/heads/corral/$CORRAL_RUN_ID/early/1"'
    )
    body += agent_block("mover", ["sh", "-c", mover], depends_on=["early"])
    plan = write_plan(tmp_path, body)
    snapshot = git(repo, "rev-parse", "main")
    result = corral(repo, "run", str(plan), "--quiet")
    rundir = only_run(repo)
    assert state_of(rundir).agents["mover"].state == "succeeded", result.stdout + result.stderr

    (found,) = tampered(rundir)
    assert found.live == ["mover#1"], "early had ended before mover started"
    changes = {change.name: change for change in found.changes}
    moved = git(repo, "rev-parse", "main")
    assert moved != snapshot
    main = changes["refs/heads/main"]
    assert (main.kind, main.old, main.new, main.restored) == ("ref", snapshot, moved, False)
    early = changes[f"refs/heads/corral/{rundir.run_id}/early/1"]
    assert early.old is not None
    assert early.new is None
    assert git(repo, "rev-parse", "main") == moved, "a moved ref is reported, not moved back"
    status = corral(repo, "status", rundir.run_id).stdout
    assert f"refs/heads/main moved {snapshot[:12]} → {moved[:12]}" in status
    assert "early/1 deleted" in status


def test_a_resumed_engine_checks_against_the_baseline_the_run_started_with(
    repo: Path, tmp_path: Path
) -> None:
    flag = tmp_path / "second-attempt"
    sleeper = f"if [ -f {flag} ]; then exit 0; fi; touch {flag}; sleep 60"
    plan = write_plan(tmp_path, agent_block("sleeper", ["sh", "-c", sleeper]))
    config = (repo / ".git" / "config").read_bytes()
    hook = repo / ".git" / "hooks" / "post-checkout"
    engine = start_corral(repo, "run", str(plan), "--quiet")
    rundir = wait_for_run(repo)
    wait_for_event(rundir, lambda e: isinstance(e, ev.AgentStarted))
    kill9(engine)
    # planted while no engine looked: the resumed one must still compare with the run's start
    git(repo, "config", "core.sshCommand", "planted")
    hook.write_text("#!/bin/sh\nexit 0\n")
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR)
    resumed = start_corral(repo, "run", "--resume", rundir.run_id, "--quiet")
    assert resumed.wait(timeout=60) == 0

    (found,) = tampered(rundir)
    assert (found.live, found.seen) == (["sleeper#1"], "resume")
    assert {change.name for change in found.changes} == {"config", "hooks/post-checkout"}
    assert (repo / ".git" / "config").read_bytes() == config
    assert not hook.exists()
    recorded = [e for e in events_of(rundir) if isinstance(e, ev.IntegrityRecorded)]
    assert recorded[0].files is not None
    assert all(e.files is None for e in recorded[1:])
