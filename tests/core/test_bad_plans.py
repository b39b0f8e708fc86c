"""A bad plan starts nothing: exit status 2, a message naming the problem, no worktree, no run."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import git
from tests.core.engine_helpers import agent_block, corral, write_plan


def assert_nothing_started(repo: Path) -> None:
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert not (repo / ".git" / "corral" / "runs").exists() or not any(
        (repo / ".git" / "corral" / "runs").iterdir()
    )
    assert "corral/" not in git(repo, "branch", "--list")


@pytest.mark.parametrize(
    ("body", "header", "expected"),
    [
        (
            agent_block("a", ["true"], depends_on=["b"])
            + agent_block("b", ["true"], depends_on=["a"]),
            "",
            "forms a cycle",
        ),
        (
            agent_block("a", ["true"], depends_on=["ghost"]),
            "",
            "names 'ghost', which is not an agent",
        ),
        (agent_block("a", ["true"], timeout="ten minutes"), "", "'ten minutes' is not a duration"),
        (agent_block("a", ["true"]) + agent_block("a", ["true"]), "", "is used twice"),
        (
            agent_block("a", ["no-such-program-xyz"]),
            "",
            "program 'no-such-program-xyz' is not on PATH",
        ),
        (agent_block("a", ["./scripts/missing.sh"]), "", "'./scripts/missing.sh' does not exist"),
        (
            agent_block("a", ["true"]),
            'base = "no-such-branch"\n',
            "base 'no-such-branch' does not exist",
        ),
        (agent_block("a", ["true"], copy=[".env.missing"]), "", "'.env.missing' does not exist"),
    ],
    ids=[
        "cycle",
        "unknown-dependency",
        "bad-duration",
        "duplicate-id",
        "missing-binary",
        "missing-script",
        "bad-base",
        "missing-copy",
    ],
)
def test_bad_plan_exits_2_and_starts_nothing(
    repo: Path, tmp_path: Path, body: str, header: str, expected: str
) -> None:
    plan = write_plan(tmp_path, body, header=header)
    for command in (["validate", str(plan)], ["run", str(plan)]):
        result = corral(repo, *command)
        assert result.returncode == 2, result.stdout + result.stderr
        assert expected in result.stderr
        assert "Traceback" not in result.stderr
    assert_nothing_started(repo)


def test_repo_that_is_not_a_git_repository(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    plan = write_plan(tmp_path, agent_block("a", ["true"]), header='repo = "plain"\n')
    result = corral(tmp_path, "run", str(plan))
    assert result.returncode == 2
    assert "run: repo:" in result.stderr
    assert "is not a git repository" in result.stderr


def test_valid_plan_validates(repo: Path, tmp_path: Path) -> None:
    plan = write_plan(tmp_path, agent_block("a", ["true"]))
    result = corral(repo, "validate", str(plan))
    assert result.returncode == 0, result.stderr
    assert "valid: 1 agent(s) on main" in result.stdout
    assert_nothing_started(repo)
