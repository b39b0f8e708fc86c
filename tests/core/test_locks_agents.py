"""Locks end to end: real agent processes against a real engine, counted from the event log.

These are the issue's must-show cases. Leases use short TTLs (1s) and a short grace (0.5s), and
every wait is a condition with a deadline.
"""

from __future__ import annotations

import os
import signal
import sys
import textwrap
from pathlib import Path

import pytest

from corral.core.locks.shared_files import shared_dir
from corral.core.log import events as ev
from corral.core.runs.rundir import RunDir
from corral.core.sandbox.bwrap import probe
from tests.conftest import wait_until
from tests.core.engine_helpers import (
    agent_block,
    corral,
    engine_output,
    events_of,
    kill9,
    only_run,
    processes_with_env,
    start_corral,
    state_of,
    wait_for_event,
    wait_for_run,
    write_plan,
)

PY = sys.executable
GRACE = 0.5
HEADER = f'lock_grace = "{int(GRACE * 1000)}ms"\n'
SLACK = 0.005
"""Wall-clock stamps of two events may differ from the monotonic reclaim by a few ms."""


def script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(
        "import os, subprocess, sys, time\n"
        "from pathlib import Path\n"
        "from corral.core.agent.lock_client import LockClient, WriteRefused\n"
        "marks = Path(sys.argv[1])\n"
        "locks = LockClient.from_env()\n" + textwrap.dedent(body)
    )
    return path


def wait_file(path: Path, timeout: float = 30) -> str:
    found = wait_until(
        lambda: path.exists() and path.read_text().strip(), timeout=timeout, what=str(path)
    )
    assert isinstance(found, str)
    return found


def hold_intervals(events: list[ev.Event], lock: str) -> list[tuple[int, int, int]]:
    """(token, grant seq, end seq) of every lease of `lock`, checking they never overlap."""
    intervals: list[tuple[int, int, int]] = []
    holding: tuple[int, int] | None = None
    for event in events:
        if isinstance(event, ev.LockAcquired) and event.lock == lock:
            assert holding is None, f"token {event.token} granted while {holding[0]} was held"
            holding = (event.token, event.seq)
        elif (
            isinstance(event, ev.LockReleased | ev.LockExpired | ev.LockBroken)
            and event.lock == lock
        ):
            assert holding is not None
            assert holding[0] == event.token, f"{event.token} ended while {holding[0]} held"
            intervals.append((holding[0], holding[1], event.seq))
            holding = None
    assert holding is None, f"token {holding} never released"
    tokens = [token for token, _, _ in intervals]
    assert tokens == sorted(tokens)
    assert len(set(tokens)) == len(tokens)
    return intervals


def lease_end(events: list[ev.Event], token: int) -> float:
    """The last wall-clock end the log gave a lease (its grant, or its latest renewal)."""
    end = None
    for event in events:
        if isinstance(event, ev.LockAcquired | ev.LockRenewed) and event.token == token:
            end = event.expires_at
    assert end is not None
    return end


def grant_of(events: list[ev.Event], token: int) -> ev.LockAcquired:
    return next(e for e in events if isinstance(e, ev.LockAcquired) and e.token == token)


COUNT_TO_200 = """
counter = Path(os.environ["CORRAL_SHARED"]) / "counter"
for _ in range(200):
    lease = locks.acquire("counter", ttl=30, wait=120)
    value = int(counter.read_text()) if counter.exists() else 0
    scratch = counter.with_name(f"counter.{os.getpid()}")
    scratch.write_text(str(value + 1))
    os.replace(scratch, counter)
    locks.release(lease)
"""


