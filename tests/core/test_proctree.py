"""Agent processes with real programs: spawn, exit codes, whole-tree termination, pid reuse, CPU.

Every test records the processes it caused and the sessions it created; the `procs` fixture
fails the test (after killing them) if any is still alive at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import stat
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from corral.core.runtime import kill as proc_kill
from corral.core.runtime import procfs as proc_scan
from corral.core.runtime.procfs import (
    BOOT_TIME,
    CLOCK_TICKS,
    ProcStat,
    attempt_in,
    read_marks,
    read_stat,
    scan,
)
from corral.core.runtime.proctree import (
    CpuSampler,
    Marks,
    Spawned,
    SpawnError,
    TerminateError,
    _wait_exit_polling,
    is_same_process,
    process_start_time,
    spawn,
    terminate_attempt,
    terminate_tree,
    tree_members,
    wait_exit,
)
from tests.conftest import wait_until

PY = sys.executable


def gone(pid: int, start_time: float) -> bool:
    """Whether the process (pid, start_time) no longer runs; a zombie counts as gone."""
    try:
        proc = psutil.Process(pid)
        if abs(proc.create_time() - start_time) > 0.05:
            return True
        return proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


class Procs:
    """Spawns agents for a test and remembers every process and session it must clean up."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        #: This test's own run id: marks are machine-wide, and tests run in parallel.
        self.run_id = f"r-{uuid.uuid4().hex[:12]}"
        self.agents: list[Spawned] = []
        self.pids: dict[int, float] = {}

    def env(self, **extra: str) -> dict[str, str]:
        return {"PATH": os.environ["PATH"], "LC_ALL": "C", **extra}

    def spawn(self, argv: list[str], name: str = "agent", **env: str) -> Spawned:
        log = self.tmp_path / f"{name}.log"
        spawned = spawn(argv, cwd=self.tmp_path, env=self.env(**env), log_path=log)
        self.agents.append(spawned)
        self.track(spawned.pid)
        return spawned

    def log(self, name: str = "agent") -> str:
        path = self.tmp_path / f"{name}.log"
        return path.read_text() if path.exists() else ""

    def wait_log(self, needle: str, name: str = "agent") -> str:
        """The log once it contains `needle` (deadline-bound)."""
        wait_until(lambda: needle in self.log(name), what=f"{needle!r} in {name}.log")
        return self.log(name)

    def track(self, pid: int) -> None:
        start = process_start_time(pid)
        if start is not None:
            self.pids.setdefault(pid, start)

    def track_tree(self, spawned: Spawned) -> list[int]:
        members = tree_members(spawned.pid, spawned.start_time)
        for pid in members:
            self.track(pid)
        return members

    def leftovers(self) -> list[int]:
        """Everything still alive that this test started, killing it so nothing leaks."""
        alive = [pid for pid, start in self.pids.items() if not gone(pid, start)]
        sessions = {a.pid for a in self.agents}
        alive += [s.pid for s in scan().values() if s.session in sessions and not s.zombie]
        alive = sorted(set(alive))
        for pid in alive:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for agent in self.agents:
            if agent.popen.poll() is None:
                alive.append(agent.pid)
                agent.popen.kill()
                agent.popen.wait(10)
        return alive


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    """A process recorder whose teardown fails the test if any process outlived it."""
    recorder = Procs(tmp_path)
    yield recorder
    assert recorder.leftovers() == [], "processes outlived the test"


# --- spawn ---------------------------------------------------------------------------------------


def test_spawn_logs_stdout_and_stderr_with_env_and_cwd(procs: Procs) -> None:
    work = procs.tmp_path / "ws"
    work.mkdir()
    log = procs.tmp_path / "agent.log"
    script = 'echo out; echo err >&2; echo "id=$CORRAL_AGENT_ID home=${HOME-unset}"; pwd'
    agent = spawn(
        ["sh", "-c", script],
        cwd=work,
        env={"PATH": os.environ["PATH"], "CORRAL_AGENT_ID": "a-7"},
        log_path=log,
    )
    procs.agents.append(agent)
    assert asyncio.run(wait_exit(agent, 20)) == 0
    assert log.read_text() == f"out\nerr\nid=a-7 home=unset\n{work}\n"
    assert stat.S_IMODE(log.stat().st_mode) == 0o600


