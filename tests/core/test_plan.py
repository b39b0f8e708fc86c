"""Plans: every mistake is caught before anything starts, and named so it can be fixed."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from corral.core.plan.durations import parse_duration
from corral.core.plan.model import PlanError, load_plan, topological_order

GOOD = """
[run]
name = "t"
max_parallel = 2
min_success = "50%"

[defaults]
timeout = "5m"
retries = 1

[[agent]]
id = "a"
command = ["true"]

[[agent]]
id = "b"
kind = "audit"
command = ["true"]
depends_on = ["a"]
timeout = "90s"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "plan.toml"
    path.write_text(text)
    return path


def problems(tmp_path: Path, text: str) -> str:
    with pytest.raises(PlanError) as caught:
        load_plan(write(tmp_path, text))
    return str(caught.value)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("5m", 300), ("1h", 3600), ("1h30m", 5400), ("500ms", 0.5), (12, 12)],
)
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["5x", "", "m5", "1.5.2s", "-3", True])
def test_bad_durations_are_refused(text: object) -> None:
    with pytest.raises(ValueError, match=r"not a duration|negative"):
        parse_duration(text)


@pytest.mark.parametrize(
    "value", [math.inf, -math.inf, math.nan, 1e300, "721h", "9" * 400 + "s", 30 * 86400 + 1]
)
def test_endless_durations_are_refused(value: object) -> None:
    """A limit that can never fire (or fires in centuries) is a mistake, wherever it is set."""
    with pytest.raises(ValueError, match=r"not finite|longer than corral accepts"):
        parse_duration(value)
    assert parse_duration(30 * 86400) == 30 * 86400


def test_defaults_apply_and_agents_override(tmp_path: Path) -> None:
    plan = load_plan(write(tmp_path, GOOD))
    a, b = plan.agents
    assert (a.timeout, a.retries, a.kind) == (300, 1, "coding")
    assert (b.timeout, b.kind) == (90, "audit")
    assert plan.required_successes() == 1
    assert topological_order(plan) == ["a", "b"]


def test_cycle_is_named(tmp_path: Path) -> None:
    text = GOOD.replace('id = "a"\ncommand', 'id = "a"\ndepends_on = ["b"]\ncommand')
    message = problems(tmp_path, text)
    assert "cycle" in message
    assert "a -> b -> a" in message or "b -> a -> b" in message


def test_unknown_dependency_names_agent_field_and_choices(tmp_path: Path) -> None:
    message = problems(tmp_path, GOOD.replace('depends_on = ["a"]', 'depends_on = ["nope"]'))
    assert "agent 'b': depends_on: names 'nope'" in message
    assert "use one of: a, b" in message


def test_bad_duration_names_agent_and_field(tmp_path: Path) -> None:
    message = problems(tmp_path, GOOD.replace('timeout = "90s"', 'timeout = "90x"'))
    assert "agent 'b': timeout:" in message
    assert "'90x' is not a duration" in message


def test_duplicate_id(tmp_path: Path) -> None:
    message = problems(
        tmp_path, GOOD.replace('id = "b"', 'id = "a"').replace('depends_on = ["a"]', "")
    )
    assert "agent 'a': id: is used twice" in message


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    text = GOOD.replace('timeout = "90s"', 'timeout = "soon"').replace(
        "max_parallel = 2", "max_parallel = 0"
    )
    message = problems(tmp_path, text)
    assert "2 problem(s)" in message
    assert "run: max_parallel" in message


def test_typo_in_field_name(tmp_path: Path) -> None:
    message = problems(tmp_path, GOOD.replace("retries = 1", "retires = 1"))
    assert "defaults: retires: is not a known field" in message


def test_command_as_string_suggests_list(tmp_path: Path) -> None:
    message = problems(
        tmp_path, GOOD.replace('command = ["true"]\ndepends', 'command = "ruff check ."\ndepends')
    )
    assert "command must be a list of arguments" in message
    assert "['ruff', 'check', '.']" in message


def test_copy_outside_repo_refused(tmp_path: Path) -> None:
    message = problems(tmp_path, GOOD.replace("retries = 1", 'copy = ["../secrets"]'))
    assert "without '..'" in message


def test_no_agents(tmp_path: Path) -> None:
    assert "add at least one agent" in problems(tmp_path, "[run]\nname='x'\n")


def test_invalid_toml_points_at_line(tmp_path: Path) -> None:
    message = problems(tmp_path, "[run\nname=1\n")
    assert "is not valid TOML" in message
    assert "line 1" in message


def test_min_success_above_agent_count(tmp_path: Path) -> None:
    assert "asks for 5 successes" in problems(tmp_path, GOOD.replace('"50%"', "5"))


def test_reserved_id(tmp_path: Path) -> None:
    message = problems(
        tmp_path, GOOD.replace('id = "b"', 'id = "integration"').replace('depends_on = ["a"]', "")
    )
    assert "reserved" in message


def test_bad_agent_id(tmp_path: Path) -> None:
    message = problems(
        tmp_path, GOOD.replace('id = "b"', 'id = "b/../x"').replace('depends_on = ["a"]', "")
    )
    assert "letters, digits" in message
