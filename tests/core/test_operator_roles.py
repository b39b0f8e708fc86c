"""Roles held by core (core/operator/identity.py): the operator API refuses an action the person
lacks the role for, before anything is sent or written, naming who, the role and where roles are
set; a person at their own terminal holds every role."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from corral.core.log import events as ev
from corral.core.operator import actions, decisions
from corral.core.operator.errors import RoleRefused
from corral.core.operator.identity import EVERY_ROLE, Operator, parse_roles
from tests.conftest import git
from tests.core.engine_helpers import events_of
from tests.core.operator_helpers import make_reviewable_run

KEYS = "/home/ops/authorized_keys"
VERA = Operator.ssh_key("vera", "SHA256:vvv", frozenset({"viewer"}), KEYS)
OLGA = Operator.ssh_key("olga", "SHA256:ooo", frozenset({"viewer", "operator"}), KEYS)
RITA = Operator.ssh_key("rita", "SHA256:rrr", frozenset({"reviewer"}), KEYS)


def test_a_viewer_is_refused_every_action_and_nothing_is_written(repo: Path) -> None:
    rundir, sha, _ = make_reviewable_run(repo)
    logged, before = events_of(rundir), git(repo, "rev-parse", "main")
    attempts: list[Callable[[], object]] = [
        lambda: actions.kill(rundir, "a", VERA),
        lambda: actions.stop(rundir, VERA),
        lambda: actions.pause(rundir, "a", VERA),
        lambda: actions.retry(rundir, "a", VERA),
        lambda: actions.answer(rundir, "a", "yes", VERA),
        lambda: actions.send_keys(rundir, "a", "x", VERA),
        lambda: actions.break_lock(rundir, "db", VERA, "mine"),
        lambda: actions.start_run(repo, repo / "plan.toml", by=VERA),
        lambda: actions.rerun(rundir, ["a"], by=VERA),
        lambda: decisions.approve(rundir, VERA, sha),
        lambda: decisions.reject(rundir, VERA, "no", sha),
        lambda: decisions.acknowledge_tampering(rundir, VERA, 1),
    ]
    for attempt in attempts:
        with pytest.raises(
            RoleRefused,
            match=f"ssh key vera is a viewer: .* needs the .* role \\(corral's authorized keys file, {KEYS}\\)",
        ):
            attempt()
    assert events_of(rundir) == logged
    assert git(repo, "rev-parse", "main") == before


def test_the_refusal_names_the_role_the_action_needs(repo: Path) -> None:
    rundir, sha, _ = make_reviewable_run(repo)
    with pytest.raises(RoleRefused) as approving:
        decisions.approve(rundir, OLGA, sha)
    assert str(approving.value) == (
        "ssh key olga is a viewer and operator: approving needs the reviewer role "
        f"(corral's authorized keys file, {KEYS})"
    )
    with pytest.raises(RoleRefused, match="ssh key rita is a reviewer: killing an agent needs"):
        actions.kill(rundir, "a", RITA)
    local = Operator.current().viewer("the console was opened with --read-only")
    with pytest.raises(RoleRefused, match=r"is a viewer: .*\(the console was opened with --read"):
        actions.retry(rundir, "a", local)


def test_a_reviewer_key_approves_and_the_decision_names_the_key(repo: Path) -> None:
    rundir, sha, _ = make_reviewable_run(repo)
    decisions.approve(rundir, RITA, sha)
    approved = events_of(rundir)[-1]
    assert isinstance(approved, ev.ReportApproved)
    assert approved.by == "rita (ssh key SHA256:rrr)"


def test_the_local_person_holds_every_role() -> None:
    assert Operator.current().roles == EVERY_ROLE
    assert parse_roles("reviewer, viewer") == frozenset({"viewer", "reviewer"})
    with pytest.raises(ValueError, match="'admin' is not a role: say one or more of viewer"):
        parse_roles("viewer,admin")


def test_corral_tui_refuses_roles_it_does_not_know(repo: Path) -> None:
    """The server's way to pass who acts: a bad role is an input error, not a full console."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "corral.core.cli",
            "tui",
            "--as",
            "vera",
            "--fingerprint",
            "SHA256:vvv",
            "--roles",
            "boss",
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "--roles boss: 'boss' is not a role" in done.stderr