def test_spawn_appends_to_an_existing_log(procs: Procs) -> None:
    (procs.tmp_path / "agent.log").write_text("attempt 1\n")
    agent = procs.spawn(["sh", "-c", "echo attempt 2"])
    assert asyncio.run(wait_exit(agent, 20)) == 0
    assert procs.log() == "attempt 1\nattempt 2\n"


#: An agent that says it is up and then sleeps: nothing it does after "ready" opens files or
#: uses measurable CPU (unlike a freshly exec'd program, which is still loading its libraries).
IDLE = [PY, "-c", "import time; print('ready', flush=True); time.sleep(300)"]


def test_spawned_agent_leads_its_own_session_with_stdin_from_dev_null(procs: Procs) -> None:
    agent = procs.spawn(IDLE)
    procs.wait_log("ready")
    assert os.getsid(agent.pid) == os.getpgid(agent.pid) == agent.pid
    assert os.readlink(f"/proc/{agent.pid}/fd/0") == os.devnull
    log = str(procs.tmp_path / "agent.log")
    assert os.readlink(f"/proc/{agent.pid}/fd/1") == os.readlink(f"/proc/{agent.pid}/fd/2") == log
    # Only stdin, stdout and stderr: the engine's descriptors are not inherited.
    assert sorted(os.listdir(f"/proc/{agent.pid}/fd")) == ["0", "1", "2"]
    # The identity is the kernel's start time, the same value psutil reports.
    assert abs(agent.start_time - psutil.Process(agent.pid).create_time()) < 0.01
    assert process_start_time(agent.pid) == agent.start_time
    asyncio.run(terminate_tree(agent.pid, agent.start_time, grace=5, popen=agent.popen))


def test_spawn_missing_program_names_it_and_the_fix(procs: Procs) -> None:
    with pytest.raises(SpawnError, match=r"'no-such-agent-cli'.*not found on the agent's PATH"):
        procs.spawn(["no-such-agent-cli", "--yes"])
    with pytest.raises(SpawnError, match=r"'/nowhere/agent': no such file; fix the path"):
        procs.spawn(["/nowhere/agent"])


def test_spawn_refuses_non_executable_files_and_bad_workspaces(procs: Procs) -> None:
    script = procs.tmp_path / "agent.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    with pytest.raises(SpawnError, match=r"agent\.sh'.*not executable.*chmod \+x"):
        procs.spawn([str(script)])
    noshebang = procs.tmp_path / "noshebang"
    noshebang.write_bytes(b"\x00\x01binary")
    noshebang.chmod(0o700)
    with pytest.raises(SpawnError, match=r"noshebang'.*exec format error"):
        procs.spawn([str(noshebang)])
    with pytest.raises(SpawnError, match=r"working directory .*missing.* does not exist"):
        spawn(
            ["true"], cwd=procs.tmp_path / "missing", env=procs.env(), log_path=procs.tmp_path / "x"
        )
    with pytest.raises(SpawnError, match="empty command"):
        procs.spawn([])


def test_spawn_refuses_a_symlinked_log(procs: Procs) -> None:
    target = procs.tmp_path / "elsewhere"
    target.write_text("")
    (procs.tmp_path / "agent.log").symlink_to(target)
    with pytest.raises(SpawnError, match="symbolic link"):
        procs.spawn(["true"])
    assert target.read_text() == ""


# --- wait_exit -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "code"), [("exit 0", 0), ("exit 3", 3), ("kill -TERM $$", -signal.SIGTERM)]
)
def test_wait_exit_returns_the_exit_code_and_reaps(procs: Procs, script: str, code: int) -> None:
    agent = procs.spawn(["sh", "-c", script])
    assert asyncio.run(wait_exit(agent, 20)) == code
    assert agent.popen.returncode == code
    with pytest.raises(ChildProcessError):
        os.waitpid(agent.pid, os.WNOHANG)  # already reaped: no zombie left


def test_wait_exit_times_out_with_none_then_sees_the_kill(procs: Procs) -> None:
    agent = procs.spawn(["sleep", "300"])

    async def scenario() -> tuple[int | None, int | None]:
        first = await wait_exit(agent, 0.05)
        agent.popen.send_signal(signal.SIGKILL)
        return first, await wait_exit(agent, 20)

    assert asyncio.run(scenario()) == (None, -signal.SIGKILL)


