"""The trust boundary from inside a real bubblewrap sandbox (docs/reliability.md T6): each
command succeeds as agents run today and is denied in the sandbox."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.core.sandbox.bwrap import sandbox_command, sandbox_init_pid
from corral.core.sandbox.policy import SandboxPolicy
from tests.conftest import git, wait_until
from tests.core.sandbox.conftest import Attempt


def test_a_file_under_a_hidden_store_cannot_be_read(attempt: Attempt) -> None:
    script = "cat ~/.ssh/id_ed25519 ~/.netrc"
    assert "PRIVATE KEY" in attempt.run(script, sandboxed=False).stdout
    inside = attempt.run(script, sandboxed=True)
    assert inside.returncode != 0
    assert "PRIVATE KEY" not in inside.stdout
    assert "hunter2" not in inside.stdout
    visible = attempt.run("cat ~/.profile", sandboxed=True)  # the rest of the home: read-only
    assert visible.stdout == "plain settings\n"


def test_the_engines_environment_is_not_seen(
    attempt: Attempt, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("API_KEY", "sk-engine-only")
    script = 'echo "key=$API_KEY"; cat /proc/1/environ /proc/self/environ | tr "\\0" "\\n"'
    assert "key=sk-engine-only" in attempt.run(script, sandboxed=False).stdout
    inside = attempt.run(script, sandboxed=True, extra_env={"PLAN_VAR": "given"})
    assert "sk-engine-only" not in inside.stdout
    assert "PLAN_VAR=given" in inside.stdout


def test_nothing_outside_the_worktree_and_output_is_writable(
    attempt: Attempt, tmp_path: Path
) -> None:
    # /var/tmp: writable by anyone on the host; the repository's own checkout (under the test's
    # /tmp, so inside the sandbox it is on the private /tmp and never reaches the host)
    host_wide = Path("/var/tmp") / f"corral-sandbox-{os.getpid()}-{tmp_path.name}"
    checkout = attempt.repo / "planted.txt"
    script = f'echo x > "{host_wide}"; echo x > "{checkout}"'
    try:
        assert attempt.run(script, sandboxed=False).returncode == 0
        assert host_wide.exists()
        assert checkout.exists()
        host_wide.unlink()
        checkout.unlink()
        inside = attempt.run(f'echo x > "{host_wide}"', sandboxed=True)
        assert inside.returncode != 0
        assert "Read-only file system" in inside.stderr
        attempt.run(script, sandboxed=True)
        assert not host_wide.exists()
        assert not checkout.exists()
    finally:
        host_wide.unlink(missing_ok=True)
    mine = attempt.run('echo w > w.txt && echo f > "$CORRAL_OUTPUT/findings.json"', sandboxed=True)
    assert mine.returncode == 0, mine.stderr
    assert (attempt.paths.worktree / "w.txt").read_text() == "w\n"
    assert (attempt.paths.output_dir / "findings.json").is_file()


def test_the_shared_config_hooks_and_info_cannot_be_written(attempt: Attempt) -> None:
    common = attempt.paths.common_dir
    before = (common / "config").read_text()
    for target in ("config", "hooks/pre-commit", "info/attributes"):
        script = f'echo "[core] fsmonitor = evil" >> "{common / target}"'
        assert attempt.run(script, sandboxed=True).returncode != 0, target
    assert (common / "config").read_text() == before
    assert not (common / "hooks" / "pre-commit").exists()
    assert attempt.run(f'echo "# x" >> "{common / "config"}"', sandboxed=False).returncode == 0


def test_refs_other_than_its_own_branch_do_not_move(attempt: Attempt) -> None:
    script = "git commit -q --allow-empty -m moved && git update-ref refs/heads/main HEAD"
    inside = attempt.run(script, sandboxed=True)
    assert inside.returncode == 0, inside.stderr  # it moved its private copy of main
    assert git(attempt.repo, "rev-parse", "main") == attempt.start
    assert git(attempt.repo, "rev-parse", attempt.branch) == attempt.start
    outside = attempt.run(script, sandboxed=False)
    assert outside.returncode == 0
    assert git(attempt.repo, "rev-parse", "main") != attempt.start


def test_another_agents_worktree_cannot_be_written_or_seen(attempt: Attempt) -> None:
    script = f'echo x > "{attempt.sibling}/planted.txt"'
    inside = attempt.run(f'ls "{attempt.sibling}"; {script}', sandboxed=True)
    assert inside.returncode != 0
    assert "README.md" not in inside.stdout
    assert not (attempt.sibling / "planted.txt").exists()
    records = attempt.run(f'ls "{attempt.paths.common_dir / "worktrees"}"', sandboxed=True)
    assert records.stdout.split() == [attempt.paths.admin_dir.name]  # its own record only
    assert attempt.run(script, sandboxed=False).returncode == 0


CONNECT = "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), 5); print('connected')"
UNIX = (
    "import socket,sys; s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); print('connected')"
)


def test_only_its_own_runs_control_socket_can_be_opened(attempt: Attempt) -> None:
    python = attempt.env["CORRAL_PYTHON"]
    other = [python, "-c", UNIX, str(attempt.other_socket)]
    assert attempt.run_argv(other, sandboxed=False).stdout.strip() == "connected"
    assert attempt.run_argv(other, sandboxed=True).stdout.strip() == ""
    own_socket = UNIX.replace("sys.argv[1]", "__import__('os').environ['CORRAL_SOCKET']")
    own = attempt.run_argv([python, "-c", own_socket], sandboxed=True)
    assert own.stdout.strip() == "connected", own.stderr


@pytest.fixture
def counting_server() -> Iterator[tuple[int, list[int]]]:
    """A loopback TCP server that counts the connections it accepts."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[int] = []

    def serve() -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            accepted.append(1)
            client.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    server.close()


