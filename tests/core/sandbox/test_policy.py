"""The sandbox policy: what a plan may write, which policies are refused and why, and what
`corral validate` will say about one; and the preflight probe's answers."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from pydantic import ValidationError

from corral.core.sandbox.bwrap import probe
from corral.core.sandbox.paths import AttemptPaths
from corral.core.sandbox.policy import DEFAULT_HIDE, SandboxPolicy, contradictions, explain

HOME = Path("/home/dev")


def _paths(image: Path | None = None) -> AttemptPaths:
    common = Path("/src/app/.git")
    return AttemptPaths(
        worktree=common / "corral/worktrees/r1/a-1",
        output_dir=common / "corral/runs/r1/out",
        socket=common / "corral/runs/r1/control.sock",
        common_dir=common,
        admin_dir=common / "worktrees/a-1",
        private_gitdir=common / "corral/runs/r1/git",
        home=HOME,
        image=image,
    )


def test_the_issue_example_parses_and_expands_against_the_home() -> None:
    table = tomllib.loads(
        'network = "allow"\nallow = ["API.example.com:443", "127.0.0.1:8080", "[::1]:9000"]\n'
        'read = ["~/.cache/pip"]\nwrite = []\nhide = ["~/.config/secret-tool"]\n'
    )
    policy = SandboxPolicy.model_validate(table)
    resolved = policy.resolve(HOME)
    assert resolved.allow == {("api.example.com", 443), ("127.0.0.1", 8080), ("::1", 9000)}
    assert resolved.read == (HOME / ".cache/pip",)
    assert HOME / ".config/secret-tool" in resolved.hide
    assert {HOME / ".ssh", HOME / ".aws", HOME / ".config/gh"} <= set(resolved.hide)
    assert len(resolved.hide) == len(DEFAULT_HIDE) + 1
    assert contradictions(policy, HOME, _paths()) == []


@pytest.mark.parametrize(
    ("table", "fragment"),
    [
        ({"network": "wifi"}, "network"),
        ({"allow": ["example.com"]}, "not host:port"),
        ({"allow": ["*.example.com:443"]}, "no wildcards"),
        ({"allow": ["example.com:99999"]}, "not host:port"),
        ({"allow": ["[nope]:443"]}, "not an IPv6 address"),
        ({"reed": ["/x"]}, "reed"),
    ],
)
def test_malformed_policies_are_refused_naming_the_field(
    table: dict[str, object], fragment: str
) -> None:
    with pytest.raises(ValidationError, match=fragment.replace("*", r"\*")):
        SandboxPolicy.model_validate(table)


@pytest.mark.parametrize(
    ("policy", "fragment"),
    [
        (SandboxPolicy(allow=("a.example:443",)), 'set network = "allow" or remove allow'),
        (SandboxPolicy(network="allow"), "reaches nothing"),
        (SandboxPolicy(write=("~/.ssh/known_hosts",)), "is hidden"),
        (SandboxPolicy(write=("/data",), hide=("/data",)), "is hidden"),
        (SandboxPolicy(write=("relative/dir",)), "not absolute"),
        (SandboxPolicy(read=("/opt/../etc",)), "'..'"),
        (SandboxPolicy(read=("/opt/x",), write=("/opt/x",)), "both read and write"),
        (SandboxPolicy(read=("/opt/x",), hide=("/opt/x",)), "both read and hide"),
        (SandboxPolicy(write=("/src/app/.git/refs",)), "git directory"),
        (SandboxPolicy(write=("/src",)), "git directory"),
        (SandboxPolicy(write=("~",)), "whole home"),
    ],
)
def test_contradictory_policies_name_the_problem_and_the_fix(
    policy: SandboxPolicy, fragment: str
) -> None:
    problems = contradictions(policy, HOME, _paths())
    assert any(fragment in problem for problem in problems), problems


def test_reading_inside_a_hidden_store_is_an_explicit_exception_not_a_contradiction() -> None:
    assert contradictions(SandboxPolicy(read=("~/.docker/cli-plugins",)), HOME, _paths()) == []


def test_explain_says_what_is_writable_hidden_and_reachable() -> None:
    policy = SandboxPolicy(network="allow", allow=("api.example.com:443",), write=("/var/cache/x",))
    lines = explain(policy, _paths())
    text = "\n".join(lines)
    assert "writable: the worktree /src/app/.git/corral/worktrees/r1/a-1" in lines
    assert "writable: /var/cache/x" in lines
    assert "hidden: /home/dev/.ssh" in lines
    assert "network: api.example.com:443 through corral's proxy" in lines
    assert "everything else refused" in text
    assert "only the attempt's own branch" in text
    closed = explain(SandboxPolicy(), _paths(image=Path("/images/debian")))
    assert "read-only: the image /images/debian as /" in closed
    assert "network: none (a new network namespace with loopback only)" in closed
    assert any("as /workspace" in line for line in closed)


def test_probe_says_how_to_install_bubblewrap_when_it_is_missing() -> None:
    result = probe("corral-no-such-bwrap")
    assert not result.ok
    assert "not installed" in result.problem
    assert "apt-get install bubblewrap" in result.hint


def test_probe_says_when_namespaces_cannot_be_created(tmp_path: Path) -> None:
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\necho 'bwrap: No permissions to create new namespace' >&2\nexit 1\n")
    fake.chmod(0o755)
    result = probe(str(fake))
    assert not result.ok
    assert "cannot create namespaces" in result.problem
    assert "No permissions to create new namespace" in result.problem
    assert "unprivileged user namespaces" in result.hint


def test_probe_passes_here() -> None:
    result = probe()
    assert result.ok, f"{result.problem}; {result.hint}"


def test_a_write_path_that_links_into_a_hidden_store_is_refused(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (tmp_path / "innocent").symlink_to(home / ".aws")
    problems = contradictions(SandboxPolicy(write=(str(tmp_path / "innocent"),)), home)
    assert any("is hidden" in problem for problem in problems), problems
