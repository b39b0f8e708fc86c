"""Approve lands on the user's checkout end to end: `corral run`, then `corral review approve`.

The user's repository has `main` checked out (the usual case), sometimes in a second worktree
too; what must hold afterwards is what `git merge --ff-only` would leave: a clean status on the
landed tree, local work on other paths kept, and a refusal that lands nothing when local work is
in the way. The approver is recorded in the history itself, in an approval merge's trailers.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

from corral.core.log import events as ev
from corral.core.review.gate import reviewer_identity
from corral.core.runs.rundir import RunDir
from tests.conftest import git
from tests.core.engine_helpers import agent_block, corral, events_of, only_run, write_plan


def status(path: Path) -> str:
    """`git status --porcelain` as printed (the `git` helper would strip its leading blank)."""
    out = subprocess.run(
        ["git", "-C", str(path), "status", "--porcelain", "--untracked-files=all"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return out.removesuffix("\n")


def finished_coding_run(repo: Path, tmp_path: Path) -> tuple[RunDir, str]:
    """One agent rewrites src/app.py; returns the finished run and its report's sha256."""
    command = ["sh", "-c", "printf 'print(\"agent\")\\n' > src/app.py"]
    plan = write_plan(tmp_path, agent_block("coder", command))
    corral(repo, "run", str(plan), "--quiet", check=True)
    rundir = only_run(repo)
    return rundir, hashlib.sha256((rundir.path / "report.json").read_bytes()).hexdigest()


def approve(repo: Path, rundir: RunDir, sha: str) -> subprocess.CompletedProcess[str]:
    return corral(repo, "review", "approve", rundir.run_id, "--sha", sha)


def test_approve_leaves_every_checkout_of_the_base_clean_on_the_landed_tree(
    repo: Path, tmp_path: Path
) -> None:
    git(repo, "switch", "-q", "--detach")
    second = tmp_path / "second"
    git(repo, "worktree", "add", "-q", str(second), "main")
    git(repo, "switch", "-q", "--ignore-other-worktrees", "main")
    snapshot = git(repo, "rev-parse", "main")
    rundir, sha = finished_coding_run(repo, tmp_path)
    integration = git(repo, "rev-parse", f"corral/{rundir.run_id}/integration")

    approved = approve(repo, rundir, sha)

    assert approved.returncode == 0, approved.stderr
    for checkout in (repo, second):
        assert status(checkout) == "", f"{checkout} must not show the landing in reverse"
        assert git(checkout, "rev-parse", "HEAD^{tree}") == git(
            repo, "rev-parse", f"{integration}^{{tree}}"
        )
        assert (checkout / "src" / "app.py").read_text() == 'print("agent")\n'
    assert git(repo, "rev-parse", "main^1", "main^2").split() == [snapshot, integration]
    trailers = git(repo, "log", "-1", "--format=%(trailers:key=Approved-by,valueonly)", "main")
    assert trailers == reviewer_identity()
    decision = events_of(rundir)[-1]
    assert isinstance(decision, ev.ReportApproved)
    assert decision.landed == git(repo, "rev-parse", "main")
    # what the issue warned about: the next `git commit -a` must have nothing to revert
    commit = subprocess.run(["git", "-C", str(repo), "commit", "-qam", "next"], check=False)
    assert commit.returncode != 0, "nothing to commit"
    assert git(repo, "show", "main:src/app.py") == 'print("agent")'


def test_approve_refuses_over_work_in_the_way_and_keeps_unrelated_work(
    repo: Path, tmp_path: Path
) -> None:
    rundir, sha = finished_coding_run(repo, tmp_path)
    before = git(repo, "rev-parse", "main")
    (repo / "src" / "app.py").write_text("print('my unsaved edit')\n")
    (repo / "README.md").write_text("# my notes, not committed\n")

    refused = approve(repo, rundir, sha)

    assert refused.returncode == 1
    assert "src/app.py" in refused.stderr
    assert "nothing was landed" in refused.stderr
    assert git(repo, "rev-parse", "main") == before
    assert (repo / "src" / "app.py").read_text() == "print('my unsaved edit')\n"
    assert not any(isinstance(e, ev.ReportApproved) for e in events_of(rundir))

    git(repo, "checkout", "--", "src/app.py")  # the user saves the edit away; README stays dirty
    approved = approve(repo, rundir, sha)

    assert approved.returncode == 0, approved.stderr
    assert git(repo, "rev-parse", "main^1") == before
    assert status(repo) == " M README.md", "an unrelated local change is kept"
    assert (repo / "README.md").read_text() == "# my notes, not committed\n"
    assert (repo / "src" / "app.py").read_text() == 'print("agent")\n'