def test_network_none_reaches_no_loopback_port(
    attempt: Attempt, counting_server: tuple[int, list[int]]
) -> None:
    port, accepted = counting_server
    argv = [attempt.env["CORRAL_PYTHON"], "-c", CONNECT, "127.0.0.1", str(port)]
    assert attempt.run_argv(argv, sandboxed=False).stdout.strip() == "connected"
    wait_until(lambda: len(accepted) == 1, what="the unsandboxed connection")
    inside = attempt.run_argv(argv, sandboxed=True)
    assert inside.returncode != 0
    assert len(accepted) == 1


DOUBLE_FORK = """
import os, sys, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        null = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(null, fd)
        time.sleep(300)
    os._exit(0)
os.wait()
"""


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                found.append(int(entry))
    return found


def test_a_double_forked_child_does_not_outlive_the_sandbox(
    attempt: Attempt, tmp_path: Path
) -> None:
    marker = f"corral-orphan-{os.getpid()}-{tmp_path.name}"
    argv = [attempt.env["CORRAL_PYTHON"], "-c", DOUBLE_FORK, marker]
    try:
        assert attempt.run_argv(argv, sandboxed=False).returncode == 0
        assert wait_until(lambda: _processes_with(marker), what="the unsandboxed orphan")
        for pid in _processes_with(marker):
            os.kill(pid, 9)
        wait_until(lambda: not _processes_with(marker), what="the unsandboxed orphan killed")
        assert attempt.run_argv(argv, sandboxed=True).returncode == 0
        wait_until(lambda: not _processes_with(marker), timeout=10, what="no sandboxed orphan")
    finally:
        for pid in _processes_with(marker):
            os.kill(pid, 9)


def test_no_new_privileges_and_own_namespaces(attempt: Attempt) -> None:
    script = "grep NoNewPrivs /proc/self/status; hostname; echo pid=$$; ls /run/corral"
    inside = attempt.run(script, sandboxed=True)
    assert "NoNewPrivs:\t1" in inside.stdout
    assert "corral-sandbox" in inside.stdout
    assert "control.sock" in inside.stdout
    assert int(inside.stdout.split("pid=")[1].split()[0]) < 10


def test_read_reopens_one_file_of_a_hidden_store_and_write_opens_a_directory(
    attempt: Attempt, tmp_path: Path
) -> None:
    home = attempt.paths.home
    (home / ".ssh" / "known_hosts").write_text("example.com ssh-ed25519 AAAA\n")
    cache = Path("/var/tmp") / f"corral-cache-{os.getpid()}-{tmp_path.name}"
    cache.mkdir()
    try:
        policy = SandboxPolicy(read=("~/.ssh/known_hosts",), write=(str(cache),))
        script = f'cat ~/.ssh/known_hosts; cat ~/.ssh/id_ed25519; echo c > "{cache}/c"'
        inside = attempt.run(script, sandboxed=True, policy=policy)
        assert "example.com ssh-ed25519" in inside.stdout
        assert "PRIVATE KEY" not in inside.stdout
        assert (cache / "c").read_text() == "c\n"
        denied = attempt.run(f'echo x > "{home}/.ssh/planted"', sandboxed=True, policy=policy)
        assert denied.returncode != 0
        assert not (home / ".ssh" / "planted").exists()
    finally:
        shutil.rmtree(cache, ignore_errors=True)