@pytest.mark.slow
@pytest.mark.parametrize("runtime", ["local", "sandbox"])
def test_sixteen_agents_count_to_3200_under_one_lease(
    repo: Path, tmp_path: Path, runtime: str
) -> None:
    """No lost update: every increment of the shared counter happens under the lease. In the
    sandbox the agents reach the lock service through the control socket mounted inside and
    write the run's shared files, the only host directory besides their own they may write."""
    counter = script(tmp_path, "count.py", COUNT_TO_200)
    header = "max_parallel = 16\n" + HEADER
    if runtime == "sandbox":
        assert probe().ok, probe().problem
        header += 'runtime = "sandbox"\n'
        # the sandbox has its own /tmp (so not this test's), and passes on none of the
        # engine's environment: the script goes on the command line, the checkout in `env`
        command = [PY, "-c", counter.read_text(), "-"]
        env = {"PYTHONPATH": os.environ.get("PYTHONPATH", "")}
        body = "".join(agent_block(f"w{i}", command, env=env) for i in range(16))
    else:
        body = "".join(agent_block(f"w{i}", [PY, str(counter), str(tmp_path)]) for i in range(16))
    plan = write_plan(tmp_path, body, header=header)
    result = corral(repo, "run", str(plan), "--quiet", timeout=180)
    assert result.returncode == 0, result.stdout + result.stderr
    rundir = only_run(repo)
    assert (shared_dir(rundir.path) / "counter").read_text() == "3200"
    events = events_of(rundir)
    intervals = hold_intervals(events, "counter")
    assert len(intervals) == 3200
    assert sum(isinstance(e, ev.LockWaiting) for e in events) > 100, "no contention at all?"
    assert {e.agent for e in events if isinstance(e, ev.LockAcquired)} == {
        f"w{i}" for i in range(16)
    }
    assert {e.runtime for e in events if isinstance(e, ev.AgentStarted)} == {runtime}
    state = state_of(rundir)
    assert state.locks["counter"].holder is None
    assert state.locks["counter"].newest_token == state.max_token == 3200


