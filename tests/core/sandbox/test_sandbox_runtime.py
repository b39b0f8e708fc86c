"""`runtime = "sandbox"` through the real engine and real bubblewrap (docs/reliability.md T6):
sandboxed agents' work is merged like any other, the agent side of corral works from inside,
and the boundary holds for operator commands, the shared git config, orphans and the network."""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import pytest

from corral.core.locks.shared_files import shared_dir
from corral.core.log import events as ev
from corral.core.runs.rundir import list_runs
from tests.conftest import git, wait_until
from tests.core.engine_helpers import (
    agent_block,
    corral,
    events_of,
    kill9,
    only_run,
    processes_with_env,
    start_corral,
    state_of,
    wait_for_run,
    write_plan,
)
from tests.core.operator_helpers import make_reviewable_run

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
    # verify is corral's own command, unsandboxed: it sees the engine's /tmp and environment
    verify = f'verify = ["sh", "-c", "test -d {tmp_path} && grep -q changed README.md"]\n'
    plan = sandboxed_plan(tmp_path, agent_block("writer", ["sh", "-c", script]), header=verify)
    result = corral(repo, "run", str(plan), "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    rundir = only_run(repo)
    state = state_of(rundir)
    assert [m.agent for m in state.merge.merged] == ["writer"]
    assert state.merge.verification is not None
    assert state.merge.verification.passed
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


def test_corral_put_writes_a_shared_file_from_the_sandbox_fenced_by_its_token(
    repo: Path, tmp_path: Path
) -> None:
    """`corral put` goes through the control socket mounted inside: the engine writes the file
    into the run's shared files under the lease's token, and refuses the token once released."""
    script = (
        f"t=$({CLI} lock acquire out --ttl 30) && "
        f"echo from the sandbox | {CLI} put out --token $t result.txt && "
        f"{CLI} lock release out --token $t && "
        f"if echo stale | {CLI} put out --token $t result.txt; then exit 3; fi; "
        'cat "$CORRAL_SHARED/result.txt"'
    )
    plan = sandboxed_plan(tmp_path, agent_block("writer", ["sh", "-c", script]))
    result = corral(repo, "run", str(plan), "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    rundir = only_run(repo)
    assert (shared_dir(rundir.path) / "result.txt").read_text() == "from the sandbox\n"
    events = events_of(rundir)
    assert [e.runtime for e in events if isinstance(e, ev.AgentStarted)] == ["sandbox"]
    refused = [e for e in events if isinstance(e, ev.FencedWriteRefused)]
    assert [(e.agent, e.lock) for e in refused] == [("writer", "out")]
    assert "from the sandbox" in rundir.output_log("writer", 1).read_text()


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
    """The runs it could approve are hidden (their directory is not mounted), so nothing lands;
    it is refused as T1 refuses an agent (tests/core/test_authority.py), and since the target
    run cannot be told, its own engine logs the refusal, named by its token."""
    target, sha, _ = make_reviewable_run(repo)
    before = git(repo, "rev-parse", "main")
    script = (
        f"{CLI} review approve {target.run_id} --sha {sha}; echo approve=$?; "
        f"{CLI} kill {target.run_id} a; echo kill=$?; "
        f'env -i PATH="$PATH" PYTHONPATH="$PYTHONPATH" {CLI} retry {target.run_id} a; echo retry=$?'
    )
    plan = sandboxed_plan(
        tmp_path, agent_block("approver", ["sh", "-c", script]), header="min_success = 0\n"
    )
    result = corral(repo, "run", str(plan), "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    run = next(r for r in list_runs(repo / ".git") if r.run_id != target.run_id)
    output = run.output_log("approver", 1).read_text()
    assert "approve=1" in output, output
    assert "kill=1" in output, output
    assert "retry=1" in output, output  # its environment cleared: its shell's marks tell
    assert "`approve` is an operator action" in output, output
    assert f"agent approver#1 of run {run.run_id}" in output, output
    assert "no corral runs" not in output, output
    refused = [e for e in events_of(run) if isinstance(e, ev.OperatorActionRefused)]
    assert [(e.action, e.target) for e in refused] == [
        ("approve", f"the report of run {target.run_id}"),
        ("kill", f"agent a of run {target.run_id}"),
        ("retry", f"agent a of run {target.run_id}"),
    ]
    assert {(e.caller_run, e.caller_agent, e.caller_attempt) for e in refused} == {
        (run.run_id, "approver", 1)
    }
    assert state_of(target).review is None
    assert git(repo, "rev-parse", "main") == before


def test_the_same_agent_unsandboxed_is_refused_and_logged_in_the_target_run(
    repo: Path, tmp_path: Path
) -> None:
    """`local`, as before: the target run is seen, so T1 refuses and logs it there."""
    target, sha, _ = make_reviewable_run(repo)
    approve = f"{CLI} review approve {target.run_id} --sha {sha}"
    plan = write_plan(
        tmp_path, agent_block("approver", ["sh", "-c", approve]), header="min_success = 0\n"
    )
    result = corral(repo, "run", str(plan), "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    run = next(r for r in list_runs(repo / ".git") if r.run_id != target.run_id)
    assert state_of(run).agents["approver"].attempts[-1].exit_code == 1
    assert "`approve` is an operator action" in run.output_log("approver", 1).read_text()
    refused = [e for e in events_of(target) if isinstance(e, ev.OperatorActionRefused)]
    assert [(e.action, e.caller_run, e.caller_agent) for e in refused] == [
        ("approve", run.run_id, "approver")
    ]
    assert not [e for e in events_of(run) if isinstance(e, ev.OperatorActionRefused)]
    assert state_of(target).review is None


FORGE = """
import json, os, socket
def send(**fields):
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(os.environ["CORRAL_SOCKET"])
    line = {"op": "operator_refused", "attempt": 1, "target": "the report", **fields}
    sock.sendall(json.dumps(line).encode() + b"\\n")
    print(sock.makefile().readline().strip())
own, token = os.environ["CORRAL_AGENT_ID"], os.environ["CORRAL_AGENT_TOKEN"]
send(agent="victim", token=token, action="approve")  # another agent's name, its own token
send(agent=own, token="0" * 32, action="approve")  # its own name, a made-up token
send(agent=own, token=token, action="merge everything")  # not an operator action
"""


def test_a_refusal_report_cannot_name_another_agent_or_do_anything_else(
    repo: Path, tmp_path: Path
) -> None:
    """A report is checked by its token and logged only as the attempt that holds it."""
    body = agent_block("forger", [sys.executable, "-c", FORGE]) + agent_block(
        "victim", ["sleep", "60"]
    )
    plan = sandboxed_plan(tmp_path, body, header="min_success = 0\n")
    started = start_corral(repo, "run", str(plan), "--quiet")
    try:
        run = wait_for_run(repo)
        wait_until(
            lambda: (
                "forger" in (agents := state_of(run).agents)
                and agents["forger"].state == "succeeded"
            ),
            timeout=60,
            what="the forger to finish",
        )
    finally:
        corral(repo, "kill", wait_for_run(repo).run_id, "victim")
        started.wait(timeout=60)
    output = run.output_log("forger", 1).read_text()
    lines = [line for line in output.splitlines() if line.startswith("{")]
    assert len(lines) == 3, output
    assert all('"ok":false' in line for line in lines), output
    assert '"code":"denied"' in lines[0], output
    assert '"code":"denied"' in lines[1], output
    assert "bad request: operator_refused.action" in lines[2], output
    assert not [e for e in events_of(run) if isinstance(e, ev.OperatorActionRefused)]


FLOOD = """
import json, os, socket
for _ in range(25):
    sock = socket.socket(socket.AF_UNIX)
    sock.connect(os.environ["CORRAL_SOCKET"])
    line = {"op": "operator_refused", "agent": os.environ["CORRAL_AGENT_ID"], "attempt": 1,
            "token": os.environ["CORRAL_AGENT_TOKEN"], "action": "kill", "target": "agent x"}
    sock.sendall(json.dumps(line).encode() + b"\\n")
    print(sock.makefile().readline().strip())
"""


def test_an_attempt_cannot_flood_the_log_with_refusal_reports(repo: Path, tmp_path: Path) -> None:
    plan = sandboxed_plan(tmp_path, agent_block("flood", [sys.executable, "-c", FLOOD]))
    result = corral(repo, "run", str(plan), "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    run = only_run(repo)
    output = run.output_log("flood", 1).read_text()
    assert output.count('"recorded":true') == 20, output
    assert output.count('"recorded":false') == 5, output
    refused = [e for e in events_of(run) if isinstance(e, ev.OperatorActionRefused)]
    assert len(refused) == 20


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


def test_validate_explains_a_sandboxed_agent_and_refuses_a_contradiction(
    repo: Path, tmp_path: Path
) -> None:
    body = agent_block("quiet", ["true"])
    body += agent_block("local-one", ["true"], runtime="local")
    plan = sandboxed_plan(tmp_path, body)
    shown = corral(repo, "validate", str(plan))
    assert shown.returncode == 0, shown.stderr
    assert "agent quiet runs sandboxed:" in shown.stdout
    assert "network: none (a new network namespace with loopback only)" in shown.stdout
    assert f"hidden: {Path.home() / '.ssh'}" in shown.stdout
    assert "local-one runs sandboxed" not in shown.stdout

    body = agent_block("leaky", ["true"])
    body += '[agent.sandbox]\nnetwork = "none"\nallow = ["example.com:443"]\nwrite = ["~/.ssh"]\n'
    (tmp_path / "bad").mkdir()
    bad = sandboxed_plan(tmp_path / "bad", body)
    refused = corral(repo, "validate", str(bad))
    assert refused.returncode == 2, refused.stdout + refused.stderr
    assert "agent 'leaky'" in refused.stderr
    assert 'set network = "allow" or remove allow' in refused.stderr
    assert "is hidden" in refused.stderr
    started = corral(repo, "run", str(bad), "--quiet")
    assert started.returncode == 2
    assert not list_runs(repo / ".git"), "nothing started"


def test_a_sandbox_table_on_an_unsandboxed_agent_is_a_warning(repo: Path, tmp_path: Path) -> None:
    body = agent_block("plain", ["true"]) + '[agent.sandbox]\nnetwork = "none"\n'
    plan = write_plan(tmp_path, body)
    shown = corral(repo, "validate", str(plan))
    assert shown.returncode == 0, shown.stderr
    assert "agent 'plain' has a sandbox policy but runs in runtime 'local'" in shown.stderr


def test_preflight_refuses_when_bubblewrap_cannot_sandbox(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from corral.core.errors import CorralError
    from corral.core.operator.actions import check_plan
    from corral.core.sandbox import bwrap

    def missing(name: str = "bwrap", timeout: float = 10.0) -> bwrap.ProbeResult:
        return bwrap.ProbeResult(
            ok=False, problem="bwrap (bubblewrap) is not installed", hint=bwrap.INSTALL_HINT
        )

    monkeypatch.setattr(bwrap, "probe", missing)
    plan = sandboxed_plan(tmp_path, agent_block("boxed", ["true"]))
    with pytest.raises(CorralError) as refused:
        check_plan(repo, plan)
    assert refused.value.exit_code == 2
    assert "apt-get install bubblewrap" in str(refused.value)
    assert not list_runs(repo / ".git")


def test_setup_runs_sandboxed_and_a_timed_out_agent_leaves_nothing(
    repo: Path, tmp_path: Path
) -> None:
    linger = f"import os, time\nif os.fork() == 0:\n    os.setsid()\ntime.sleep(300)  # {tmp_path}"
    body = agent_block(
        "slow",
        [sys.executable, "-c", linger],
        setup=[["sh", "-c", 'hostname > "$CORRAL_OUTPUT/setup.txt"']],
        timeout="2s",
        retries=0,
    )
    plan = sandboxed_plan(tmp_path, body, header="min_success = 0\n")
    engine = start_corral(repo, "run", str(plan), "--quiet")
    rundir = wait_for_run(repo)
    # seen from the host while it runs: the sweep's marks reach into the sandbox
    wait_until(
        lambda: len(processes_with_env("CORRAL_AGENT_ID", "slow")) >= 3,
        what="bubblewrap, the sandbox's init, the agent and its child",
    )
    assert engine.wait(timeout=60) == 0
    attempt = state_of(rundir).agents["slow"].attempts[-1]
    assert attempt.state == "timed_out", attempt.reason
    assert (rundir.output_dir("slow", 1) / "setup.txt").read_text() == "corral-sandbox\n"
    assert not processes_with_env("CORRAL_RUN_ID", rundir.run_id)


def test_a_sandboxed_agent_does_not_outlive_a_killed_engine(repo: Path, tmp_path: Path) -> None:
    """bubblewrap runs with --die-with-parent: the engine gone, its sandboxes end (a resumed
    engine finds the attempt lost, not running on unwatched)."""
    linger = f"import os, time\nif os.fork() == 0:\n    os.setsid()\ntime.sleep(300)  # {tmp_path}"
    plan = sandboxed_plan(tmp_path, agent_block("sleeper", [sys.executable, "-c", linger]))
    engine = start_corral(repo, "run", str(plan), "--quiet")
    rundir = wait_for_run(repo)
    try:
        wait_until(
            lambda: len(processes_with_env("CORRAL_AGENT_ID", "sleeper")) >= 3,
            what="the sandboxed agent and its child",
        )
    finally:
        kill9(engine)
    wait_until(
        lambda: not processes_with_env("CORRAL_RUN_ID", rundir.run_id),
        timeout=10,
        what="nothing of the run left",
    )


TICKER = (
    "import time\nn = 0\nwhile True:\n    n += 1\n    print(n, flush=True)\n    time.sleep(0.05)\n"
)


def test_a_sandboxed_agent_pauses_whole_with_its_pid_1_and_goes_on(
    repo: Path, tmp_path: Path
) -> None:
    """Pause stops bubblewrap's tree and the sandbox's pid 1 (every process of the attempt is
    stopped); unpaused, its output goes on; a kill of the paused sandbox leaves nothing."""
    import psutil

    from corral.core.operator import actions
    from corral.core.operator.identity import Operator

    alice = Operator(user="alice", reviewer="alice")
    plan = sandboxed_plan(tmp_path, agent_block("ticker", [sys.executable, "-c", TICKER]))
    engine = start_corral(repo, "run", str(plan), "--quiet")
    rundir = wait_for_run(repo)

    def log() -> Path:
        return rundir.output_log("ticker", 1)

    wait_until(lambda: log().exists() and len(log().read_text().split()) > 3, what="output")
    started = next(e for e in events_of(rundir) if isinstance(e, ev.AgentStarted))
    init_pid = started.identity.model_dump().get("init_pid")
    assert isinstance(init_pid, int)
    paused = actions.pause(rundir, "ticker", alice)
    assert paused.processes >= 2
    wait_until(
        lambda: psutil.Process(init_pid).status() == psutil.STATUS_STOPPED, what="pid 1 stopped"
    )
    run_id = state_of(rundir).run_id
    inside = processes_with_env("CORRAL_RUN_ID", run_id)
    assert inside
    wait_until(
        lambda: all(psutil.Process(p).status() == psutil.STATUS_STOPPED for p in inside),
        what="every process of the sandbox stopped",
    )
    frozen = log().read_text()
    actions.unpause(rundir, "ticker", alice)
    wait_until(lambda: len(log().read_text()) > len(frozen) + 6, what="output going on")
    actions.pause(rundir, "ticker", alice)
    actions.kill(rundir, "ticker", alice)
    assert engine.wait(timeout=60) == 1, "the only agent was cancelled: the run fails"
    assert not processes_with_env("CORRAL_RUN_ID", run_id)
    assert not psutil.pid_exists(init_pid) or psutil.Process(init_pid).status() == "zombie"