@pytest.mark.parametrize("delay", [0.0, 0.005, 0.05])
def test_killing_the_sandboxes_init_ends_everything_inside(
    attempt: Attempt, tmp_path: Path, delay: float
) -> None:
    """What the runtime's terminate will do, at any moment after bubblewrap says who its init is
    (killing bubblewrap itself a few milliseconds in can leave the sandbox running)."""
    marker = f"corral-inside-{os.getpid()}-{tmp_path.name}"
    script = f"import os, time\nif os.fork() == 0:\n    os.setsid()\ntime.sleep(300)  # {marker}"
    policy = SandboxPolicy().resolve(attempt.paths.home)
    python = attempt.env["CORRAL_PYTHON"]
    read_end, write_end = os.pipe()
    command = sandbox_command(
        policy, attempt.paths, [python, "-c", script], attempt.env, info_fd=write_end
    )
    bwrap = subprocess.Popen(
        command.argv, env=command.env, stdin=subprocess.DEVNULL, pass_fds=(write_end,)
    )
    os.close(write_end)
    try:
        with os.fdopen(read_end, "rb") as info:
            init = sandbox_init_pid(info.read())
        assert init is not None
        time.sleep(delay)  # the moment of the kill is the test's parameter, not a wait
        os.kill(init, signal.SIGKILL)
        assert bwrap.wait(10) != 0
        wait_until(lambda: not _processes_with(marker), timeout=10, what="nothing left inside")
    finally:
        bwrap.kill()
        bwrap.wait(10)
        for pid in _processes_with(marker):
            os.kill(pid, 9)


UNREAPED_INIT = """
import asyncio, ctypes, json, os, subprocess, sys
from pathlib import Path
from corral.core.runtime.procfs import process_start_time, read_stat
from corral.core.runtime.proctree import CpuSampler, Marks
from corral.core.runtime.sandbox import SandboxExecution, SandboxIdentity
from corral.core.sandbox.bwrap import sandbox_init_pid
# this process inherits the orphans (the sandbox's pid 1) and never reaps them, as a host init
# that is slow to reap (or never does) would
assert ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
command = json.loads(sys.stdin.read())
read_end, write_end = os.pipe()
os.dup2(write_end, 9)
bwrap = subprocess.Popen(command["argv"], env=command["env"], pass_fds=(9,), stdin=subprocess.DEVNULL)
os.close(9)
os.close(write_end)
with os.fdopen(read_end, "rb") as info:
    init = sandbox_init_pid(info.read())
start = process_start_time(init)
assert bwrap.wait(10) == 0
identity = SandboxIdentity(runtime="sandbox", pid=bwrap.pid, start_time=0.0, init_pid=init, init_start_time=start)
execution = SandboxExecution(identity, Path(os.devnull), CpuSampler(), Marks("unreaped", "a", 1))
stopped = asyncio.run(asyncio.wait_for(execution.terminate(0.1), 5))
print(read_stat(init).state, stopped.stopped)
"""


def test_an_ended_sandbox_whose_init_nobody_reaps_is_not_waited_for(attempt: Attempt) -> None:
    """bubblewrap leaves the sandbox's pid 1 to the host's init to reap; a zombie init means
    the kernel has already ended everything in its namespace, so stopping the attempt is done
    (it used to wait for the reaping, which never comes where nothing reaps orphans)."""
    policy = SandboxPolicy().resolve(attempt.paths.home)
    command = sandbox_command(policy, attempt.paths, ["true"], attempt.env, info_fd=9)
    done = subprocess.run(
        [attempt.env["CORRAL_PYTHON"], "-c", UNREAPED_INIT],
        input=json.dumps({"argv": command.argv, "env": command.env}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH", "")},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["Z", "0"]