def test_wait_exit_polling_fallback(procs: Procs) -> None:
    """The path taken where pidfd_open is unavailable (old kernel, seccomp)."""
    sleeper = procs.spawn(["sleep", "300"], name="sleeper")
    quick = procs.spawn(["sh", "-c", "exit 5"], name="quick")

    async def scenario() -> tuple[int | None, int | None, int | None]:
        timed_out = await _wait_exit_polling(sleeper, 0.05)
        sleeper.popen.terminate()
        return timed_out, await _wait_exit_polling(sleeper, 20), await _wait_exit_polling(quick, 20)

    assert asyncio.run(scenario()) == (None, -signal.SIGTERM, 5)


@pytest.mark.slow
def test_200_concurrent_waits_all_complete(procs: Procs) -> None:
    agents = [procs.spawn(["true"], name=f"a{i}") for i in range(200)]

    async def scenario() -> list[int | None]:
        return await asyncio.gather(*(wait_exit(a, 60) for a in agents))

    codes = asyncio.run(scenario())
    assert len(codes) == 200
    assert codes.count(0) == 200
    assert all(a.popen.returncode == 0 for a in agents)


# --- terminate_tree ------------------------------------------------------------------------------


def test_agents_ending_together_share_one_fresh_scan(
    procs: Procs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each caller gets a scan begun after it asked; callers waiting together share one."""
    scans = 0

    def counted() -> dict[int, ProcStat]:
        nonlocal scans
        scans += 1
        return scan()

    monkeypatch.setattr(proc_kill, "scan", counted)

    async def scenario() -> tuple[Spawned, list[dict[int, ProcStat]]]:
        await proc_kill.fresh_scan()
        agent = procs.spawn(["sleep", "30"])
        tables = await asyncio.gather(*(proc_kill.fresh_scan() for _ in range(20)))
        await terminate_tree(agent.pid, agent.start_time, grace=5, popen=agent.popen)
        return agent, tables

    agent, tables = asyncio.run(scenario())
    assert scans == 3  # before the spawn, for all twenty, and terminate_tree's own
    assert all(agent.pid in table for table in tables)


def test_terminate_kills_the_shell_and_both_grandchildren(procs: Procs) -> None:
    agent = procs.spawn(["sh", "-c", "sleep 300 & sleep 300 & wait"])
    members = wait_until(lambda: len(procs.track_tree(agent)) == 3, what="shell + 2 sleeps")
    assert members
    tree = procs.track_tree(agent)
    assert agent.pid in tree
    result = asyncio.run(terminate_tree(agent.pid, agent.start_time, grace=10, popen=agent.popen))
    assert result.signalled == sorted(tree)
    assert result.forced == []
    assert all(gone(pid, procs.pids[pid]) for pid in tree)
    assert agent.popen.returncode == -signal.SIGTERM
    assert tree_members(agent.pid, agent.start_time) == []


def test_an_agent_ignoring_sigterm_is_killed_after_grace(procs: Procs) -> None:
    code = (
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "print('ready', flush=True); time.sleep(300)"
    )
    agent = procs.spawn([PY, "-c", code])
    procs.wait_log("ready")
    started = time.monotonic()
    result = asyncio.run(terminate_tree(agent.pid, agent.start_time, grace=0.3, popen=agent.popen))
    assert time.monotonic() - started >= 0.3
    assert result.signalled == [agent.pid]
    assert result.forced == [agent.pid]
    assert agent.popen.returncode == -signal.SIGKILL


def test_a_stopped_agent_still_terminates_gracefully(procs: Procs) -> None:
    """SIGTERM stays pending in a stopped process; terminate_tree continues it."""
    agent = procs.spawn(["sleep", "300"])
    os.kill(agent.pid, signal.SIGSTOP)
    wait_until(lambda: psutil.Process(agent.pid).status() == psutil.STATUS_STOPPED, what="stop")
    result = asyncio.run(terminate_tree(agent.pid, agent.start_time, grace=10, popen=agent.popen))
    assert result.forced == []
    assert agent.popen.returncode == -signal.SIGTERM


def test_a_grandchild_in_its_own_session_is_killed_while_its_parent_lives(procs: Procs) -> None:
    grandchild = (
        "import os, time; os.setsid(); print('gc-ready', os.getpid(), flush=True); time.sleep(300)"
    )
    parent = (
        "import subprocess, sys, time; "
        f"subprocess.Popen([sys.executable, '-c', {grandchild!r}]); time.sleep(300)"
    )
    agent = procs.spawn([PY, "-c", parent])
    gc_pid = int(procs.wait_log("gc-ready").split("gc-ready ")[1].split()[0])
    procs.track(gc_pid)
    assert os.getsid(gc_pid) == gc_pid != agent.pid
    assert psutil.Process(gc_pid).ppid() == agent.pid
    assert tree_members(agent.pid, agent.start_time) == sorted([agent.pid, gc_pid])
    result = asyncio.run(terminate_tree(agent.pid, agent.start_time, grace=10, popen=agent.popen))
    assert result.signalled == sorted([agent.pid, gc_pid])
    assert gone(gc_pid, procs.pids[gc_pid])


def test_children_outliving_their_leader_are_found_and_killed(procs: Procs) -> None:
    agent = procs.spawn(["sh", "-c", "sleep 300 & echo bg $!"])
    assert asyncio.run(wait_exit(agent, 20)) == 0  # leader gone and reaped
    orphan = int(procs.log().split()[1])
    procs.track(orphan)
    assert tree_members(agent.pid, agent.start_time) == [orphan]
    # Session members that started before the agent did are not the agent's.
    assert tree_members(agent.pid, agent.start_time + 1000) == []
    result = asyncio.run(terminate_tree(agent.pid, agent.start_time, grace=10))
    assert result.signalled == [orphan]
    assert gone(orphan, procs.pids[orphan])


def test_a_tree_that_keeps_forking_after_sigterm_is_fully_killed(procs: Procs) -> None:
    """Children inherit the ignored SIGTERM; a new one appears every 20 ms until the end."""
    agent = procs.spawn(["sh", "-c", "trap '' TERM; while :; do sleep 300 & sleep 0.02; done"])
    wait_until(lambda: len(procs.track_tree(agent)) >= 4, what="a few background sleeps")
    result = asyncio.run(terminate_tree(agent.pid, agent.start_time, grace=0.2, popen=agent.popen))
    assert agent.pid in result.forced
    assert len(result.forced) >= 4
    assert not [s for s in scan().values() if s.session == agent.pid and not s.zombie]


def test_terminate_while_the_exit_is_awaited(procs: Procs) -> None:
    """The supervisor awaits the exit in one task and terminates the tree from another."""
    agent = procs.spawn(["sleep", "300"])

    async def scenario() -> tuple[int | None, list[int]]:
        waiter = asyncio.ensure_future(wait_exit(agent, None))
        await asyncio.sleep(0)
        result = await terminate_tree(agent.pid, agent.start_time, grace=10, popen=agent.popen)
        return await asyncio.wait_for(waiter, 20), result.signalled

    assert asyncio.run(scenario()) == (-signal.SIGTERM, [agent.pid])


# --- attempt marks (T2) -------------------------------------------------------------------------

#: A shell whose child calls setsid from a subshell that exits: the child is in no session, group
#: or parent chain of the agent's, and only its marks say whose it is.
ESCAPEE = "(setsid sleep 300 & echo escaped $!); echo ready; sleep 300"


def escapee(procs: Procs, name: str, marks: Marks) -> tuple[Spawned, int, list[int]]:
    """The agent, its escaped child, and its own tree (the shell and its sleep)."""
    agent = procs.spawn(["sh", "-c", ESCAPEE], name=name, **marks.environment())
    pid = int(procs.wait_log("ready", name).split("escaped ")[1].split()[0])
    procs.track(pid)
    wait_until(lambda: len(procs.track_tree(agent)) == 2, what="the agent's own sleep")
    return agent, pid, procs.track_tree(agent)


def test_a_process_carries_the_marks_it_was_started_with(procs: Procs) -> None:
    marks = Marks(run_id=procs.run_id, agent="a", attempt=3)
    agent = procs.spawn(["sleep", "300"], **marks.environment())
    plain = procs.spawn(["sleep", "300"], name="plain")
    partial = procs.spawn(["sleep", "300"], name="partial", CORRAL_RUN_ID=procs.run_id)
    assert read_marks(agent.pid) == marks
    assert read_marks(plain.pid) is None
    assert read_marks(partial.pid) is None
    assert read_marks(os.getpid()) is None or os.environ.get("CORRAL_RUN_ID")
    for spawned in (agent, plain, partial):
        asyncio.run(terminate_tree(spawned.pid, spawned.start_time, grace=10, popen=spawned.popen))
    assert read_marks(agent.pid) is None


def test_an_escaped_child_is_found_by_its_marks_only(procs: Procs) -> None:
    marks = Marks(run_id=procs.run_id, agent="a", attempt=1)
    agent, child, tree = escapee(procs, "agent", marks)
    assert os.getsid(child) == child
    assert child not in tree
    expected = sorted([*tree, child])
    assert [s.pid for s in attempt_in(scan(), marks, agent.pid, agent.start_time)] == expected
    assert [s.pid for s in attempt_in(scan(), marks)] == expected
    asyncio.run(terminate_tree(agent.pid, agent.start_time, grace=10, popen=agent.popen))
    assert not gone(child, procs.pids[child]), "terminate_tree without marks finds the tree only"
    result = asyncio.run(terminate_attempt(marks, grace=10))
    assert result.signalled == [child]
    assert gone(child, procs.pids[child])


def test_terminate_attempt_stops_every_marked_process_and_nothing_else(procs: Procs) -> None:
    """Another attempt of the same agent, and another agent, keep running."""
    mine = Marks(run_id=procs.run_id, agent="a", attempt=2)
    agent, child, tree = escapee(procs, "mine", mine)
    older, older_child, _ = escapee(
        procs, "older", Marks(run_id=procs.run_id, agent="a", attempt=1)
    )
    other, other_child, _ = escapee(
        procs, "other", Marks(run_id=procs.run_id, agent="b", attempt=2)
    )
    result = asyncio.run(
        terminate_attempt(
            mine, grace=10, pid=agent.pid, start_time=agent.start_time, popen=agent.popen
        )
    )
    assert result.signalled == sorted([*tree, child])
    assert result.forced == []
    assert gone(child, procs.pids[child])
    assert agent.popen.returncode == -signal.SIGTERM
    for survivor in (older.pid, older_child, other.pid, other_child):
        assert not gone(survivor, procs.pids[survivor])
    for spawned in (older, other):
        marks = read_marks(spawned.pid)
        assert marks is not None
        asyncio.run(
            terminate_attempt(
                marks, grace=10, pid=spawned.pid, start_time=spawned.start_time, popen=spawned.popen
            )
        )


def test_marked_processes_that_ignore_sigterm_and_fork_are_killed(procs: Procs) -> None:
    marks = Marks(run_id=procs.run_id, agent="a", attempt=1)
    forker = "trap '' TERM; while :; do sleep 300 & sleep 0.02; done"
    agent = procs.spawn(
        ["sh", "-c", f"(setsid sh -c {forker!r} & echo escaped $!); echo ready; exit 0"],
        **marks.environment(),
    )
    leader = int(procs.wait_log("ready").split("escaped ")[1].split()[0])
    procs.track(leader)
    assert asyncio.run(wait_exit(agent, 20)) == 0
    wait_until(lambda: len(attempt_in(scan(), marks)) >= 4, what="a few background sleeps")
    result = asyncio.run(terminate_attempt(marks, grace=0.2))
    assert leader in result.forced
    assert not [s for s in scan().values() if s.session == leader and not s.zombie]
    assert attempt_in(scan(), marks) == []


def test_each_process_environment_is_read_once(
    procs: Procs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Scans taken while many attempts end cost one read of each new process's environment."""
    reads: list[int] = []
    real = proc_scan._read_environ

    def counted(pid: int) -> bytes | None:
        data = real(pid)
        if data:  # no environment (between fork and exec, or `env -i`: another test's process
            reads.append(pid)  # on the machine) is never settled, by design: read again
        return data

    monkeypatch.setattr(proc_scan, "_read_environ", counted)
    index = proc_scan.MarkIndex()
    marks = Marks(run_id=procs.run_id, agent="a", attempt=1)
    index.members(scan(), marks)
    agent = procs.spawn(["sh", "-c", "sleep 300 & echo child $!; wait"], **marks.environment())
    child = int(procs.wait_log("child").split()[1])
    procs.track(child)
    reads.clear()
    for _ in range(5):
        table = scan()
        for _ in range(20):  # twenty attempts asking about the same scan
            assert [s.pid for s in index.members(table, marks)] == [agent.pid, child]
    assert reads.count(child) == 1
    assert reads.count(agent.pid) == 1, "marked: settled, though a child of this process"
    assert len(reads) == len(set(reads))
    asyncio.run(terminate_tree(agent.pid, agent.start_time, grace=10, popen=agent.popen))


def test_a_process_that_shows_no_environment_yet_is_read_again(procs: Procs) -> None:
    """Between fork and exec the kernel shows no environment: that is not "unmarked".

    A shell started with an empty environment stands in for that window here; it then execs
    into a marked program, keeping its pid and start time, and must be found then.
    """
    marks = Marks(run_id=procs.run_id, agent="a", attempt=1)
    assign = " ".join(f"{key}={value}" for key, value in marks.environment().items())
    inner = f"read _ < {procs.tmp_path}/go; export {assign}; exec /bin/sleep 300"
    os.mkfifo(procs.tmp_path / "go")
    agent = procs.spawn(["sh", "-c", f"env -i /bin/sh -c {inner!r} & echo inner $!; wait"])
    pid = int(procs.wait_log("inner").split()[1])
    procs.track(pid)
    wait_until(lambda: proc_scan._read_environ(pid) == b"", what="the inner shell")
    index = proc_scan.MarkIndex()
    assert index.members(scan(), marks) == []
    with open(procs.tmp_path / "go", "w") as go:
        go.write("now\n")
    found = wait_until(
        lambda: [s.pid for s in index.members(scan(), marks)], what="the marks after the exec"
    )
    assert found == [pid]
    asyncio.run(terminate_tree(agent.pid, agent.start_time, grace=10, popen=agent.popen))


@pytest.mark.slow
def test_many_trees_terminated_concurrently(procs: Procs) -> None:
    agents = [procs.spawn(["sh", "-c", "sleep 300 & wait"], name=f"a{i}") for i in range(30)]
    wait_until(
        lambda: all(len(procs.track_tree(a)) == 2 for a in agents), what="30 shells + sleeps"
    )

    async def scenario() -> list[list[int]]:
        results = await asyncio.gather(
            *(terminate_tree(a.pid, a.start_time, grace=10, popen=a.popen) for a in agents)
        )
        return [r.signalled for r in results]

    signalled = asyncio.run(scenario())
    assert [len(s) for s in signalled] == [2] * 30
    assert all(a.popen.returncode == -signal.SIGTERM for a in agents)


# --- identity and pid reuse ----------------------------------------------------------------------


def test_a_pid_with_another_start_time_is_not_the_agent(procs: Procs) -> None:
    """A pid recorded for an agent that now belongs to a different (older or newer) process."""
    other = procs.spawn(["sleep", "300"])
    real = other.start_time
    assert is_same_process(other.pid, real)
    assert is_same_process(other.pid, real + 0.01)  # float rounding
    for wrong in (real - 1000, real - 1, real + 1, real + 1000):
        assert not is_same_process(other.pid, wrong)
        assert tree_members(other.pid, wrong) == []
        result = asyncio.run(terminate_tree(other.pid, wrong, grace=0.1))
        assert (result.signalled, result.forced) == ([], [])
    assert not gone(other.pid, real)
    asyncio.run(terminate_tree(other.pid, real, grace=10, popen=other.popen))


def test_gone_processes_have_no_start_time(procs: Procs) -> None:
    agent = procs.spawn(["true"])
    assert process_start_time(agent.pid) == agent.start_time  # unreaped zombie still has one
    asyncio.run(wait_exit(agent, 20))
    assert process_start_time(agent.pid) is None
    assert not is_same_process(agent.pid, agent.start_time)
    assert tree_members(agent.pid, agent.start_time) == []


def test_start_time_matches_psutil_for_every_process() -> None:
    table = scan()
    assert len(table) > 1
    for pid, entry in list(table.items())[:50]:
        try:
            expected = psutil.Process(pid).create_time()
        except psutil.NoSuchProcess:
            continue
        assert abs(entry.start_time - expected) < 1e-6
    assert CLOCK_TICKS > 0
    assert time.time() > BOOT_TIME


def test_the_caller_and_its_ancestors_are_never_members() -> None:
    me = os.getpid()
    start = process_start_time(me)
    assert start is not None
    ancestors = {me}
    entry = read_stat(me)
    while entry is not None and entry.ppid > 0:
        ancestors.add(entry.ppid)
        entry = read_stat(entry.ppid)
    session = os.getsid(0)
    session_start = process_start_time(session)
    assert not ancestors & set(tree_members(me, start))
    if session_start is not None:
        assert not ancestors & set(tree_members(session, session_start))
    assert tree_members(1, 0.0) == []
    assert tree_members(0, 0.0) == []


def test_terminate_refuses_to_reap_a_popen_that_is_not_the_agent(procs: Procs) -> None:
    agent = procs.spawn(["sleep", "300"])
    with pytest.raises(TerminateError, match="still runs"):
        asyncio.run(
            terminate_tree(agent.pid, agent.start_time - 1000, grace=0.1, popen=agent.popen)
        )
    assert not gone(agent.pid, agent.start_time)
    asyncio.run(terminate_tree(agent.pid, agent.start_time, grace=10, popen=agent.popen))


# --- CPU -----------------------------------------------------------------------------------------


def test_cpu_of_a_busy_agent_rises_and_of_a_sleeping_one_does_not(procs: Procs) -> None:
    busy = procs.spawn([PY, "-c", "print('ready', flush=True)\nwhile True: pass"], name="busy")
    idle = procs.spawn(IDLE, name="idle")
    procs.wait_log("ready", name="busy")
    procs.wait_log("ready", name="idle")
    sampler = CpuSampler(max_age=0.0)
    busy_first = sampler.cpu_seconds(busy.pid, busy.start_time)
    idle_first = sampler.cpu_seconds(idle.pid, idle.start_time)
    assert busy_first is not None
    assert idle_first is not None

    def busy_rose() -> bool:
        now = sampler.cpu_seconds(busy.pid, busy.start_time)
        return now is not None and now >= busy_first + 0.3

    wait_until(busy_rose, what="the busy agent's CPU time to rise by 0.3 s")
    idle_now = sampler.cpu_seconds(idle.pid, idle.start_time)
    assert idle_now is not None
    # Two clock ticks of slack: the microseconds between "ready" and sleeping may cross a tick.
    assert idle_first <= idle_now <= idle_first + 2 / CLOCK_TICKS

    async def stop_both() -> None:
        for agent in (busy, idle):
            await terminate_tree(agent.pid, agent.start_time, grace=10, popen=agent.popen)

    asyncio.run(stop_both())
    assert sampler.cpu_seconds(busy.pid, busy.start_time) is None


def test_cpu_sampler_scans_once_per_interval(procs: Procs) -> None:
    busy = procs.spawn([PY, "-c", "print('ready', flush=True)\nwhile True: pass"], name="busy")
    procs.wait_log("ready", name="busy")
    sampler = CpuSampler()  # scans at most every 0.5 s
    started = time.monotonic()
    first = sampler.cpu_seconds(busy.pid, busy.start_time)
    second = sampler.cpu_seconds(busy.pid, busy.start_time)
    if time.monotonic() - started < 0.5:
        assert first == second  # served from the same scan
    asyncio.run(terminate_tree(busy.pid, busy.start_time, grace=10, popen=busy.popen))


def _tree_cpu(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


def test_a_paused_tree_uses_no_cpu_and_resumes_where_it_was(procs: Procs) -> None:
    """pause_tree stops every member (a busy shell loop and a busy child); nothing advances
    until resume_tree, after which both go on; a kill of a paused tree still ends it."""
    busy = f"{PY} -c 'while True: pass' & while :; do :; done"
    agent = procs.spawn(["sh", "-c", busy])
    wait_until(lambda: len(procs.track_tree(agent)) == 2, what="shell + busy child")
    tree = procs.track_tree(agent)
    assert proc_kill.pause_tree(agent.pid, agent.start_time) == 2

    def all_stopped() -> bool:
        return all(psutil.Process(pid).status() == psutil.STATUS_STOPPED for pid in tree)

    wait_until(all_stopped, what="the tree stopped")
    before = _tree_cpu(tree)
    time.sleep(0.3)  # an interval in which a running tree would use CPU: none may pass
    assert _tree_cpu(tree) == before
    assert proc_kill.resume_tree(agent.pid, agent.start_time) == 2
    wait_until(lambda: _tree_cpu(tree) > before + 0.05, what="the tree to run on")
    proc_kill.pause_tree(agent.pid, agent.start_time)
    wait_until(all_stopped, what="paused again")
    result = asyncio.run(terminate_tree(agent.pid, agent.start_time, grace=5, popen=agent.popen))
    assert result.forced == []
    assert all(gone(pid, procs.pids[pid]) for pid in tree)