def test_shell_agents_count_through_lock_run(repo: Path, tmp_path: Path) -> None:
    increment = (
        'f="$CORRAL_SHARED/counter"; n=$(cat "$f" 2>/dev/null || echo 0); '
        'echo $((n + 1)) > "$f.$$"; mv "$f.$$" "$f"; '
        'test "$CORRAL_LOCK_NAME" = counter && test -n "$CORRAL_LOCK_TOKEN"'
    )
    loop = f"for i in 1 2 3 4 5 6 7 8; do corral lock run counter --wait 60 -- sh -c '{increment}' || exit 1; done"
    body = "".join(agent_block(f"sh{i}", ["sh", "-c", loop]) for i in range(4))
    plan = write_plan(tmp_path, body, header=HEADER)
    result = corral(repo, "run", str(plan), "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    rundir = only_run(repo)
    assert (shared_dir(rundir.path) / "counter").read_text().strip() == "32"
    intervals = hold_intervals(events_of(rundir), "counter")
    assert len(intervals) == 32


def test_a_paused_holder_cannot_write_after_losing_its_lease(repo: Path, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    first = script(
        tmp_path,
        "first.py",
        """
        lease = locks.acquire("out", ttl=1, wait=5)
        (marks / "first").write_text(f"{os.getpid()} {lease.token}")
        while not (marks / "go").exists():
            time.sleep(0.01)
        try:
            locks.put("out", lease.token, "result.txt", b"from first (stale)")
            (marks / "outcome").write_text("accepted")
        except WriteRefused as exc:
            (marks / "outcome").write_text(f"refused: {exc}")
        """,
    )
    second = script(
        tmp_path,
        "second.py",
        """
        while not (marks / "first").exists():
            time.sleep(0.01)
        lease = locks.acquire("out", ttl=10, wait=30)
        locks.put("out", lease.token, "result.txt", b"from second")
        locks.release(lease)
        """,
    )
    body = agent_block("first", [PY, str(first), str(marks)]) + agent_block(
        "second", [PY, str(second), str(marks)]
    )
    plan = write_plan(tmp_path, body, header=HEADER)
    engine = start_corral(repo, "run", str(plan), "--quiet")
    rundir = wait_for_run(repo)
    pid, token = map(int, wait_file(marks / "first").split())
    os.kill(pid, signal.SIGSTOP)
    try:
        (marks / "go").write_text("go")
        written = wait_for_event(
            rundir,
            lambda e: isinstance(e, ev.FencedWriteAccepted) and e.agent == "second",
            what="the second agent's write",
        )
    finally:
        os.kill(pid, signal.SIGCONT)
    assert engine.wait(timeout=60) == 0, engine_output(repo)
    assert (marks / "outcome").read_text().startswith("refused: write to result.txt refused")
    events = events_of(rundir)
    (refused,) = [e for e in events if isinstance(e, ev.FencedWriteRefused)]
    assert isinstance(written, ev.FencedWriteAccepted)
    assert (refused.agent, refused.token, refused.newest_token) == ("first", token, written.token)
    assert refused.seq > written.seq
    assert (shared_dir(rundir.path) / "result.txt").read_bytes() == b"from second"
    # the second got the lock only after the first's TTL + grace, with a larger token
    assert written.token > token
    assert grant_of(events, written.token).ts >= lease_end(events, token) + GRACE - SLACK
    (expired,) = [e for e in events if isinstance(e, ev.LockExpired)]
    assert expired.token == token
    assert expired.overdue >= GRACE


def test_a_killed_holders_lease_is_regranted_after_ttl_plus_grace(
    repo: Path, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    agent = script(
        tmp_path,
        "holder.py",
        """
        if len(sys.argv) > 2:  # the worker: take the lease and hang on to it
            lease = locks.acquire("res", ttl=1, wait=5)
            (marks / "worker").write_text(f"{os.getpid()} {lease.token}")
            time.sleep(600)
        worker = subprocess.Popen([sys.executable, __file__, str(marks), "worker"])
        worker.wait()  # the test SIGKILLs it; this attempt lives on
        lease = locks.acquire("res", ttl=5, wait=30)
        (marks / "again").write_text(str(lease.token))
        locks.release(lease)
        """,
    )
    plan = write_plan(tmp_path, agent_block("holder", [PY, str(agent), str(marks)]), header=HEADER)
    engine = start_corral(repo, "run", str(plan), "--quiet")
    rundir = wait_for_run(repo)
    pid, token = map(int, wait_file(marks / "worker").split())
    os.kill(pid, signal.SIGKILL)
    assert engine.wait(timeout=60) == 0, engine_output(repo)
    events = events_of(rundir)
    again = int((marks / "again").read_text())
    assert again > token
    assert grant_of(events, again).ts >= lease_end(events, token) + GRACE - SLACK
    assert [e.token for e in events if isinstance(e, ev.LockExpired)] == [token]
    hold_intervals(events, "res")


def test_engine_killed_while_a_lease_is_held_then_resumed(repo: Path, tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    agent = script(
        tmp_path,
        "resumed.py",
        """
        if os.environ["CORRAL_ATTEMPT"] == "1":
            with locks.hold("res", ttl=1, wait=5) as held:
                time.sleep(0.5)  # at least one renewal is logged
                (marks / "held").write_text(str(held.token))
                time.sleep(600)
        lease = locks.acquire("res", ttl=5, wait=30)
        (marks / "after").write_text(str(lease.token))
        locks.release(lease)
        """,
    )
    plan = write_plan(tmp_path, agent_block("holder", [PY, str(agent), str(marks)]), header=HEADER)
    engine = start_corral(repo, "run", str(plan), "--quiet")
    rundir = wait_for_run(repo)
    token = int(wait_file(marks / "held"))
    kill9(engine)
    before = events_of(rundir)
    end = lease_end(before, token)
    assert any(isinstance(e, ev.LockRenewed) for e in before)
    result = corral(repo, "run", "--resume", rundir.run_id, "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    events = events_of(rundir)
    resumed = next(e for e in events if isinstance(e, ev.EngineResumed))
    grants_after = [e for e in events if isinstance(e, ev.LockAcquired) and e.seq > resumed.seq]
    assert [e.token for e in grants_after] == [int((marks / "after").read_text())]
    # no second holder before the logged end + grace, and a token above every token logged
    assert grants_after[0].ts >= end + GRACE - SLACK
    assert grants_after[0].token > max(e.token for e in before if isinstance(e, ev.LockAcquired))
    (expired,) = [e for e in events if isinstance(e, ev.LockExpired)]
    assert expired.token == token
    assert not [e for e in events if isinstance(e, ev.LockReleased) and e.token == token]
    hold_intervals(events, "res")
    state = state_of(rundir)
    assert [a.state for a in state.agents["holder"].attempts] == ["lost", "succeeded"]
    assert not processes_with_env("CORRAL_RUN_ID", state.run_id)


def test_declared_locks_in_opposite_orders_do_not_deadlock(repo: Path, tmp_path: Path) -> None:
    work = ["sh", "-c", "sleep 0.3"]
    body = agent_block("ab", work, locks=["a", "b"]) + agent_block("ba", work, locks=["b", "a"])
    plan = write_plan(tmp_path, body, header=HEADER)
    result = corral(repo, "run", str(plan), "--quiet", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    rundir = only_run(repo)
    events = events_of(rundir)
    for name in ("a", "b"):
        intervals = hold_intervals(events, name)
        assert len(intervals) == 2
    granted = [(e.agent, e.lock) for e in events if isinstance(e, ev.LockAcquired)]
    assert all(e.declared for e in events if isinstance(e, ev.LockAcquired))
    for agent in ("ab", "ba"):
        assert [lock for who, lock in granted if who == agent] == ["a", "b"]  # sorted order
        started = next(e for e in events if isinstance(e, ev.AgentStarting) and e.agent == agent)
        held = [e.seq for e in events if isinstance(e, ev.LockAcquired) and e.agent == agent]
        assert max(held) < started.seq, "an agent started before it held its declared locks"
    # whoever came second waited, shown as waiting for the lock and its holder
    waited = next(e for e in events if isinstance(e, ev.LockWaiting))
    assert waited.declared
    assert waited.holder in ("ab", "ba")
    from corral.core.log.state import fold

    seen = fold([e for e in events if e.seq <= waited.seq]).agents[waited.agent]
    assert seen.state == "waiting"
    assert seen.reason == f"waiting for lock {waited.lock} held by {waited.holder} (token 1)"
    assert all(lock.holder is None for lock in state_of(rundir).locks.values())


def test_operator_lists_and_breaks_a_lock_and_lock_run_stops_its_command(
    repo: Path, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    cmd = f"echo $$ > {marks}.pid; exec sleep 600"
    agent = ["corral", "lock", "run", "db", "--ttl", "1", "--grace", "200ms", "--", "sh", "-c", cmd]
    plan = write_plan(tmp_path, agent_block("migrate", agent), header=HEADER)
    engine = start_corral(repo, "run", str(plan), "--quiet")
    rundir = wait_for_run(repo)
    cmd_pid = int(wait_file(Path(f"{marks}.pid")))
    wait_for_event(rundir, lambda e: isinstance(e, ev.LockRenewed), what="a renewal")
    listing = corral(repo, "lock", "list", "--run", rundir.run_id, check=True).stdout
    grant = next(e for e in events_of(rundir) if isinstance(e, ev.LockAcquired))
    holder_line = listing.splitlines()[1].split()
    assert holder_line[:4] == ["db", "migrate#1", str(grant.pid), str(grant.token)]
    assert "of 1s" in listing
    broke = corral(
        repo, "lock", "break", "db", "--run", rundir.run_id, "--reason", "stuck migration"
    )
    assert broke.returncode == 0, broke.stderr
    assert "broke the lease of migrate#1" in broke.stdout
    assert engine.wait(timeout=30) == 1, engine_output(repo)
    events = events_of(rundir)
    (broken,) = [e for e in events if isinstance(e, ev.LockBroken)]
    assert (broken.lock, broken.reason, broken.token) == ("db", "stuck migration", grant.token)
    assert broken.by
    attempt = state_of(rundir).agents["migrate"].attempts[0]
    assert attempt.exit_code == 76
    assert "was lost" in rundir.output_log("migrate", 1).read_text()
    assert not processes_with_env("CORRAL_RUN_ID", state_of(rundir).run_id)
    with pytest.raises(ProcessLookupError):
        os.kill(cmd_pid, 0)


def _planted(repo: Path, name: str) -> tuple[RunDir, Path]:
    """A run directory made in advance with `name` a symlink to a victim file."""
    from corral.core.runs.rundir import ensure_private_dir, runs_root

    rundir = RunDir(runs_root(repo / ".git") / f"20990101-000000-{name[:6].replace('.', 'x')}")
    ensure_private_dir(rundir.path)
    victim = repo.parent / f"victim-{name}"
    victim.write_text("keep me")
    target = rundir.socket if name == "control.sock" else rundir.path / name
    target.symlink_to(victim)
    return rundir, victim


@pytest.mark.parametrize("name", ["engine.lock", "events.jsonl", "control.sock"])
def test_a_planted_symlink_is_never_written_through(repo: Path, tmp_path: Path, name: str) -> None:
    rundir, victim = _planted(repo, name)
    plan = write_plan(tmp_path, agent_block("a", ["true"]))
    result = corral(repo, "run", str(plan), "--run-id", rundir.run_id, "--quiet")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr, result.stderr
    assert "link" in result.stderr or "not a socket" in result.stderr, result.stderr
    assert victim.read_text() == "keep me"
    assert (rundir.socket if name == "control.sock" else rundir.path / name).is_symlink()


def test_an_agent_waiting_for_a_declared_lock_can_be_killed(repo: Path, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    holder = ["sh", "-c", f"while [ ! -f {gate} ]; do sleep 0.05; done"]
    body = agent_block("holder", holder, locks=["db"]) + agent_block(
        "waiter", ["true"], locks=["db"]
    )
    plan = write_plan(tmp_path, body, header=HEADER + 'stagger = "400ms"\n')  # holder first
    engine = start_corral(repo, "run", str(plan), "--quiet")
    rundir = wait_for_run(repo)
    waiting = wait_for_event(
        rundir, lambda e: isinstance(e, ev.LockWaiting) and e.declared, what="a declared wait"
    )
    assert isinstance(waiting, ev.LockWaiting)
    assert (waiting.agent, waiting.holder) == ("waiter", "holder")
    live = state_of(rundir).agents[waiting.agent]
    assert live.state == "waiting"
    assert f"waiting for lock db held by {waiting.holder}" in live.reason
    killed = corral(repo, "kill", rundir.run_id, waiting.agent, "--reason", "not needed")
    assert killed.returncode == 0, killed.stderr
    wait_for_event(rundir, lambda e: isinstance(e, ev.AgentCancelled), what="the cancel")
    gate.write_text("go")
    assert engine.wait(timeout=30) == 1, engine_output(repo)  # one of two cancelled: failed run
    events = events_of(rundir)
    (abandoned,) = [e for e in events if isinstance(e, ev.LockWaitAbandoned)]
    assert (abandoned.agent, abandoned.lock) == (waiting.agent, "db")
    assert not [e for e in events if isinstance(e, ev.AgentStarting) and e.agent == waiting.agent]
    state = state_of(rundir)
    assert state.agents[waiting.agent].state == "cancelled"
    assert state.agents["holder"].state == "succeeded"
    assert state.locks["db"].holder is None
    assert not state.locks["db"].waiters
