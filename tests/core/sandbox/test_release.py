"""A sandboxed attempt's private git directory is removed at release once its branch came back,
and kept when it did not (docs/architecture.md, "Sandbox"): nothing waits for `corral gc`, and
no commit is lost."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import git
from tests.core.engine_helpers import agent_block, corral, only_run, state_of, write_plan

COMMIT = "echo {name} > {name}.md && git add {name}.md && git commit -qm {name}"


@pytest.fixture(autouse=True)
def _bwrap(bwrap_works: None) -> None:
    """Real bubblewrap (the probe fails the test if it cannot)."""


def test_a_collected_attempts_private_git_is_removed_and_an_uncollected_one_kept(
    repo: Path, tmp_path: Path
) -> None:
    env = 'env = { PYTHONPATH = "' + os.environ.get("PYTHONPATH", "") + '" }\n'
    body = (
        agent_block("kept", ["sh", "-c", COMMIT.format(name="kept")])
        + agent_block("failed", ["sh", "-c", COMMIT.format(name="failed") + " && exit 3"])
        + agent_block("idle", ["true"])
    )
    plan = write_plan(
        tmp_path, f"[defaults]\n{env}" + body, header='runtime = "sandbox"\nmin_success = 0\n'
    )
    result = corral(repo, "run", str(plan), "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    rundir = only_run(repo)
    state = state_of(rundir)
    assert {a: s.state for a, s in state.agents.items()} == {
        "kept": "succeeded",
        "failed": "dead_lettered",
        "idle": "succeeded",
    }
    sandbox = rundir.path / "runtime" / "sandbox"
    assert not (sandbox / "kept-1").exists()  # its commit is on its branch: nothing to keep
    assert not (sandbox / "idle-1").exists()  # it never committed
    # the failed attempt is not collected: its commit lives only in its private git directory
    private = sandbox / "failed-1" / "git"
    tip = (private / "refs" / "heads" / f"corral/{rundir.run_id}/failed/1").read_text().strip()
    assert git(repo, "--git-dir", str(private), "log", "--format=%s", "-1", tip) == "failed"
    assert "kept" in git(repo, "log", "--format=%s", f"corral/{rundir.run_id}/kept/1")
