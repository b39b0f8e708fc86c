"""Known secrets stay out of what corral stores: logs, agent output, events, the plan copy."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from corral.core.plan.model import FromEnv, PlanError, load_plan
from corral.core.trust import redact
from corral.core.trust.redact import Redactor, is_secret_name
from tests.conftest import git
from tests.core.engine_helpers import corral, events_of, only_run, state_of, write_plan

SECRET = "sk-test-0123456789abcdef"
REFERENCED = "ref-secret-9876543210"


def test_secret_names() -> None:
    secret = ("ANTHROPIC_API_KEY", "GITHUB_TOKEN", "AWS_SECRET_ACCESS_KEY", "PGPASSWORD", "db_pass")
    for name in secret:
        assert is_secret_name(name), name
    for name in ("PATH", "HOME", "XAUTHORITY", "SSH_AUTH_SOCK", "KEYBOARD", "TOKENIZERS_DIR"):
        assert not is_secret_name(name), name


def test_redact_replaces_longest_first_and_ignores_short_values() -> None:
    redactor = Redactor({"LONG": "abcdefgh-ijkl", "SHORT": "abcdefgh", "TINY": "abc"})
    text = "x abcdefgh-ijkl y abcdefgh z abc"
    assert redactor.redact(text) == "x [redacted LONG] y [redacted SHORT] z abc"
    assert not Redactor({"TINY": "abc"})


def test_redact_file_finds_a_value_cut_by_a_chunk_boundary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(redact, "CHUNK", 16)
    path = tmp_path / "output.log"
    body = b"\x00binary\xff " + b"padding " * 7 + SECRET.encode() + b" tail " * 9 + SECRET.encode()
    for cut in range(1, 40):  # the secret at every offset against the 16-byte chunks
        data = b"." * cut + body
        path.write_bytes(data)
        path.chmod(0o640)
        assert Redactor({"API_KEY": SECRET}).redact_file(path)
        expected = data.replace(SECRET.encode(), b"[redacted API_KEY]")
        assert path.read_bytes() == expected
        assert path.stat().st_mode & 0o777 == 0o640
    assert sorted(p.name for p in tmp_path.iterdir()) == ["output.log"]  # no temp file left


def test_a_file_without_secrets_is_not_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "clean.log"
    path.write_text("nothing to hide\n")
    inode = path.stat().st_ino
    assert not Redactor({"API_KEY": SECRET}).redact_file(path)
    assert path.stat().st_ino == inode


def test_a_symlink_left_by_an_agent_is_not_followed(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text(SECRET)
    link = tmp_path / "link"
    link.symlink_to(outside)
    assert not Redactor({"API_KEY": SECRET}).redact_file(link)
    assert outside.read_text() == SECRET


def test_plan_takes_a_variable_by_reference(tmp_path: Path) -> None:
    plan = write_plan(
        tmp_path,
        '[[agent]]\nid = "a"\ncommand = ["true"]\nenv = { KEY = { from_env = "MY_KEY" } }\n',
    )
    assert load_plan(plan).agents[0].env == {"KEY": FromEnv(from_env="MY_KEY")}
    bad = write_plan(
        tmp_path, '[[agent]]\nid = "a"\ncommand = ["true"]\nenv = { KEY = { from = "X" } }\n'
    )
    with pytest.raises(PlanError, match="env"):
        load_plan(bad)


def test_an_unset_reference_is_a_bad_plan(repo: Path, tmp_path: Path) -> None:
    os.environ.pop("CORRAL_TEST_UNSET", None)
    plan = write_plan(
        tmp_path,
        '[[agent]]\nid = "a"\ncommand = ["true"]\n'
        'env = { KEY = { from_env = "CORRAL_TEST_UNSET" } }\n',
    )
    result = corral(repo, "run", str(plan))
    assert result.returncode == 2
    assert "CORRAL_TEST_UNSET is not set in corral's environment" in result.stderr
    assert "env.KEY" in result.stderr


AGENT = r"""
echo "key=$MY_API_KEY ref=$PASSED token=$CORRAL_AGENT_TOKEN"
echo "findings mention $PASSED" > "$CORRAL_OUTPUT/notes.txt"
corral heartbeat "working with $MY_API_KEY"
T=$(corral lock acquire db --ttl 30 --reason "migrating with $MY_API_KEY")
corral lock release db --token "$T"
echo "$MY_API_KEY" > leaked.txt
"""


def test_no_secret_reaches_the_run_directory(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MY_API_KEY", SECRET)
    monkeypatch.setenv("CORRAL_TEST_SOURCE", REFERENCED)
    script = tmp_path / "agent.sh"
    script.write_text(AGENT)
    plan = write_plan(
        tmp_path,
        f'[[agent]]\nid = "leaky"\ncommand = ["sh", "{script}"]\n'
        'env = { PASSED = { from_env = "CORRAL_TEST_SOURCE" } }\n',
    )
    result = corral(repo, "run", str(plan))
    assert result.returncode == 0, result.stdout + result.stderr
    rundir = only_run(repo)
    state = state_of(rundir)
    attempt = state.agents["leaky"].attempts[0]
    log = Path(attempt.log_path).read_text()
    assert (
        "key=[redacted MY_API_KEY] ref=[redacted PASSED] token=[redacted CORRAL_AGENT_TOKEN]" in log
    )
    assert (
        Path(attempt.output_dir) / "notes.txt"
    ).read_text() == "findings mention [redacted PASSED]\n"
    beats = [e for e in events_of(rundir) if e.type == "agent_heartbeat" and e.source == "beat"]
    assert [b.message for b in beats] == ["working with [redacted MY_API_KEY]"]
    grants = [e for e in events_of(rundir) if e.type == "lock_acquired"]
    assert [g.reason for g in grants] == ["migrating with [redacted MY_API_KEY]"]
    for path in rundir.path.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            assert SECRET.encode() not in data, path
            assert REFERENCED.encode() not in data, path
    # the files the agent wrote are its work, committed as they are: redaction is for output
    assert git(repo, "show", f"{attempt.branch}:leaked.txt") == SECRET


def test_a_follower_rereads_a_log_replaced_by_its_redacted_copy(tmp_path: Path) -> None:
    from corral.tui.ops import read_more

    log = tmp_path / "output.log"
    log.write_bytes(b"key=" + SECRET.encode() + b"\n")
    data, offset, inode = read_more(log, 0)
    assert data.endswith(SECRET.encode() + b"\n")
    assert Redactor({"API_KEY": SECRET}).redact_file(log)
    data, offset, replaced = read_more(log, offset, inode)
    assert replaced != inode
    assert data == b"key=[redacted API_KEY]\n"  # the whole redacted copy, from its start
    assert read_more(log, offset, replaced) == (b"", offset, replaced)


def test_a_secret_written_into_the_plan_is_warned_about(repo: Path, tmp_path: Path) -> None:
    plan = write_plan(
        tmp_path,
        '[[agent]]\nid = "a"\ncommand = ["true"]\n'
        'env = { API_KEY = "sk-literal-123456", MODE = "fast-and-loose" }\n',
    )
    result = corral(repo, "validate", str(plan))
    assert result.returncode == 0
    warnings = [line for line in result.stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1
    assert "env.API_KEY" in warnings[0]
    assert '{ from_env = "API_KEY" }' in warnings[0]


def test_a_url_with_a_password_is_a_secret_whatever_its_name() -> None:
    env = {"DATABASE_URL": "postgres://app:pw-0123456789@db/app", "HOMEPAGE": "https://x.dev/a"}
    redactor = Redactor.for_environment(env)
    assert redactor.redact(f"using {env['DATABASE_URL']}") == "using [redacted DATABASE_URL]"
    assert redactor.redact(env["HOMEPAGE"]) == env["HOMEPAGE"]


def test_the_recorded_environment_keeps_secrets_by_name_only(tmp_path: Path) -> None:
    """What a run's agents start from is recorded without a secret value, and re-read on resume."""
    from corral.core.runs.environment import (
        EnvironmentRecordError,
        base_environment,
        read_record,
        record,
        write_record,
    )

    plan_path = tmp_path / "plan.toml"
    plan_path.write_text(
        '[[agent]]\nid = "a"\ncommand = ["true"]\nenv = { DB = { from_env = "PLAIN_REF" } }\n'
    )
    started = {
        "PATH": "/usr/bin",
        "DEMO_TOOLS": "/opt/tools",
        "MY_API_KEY": SECRET,
        "DATABASE_URL": "postgres://app:pw-0123456789@db/app",
        "PLAIN_REF": REFERENCED,
        "CORRAL_SOCKET": "/tmp/x.sock",
        "SSH_AUTH_SOCK": "/tmp/ssh-old/agent",
    }
    recorded = record(started, load_plan(plan_path))
    assert recorded.values == {"DEMO_TOOLS": "/opt/tools", "PATH": "/usr/bin"}
    assert recorded.secrets == ["DATABASE_URL", "MY_API_KEY", "PLAIN_REF"]
    path = tmp_path / "environment.json"
    write_record(path, recorded)
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert SECRET.encode() not in path.read_bytes()
    assert b"pw-0123456789" not in path.read_bytes()
    assert read_record(path) == recorded

    resumed = {"PATH": "/elsewhere", "DATABASE_URL": "postgres://app:new@db/app"}
    resumed |= {"PLAIN_REF": "rotated", "SSH_AUTH_SOCK": "/tmp/ssh-new/agent"}
    base = base_environment(recorded, resumed)
    assert base.values == {
        "PATH": "/usr/bin",
        "DEMO_TOOLS": "/opt/tools",
        "DATABASE_URL": "postgres://app:new@db/app",
        "PLAIN_REF": "rotated",
        "SSH_AUTH_SOCK": "/tmp/ssh-new/agent",
    }
    assert base.missing == ("MY_API_KEY",)
    problem = base.problem("r1")
    assert problem is not None
    assert "MY_API_KEY" in problem
    assert "export it" in problem

    path.write_text('{"format": "corral-environment", "values": {}}')
    with pytest.raises(EnvironmentRecordError, match=r"secrets: Field required"):
        read_record(path)
    path.unlink()
    path.symlink_to(tmp_path / "plan.toml")
    with pytest.raises(EnvironmentRecordError, match="plain file corral wrote"):
        read_record(path)
    assert read_record(tmp_path / "absent.json") is None
