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


DEEP = 5000
"""Nesting far past anything a plan needs (the TOML reader recurses once a level)."""


@pytest.mark.parametrize(
    ("run", "agent", "expected"),
    [
        ("", "timeout = inf", "agent 'a': timeout: inf is not finite"),
        ("", "timeout = nan", "agent 'a': timeout: nan is not finite"),
        ("", "timeout = -inf", "agent 'a': timeout: -inf is not finite"),
        ("", "heartbeat_timeout = 0", "agent 'a': heartbeat_timeout: must be more than 0"),
        ("", 'start_timeout = "0s"', "agent 'a': start_timeout: must be more than 0"),
        ("", 'timeout = "100000h"', "agent 'a': timeout: '100000h' is longer than"),
        ("", "timeout = 1e300", "agent 'a': timeout: 1e+300 is longer than"),
        ("stagger = inf", "", "run: stagger: inf is not finite"),
        ("kill_grace = inf", "", "run: kill_grace: inf is not finite"),
        ("kill_grace = nan", "", "run: kill_grace: nan is not finite"),
        ("conflict_interval = 0", "", "run: conflict_interval: must be more than 0"),
        ("backoff_max = 1e9", "", "run: backoff_max: 1000000000.0 is longer than"),
        ("", 'env = { "A=B" = "x" }', "agent 'a': env: 'A=B' cannot be"),
        ("", 'env = { "A\\u0000B" = "x" }', "agent 'a': env: 'A\\x00B' cannot be"),
        ("", 'env = { "" = "x" }', "agent 'a': env: '' cannot be"),
        ("", 'env = { A = "x\\u0000y" }', "agent 'a': env: the value of 'A' holds a NUL"),
        ("", "x = " + "[" * DEEP + "]" * DEEP, "nests arrays or tables too deeply"),
        ("", "x = " + "{a=" * DEEP + "1" + "}" * DEEP, "nests arrays or tables too deeply"),
        ("", "a" + ".a" * DEEP + " = 1", "nests arrays or tables too deeply"),
        ("", "copy = [[]]", "agent 'a': copy.0: [] is not a path"),
        ("", 'setup = [["x", "a\\u0000b"]]', "agent 'a': setup.0.1: 'a\\x00b' holds a NUL"),
    ],
    ids=[
        "timeout-inf",
        "timeout-nan",
        "timeout-minus-inf",
        "heartbeat-zero",
        "start-zero",
        "timeout-too-long",
        "timeout-huge-number",
        "stagger-inf",
        "kill-grace-inf",
        "kill-grace-nan",
        "conflict-interval-zero",
        "backoff-max-huge",
        "env-name-equals",
        "env-name-nul",
        "env-name-empty",
        "env-value-nul",
        "deep-arrays",
        "deep-inline-tables",
        "deep-dotted-key",
        "copy-not-a-string",
        "argument-nul",
    ],
)
def test_unusable_values_exit_2_naming_the_field(
    repo: Path, tmp_path: Path, run: str, agent: str, expected: str
) -> None:
    """Non-finite, zero or endless durations, environment names exec cannot take, and nesting
    the TOML reader cannot follow are plan errors: exit 2, the field named, no run made."""
    plan = tmp_path / "plan.toml"
    plan.write_text(
        f'[run]\nname = "t"\n{run}\n\n[[agent]]\nid = "a"\ncommand = ["true"]\n{agent}\n'
    )
    for command in (["validate", str(plan)], ["run", str(plan)]):
        result = corral(repo, *command, timeout=60)
        assert result.returncode == 2, result.stdout + result.stderr
        assert expected in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert_nothing_started(repo)
