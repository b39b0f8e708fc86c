"""`runtime = "sandbox"` through the real engine and real bubblewrap (docs/reliability.md T6):
sandboxed agents' work is merged like any other, the agent side of corral works from inside,
and the boundary holds for operator commands, the shared git config, orphans and the network."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import pytest

from corral.core.log import events as ev
from corral.core.runs.rundir import list_runs
from tests.conftest import git, wait_until
from tests.core.engine_helpers import (
    agent_block,
    corral,
    events_of,
    only_run,
    processes_with_env,
    state_of,
    write_plan,
)
from tests.core.test_review import make_reviewable_run

PY = shlex.quote(sys.executable)
CLI = f"{PY} -m corral.core.cli"
SANDBOX = '[run]\nruntime = "sandbox"\n'


@pytest.fixture(autouse=True)
def _bwrap(bwrap_works: None) -> None:
    """Every test here runs real bubblewrap (the probe fails the test if it cannot)."""


def sandboxed_plan(tmp_path: Path, body: str, header: str = "") -> Path:
    """A plan whose agents run in the sandbox, with this checkout of corral importable inside
    (the plan's env: the sandbox passes on nothing else of the engine's environment)."""
    env = {"PYTHONPATH": os.environ.get("PYTHONPATH", "")}
    defaults = "[defaults]\nenv = { " + ", ".join(f'{k} = "{v}"' for k, v in env.items()) + " }\n"
    return write_plan(tmp_path, defaults + body, header=f'runtime = "sandbox"\n{header}')


def test_a_sandboxed_edit_is_committed_and_merged_and_heartbeat_and_lock_work(
    repo: Path, tmp_path: Path
) -> None:
    script = (
        f"{CLI} heartbeat --progress 50% 'halfway' && "
        f"{CLI} lock run notes -- sh -c 'echo from the sandbox > NOTES.md' && "
        "echo changed > README.md && echo done"
    )
    plan = sandboxed_plan(tmp_path, agent_block("writer", ["sh", "-c", script]))
    result = corral(repo, "run", str(plan), "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    rundir = only_run(repo)
    state = state_of(rundir)
    assert [m.agent for m in state.merge.merged] == ["writer"]
    events = events_of(rundir)
    started = next(e for e in events if isinstance(e, ev.AgentStarted))
    assert started.runtime == "sandbox"
    beats = [e for e in events if isinstance(e, ev.AgentHeartbeat) and e.source == "beat"]
    assert [(b.progress, b.message) for b in beats] == [(0.5, "halfway")]
    assert [e.lock for e in events if isinstance(e, ev.LockAcquired)] == ["notes"]
    integration = state.merge.integration_commit
    assert integration is not None
    assert git(repo, "show", f"{integration}:README.md") == "changed"
    assert git(repo, "show", f"{integration}:NOTES.md") == "from the sandbox"


def test_a_sandboxed_commit_comes_back_and_the_shared_git_config_cannot_be_written(
    repo: Path, tmp_path: Path
) -> None:
    common = repo / ".git"
    before = (common / "config").read_text()
    script = (
        "echo c > C.md && git add C.md && git commit -qm 'sandboxed commit' && "
        "git config core.fsmonitor 'echo evil' && "  # lands in its private git directory
        f"if echo '[core] fsmonitor = evil' >> {common / 'config'}; then echo WROTE; fi; "
        "echo leftover > LEFT.md"
    )
    plan = sandboxed_plan(tmp_path, agent_block("committer", ["sh", "-c", script]))
    result = corral(repo, "run", str(plan), "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    rundir = only_run(repo)
    output = rundir.output_log("committer", 1).read_text()
    assert "WROTE" not in output
    assert "Read-only file system" in output
    assert (common / "config").read_text() == before
    branch = f"corral/{rundir.run_id}/committer/1"
    subjects = git(repo, "log", "--format=%s", f"main..{branch}").splitlines()
    assert "sandboxed commit" in subjects
    assert len(subjects) == 2, subjects  # its own commit, then corral's of the leftovers
    integration = state_of(rundir).merge.integration_commit
    assert git(repo, "show", f"{integration}:C.md") == "c"
    assert git(repo, "show", f"{integration}:LEFT.md") == "leftover"


def test_a_sandboxed_agent_cannot_approve_a_report(repo: Path, tmp_path: Path) -> None:
    """Unsandboxed, the authority refuses it (tests/core/test_authority.py); sandboxed, the
    runs it could approve are hidden (their directory is not mounted), so nothing lands."""
    target, sha, _ = make_reviewable_run(repo)
    before = git(repo, "rev-parse", "main")
    approve = f"{CLI} review approve {target.run_id} --sha {sha}"
    plan = sandboxed_plan(
        tmp_path, agent_block("approver", ["sh", "-c", approve]), header="min_success = 0\n"
    )
    result = corral(repo, "run", str(plan), "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    run = next(r for r in list_runs(repo / ".git") if r.run_id != target.run_id)
    attempt = state_of(run).agents["approver"].attempts[-1]
    # refused before any authority check: inside, no run of the repository can even be seen
    assert attempt.exit_code == 2, attempt.reason
    output = run.output_log("approver", 1).read_text()
    assert "no corral runs" in output, output
    assert state_of(target).review is None
    assert git(repo, "rev-parse", "main") == before


DOUBLE_FORK = """
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        time.sleep(300)
    os._exit(0)
os.wait()
print("parent exits")
"""


def test_nothing_outlives_a_sandboxed_agent_that_double_forks_and_exits(
    repo: Path, tmp_path: Path
) -> None:
    plan = sandboxed_plan(tmp_path, agent_block("forker", [sys.executable, "-c", DOUBLE_FORK]))
    result = corral(repo, "run", str(plan), "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    run_id = only_run(repo).run_id
    wait_until(
        lambda: not processes_with_env("CORRAL_RUN_ID", run_id), timeout=10, what="no orphan"
    )


FETCH = """
import sys, urllib.request, urllib.error
try:
    print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())
except urllib.error.HTTPError as error:
    print("refused", error.code)
"""


def test_a_refused_destination_is_an_event_naming_the_agent(repo: Path, tmp_path: Path) -> None:
    body = agent_block(
        "fetcher", [sys.executable, "-c", FETCH, "http://127.0.0.1:9/"], kind="audit"
    )
    body += '[agent.sandbox]\nnetwork = "allow"\nallow = ["127.0.0.1:1"]\n'
    plan = sandboxed_plan(tmp_path, body, header="min_success = 0\n")
    result = corral(repo, "run", str(plan), "--quiet")
    rundir = only_run(repo)
    assert "refused 403" in rundir.output_log("fetcher", 1).read_text(), result.stdout
    refused = [e for e in events_of(rundir) if isinstance(e, ev.NetworkRefused)]
    assert [(e.agent, e.attempt, e.destination) for e in refused] == [("fetcher", 1, "127.0.0.1:9")]
