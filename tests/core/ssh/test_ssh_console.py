"""The console over SSH, for real: `corral serve --ssh` on a free loopback port, the OpenSSH
client in tmux with keys made by ssh-keygen and the server's printed host key pinned. A key's
roles decide what its console may do; everything but a console on a terminal is refused."""

from __future__ import annotations

import os
import shutil
import socket
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.core.log import events as ev
from corral.core.runs.rundir import RunDir
from tests.conftest import git, wait_until
from tests.core.engine_helpers import events_of
from tests.core.operator_helpers import make_reviewable_run
from tests.core.ssh.ssh_helpers import (
    Server,
    corral,
    fingerprint_of,
    make_home,
    make_key,
    start_server,
)
from tests.tmux import Tmux

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        shutil.which("tmux") is None or shutil.which("ssh") is None,
        reason="tmux and the OpenSSH client are needed",
    ),
]
LOGIN_TIMEOUT = 2.0


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    """rita reviews (and watches), vera only watches, mallory is in no file."""
    directory = tmp_path / "keys"
    directory.mkdir()
    return {name: make_key(directory, name) for name in ("rita", "vera", "mallory")}


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return make_home(tmp_path / "home")


@pytest.fixture
def reviewable(repo: Path) -> RunDir:
    rundir, _, _ = make_reviewable_run(repo)
    return rundir


@pytest.fixture
def server(
    repo: Path, home: Path, tmp_path: Path, keys: dict[str, Path], reviewable: RunDir
) -> Iterator[Server]:
    """The server, serving the finished run's review."""
    for name, roles in (("rita", "viewer,reviewer"), ("vera", "viewer")):
        added = corral(
            repo, "serve", "--ssh", "--add-key", name, roles, f"{keys[name]}.pub", home=home
        )
        assert added.returncode == 0, added.stderr
    started = start_server(
        repo, home, tmp_path, reviewable.run_id, "--login-timeout", str(LOGIN_TIMEOUT)
    )
    yield started
    started.stop()


@pytest.fixture
def tmux(tmp_path: Path) -> Iterator[Tmux]:
    client = Tmux(f"corral-ssh-{os.getpid()}-{tmp_path.name}", window="client", within=30.0)
    yield client
    client.kill()


def open_console(tmux: Tmux, server: Server, key: Path, *extra: str, size: str = "100x30") -> None:
    cols, rows = size.split("x")
    command = " ".join(server.ssh(key, "-tt", *extra)) + "; echo ssh ended $?; sleep 60"
    tmux("new-session", "-d", "-s", "client", "-x", cols, "-y", rows, command)
    tmux("set-option", "-g", "escape-time", "0")


def console_pid(server: Server, name: str) -> int:
    return int(server.wait_said(rf"\({name}\): console pid (\d+)").group(1))


def test_a_reviewer_key_approves_and_the_decision_names_the_key(
    repo: Path, reviewable: RunDir, server: Server, keys: dict[str, Path], tmux: Tmux
) -> None:
    before = git(repo, "rev-parse", "main")
    open_console(tmux, server, keys["rita"], "-o", "SetEnv=SSH_USER_AUTH=/etc/passwd")
    tmux.wait_for("review", "report", "Approve")
    pid = console_pid(server, "rita")
    # the console's environment is the server's choice: no SSH_* (the client's SetEnv, the
    # server's), only what a terminal program needs
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    names = {entry.split(b"=")[0].decode() for entry in environ if entry}
    assert names <= {"PATH", "HOME", "LANG", "TERM", "PYTHONPATH"}, names
    # a resize reaches the console: it redraws its footer on the new last row
    tmux("resize-window", "-t", "client", "-x", "140", "-y", "44")
    deadline = time.monotonic() + 15
    while "Approve" not in "\n".join(tmux.screen().splitlines()[34:]):
        assert time.monotonic() < deadline, f"no redraw at 140x44:\n{tmux.screen()}"
        time.sleep(0.1)
    tmux.keys("a")
    tmux.wait_for("Approve", "lands")
    tmux.keys("y")
    wait_until(
        lambda: isinstance(events_of(reviewable)[-1], ev.ReportApproved), what="the approval"
    )
    approved = events_of(reviewable)[-1]
    assert isinstance(approved, ev.ReportApproved)
    assert approved.by == f"rita (ssh key {fingerprint_of(keys['rita'].with_suffix('.pub'))})"
    assert git(repo, "rev-parse", "main^1") == before
    # closing the client: that console stops (the server says so), nothing else does
    tmux.kill()
    server.wait_said(rf"console pid {pid} stopped")
    assert not Path(f"/proc/{pid}").exists()
    assert server.process.poll() is None, "the server goes on serving"


def test_a_viewer_key_watches_but_its_approve_is_refused(
    repo: Path, reviewable: RunDir, server: Server, keys: dict[str, Path], tmux: Tmux
) -> None:
    decided = len(events_of(reviewable))
    open_console(tmux, server, keys["vera"])
    tmux.wait_for("review", "READ-ONLY", "as ssh key vera: viewer")
    tmux.keys("a")
    tmux.keys("y")
    tmux.keys("?")
    tmux.wait_for("review.approve")  # the help shows: the keys before it were read and done
    tmux.keys("Escape")
    tmux.wait_for("READ-ONLY")
    assert len(events_of(reviewable)) == decided
    assert not any(isinstance(e, ev.ReportApproved) for e in events_of(reviewable))


def test_a_dropped_connection_stops_only_its_console(
    repo: Path, reviewable: RunDir, server: Server, keys: dict[str, Path], tmux: Tmux
) -> None:
    """The client killed outright (no goodbye): the console is hung up, the run is as it was."""
    logged = events_of(reviewable)
    open_console(tmux, server, keys["vera"])
    tmux.wait_for("review")
    pid = console_pid(server, "vera")
    client = int(tmux("display-message", "-p", "-t", "client", "#{pane_pid}").strip())
    os.kill(client, 9)
    server.wait_said(rf"console pid {pid} stopped")
    assert not Path(f"/proc/{pid}").exists()
    assert events_of(reviewable) == logged


def refused(
    server: Server, key: Path | None, *extra: str, command: str = "true"
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        server.ssh(key, *extra, command=command or None),
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )


def test_only_a_listed_public_key_logs_in(server: Server, keys: dict[str, Path]) -> None:
    for method in ("password", "keyboard-interactive"):
        done = refused(server, None, "-o", f"PreferredAuthentications={method}")
        assert done.returncode == 255
        assert "Permission denied (publickey)" in done.stderr, done.stderr
    unknown = refused(server, keys["mallory"], "-o", "PreferredAuthentications=publickey")
    assert unknown.returncode == 255
    assert "Permission denied (publickey)" in unknown.stderr


def test_commands_subsystems_and_a_session_without_a_terminal_are_refused(
    server: Server, keys: dict[str, Path]
) -> None:
    command = refused(server, keys["rita"], command="cat /etc/passwd")
    assert command.returncode == 1
    assert "console only, no commands" in command.stderr
    assert "root:" not in command.stdout
    subsystem = refused(server, keys["rita"], "-s", command="sftp")
    assert subsystem.returncode == 1
    assert "no subsystem" in subsystem.stderr
    shell = refused(server, keys["rita"], "-T", command="")
    assert shell.returncode == 1
    assert "needs a terminal" in shell.stderr


def test_port_forwards_are_refused(server: Server, keys: dict[str, Path], tmp_path: Path) -> None:
    remote = refused(
        server,
        keys["rita"],
        "-N",
        "-o",
        "ExitOnForwardFailure=yes",
        "-R",
        "127.0.0.1:0:127.0.0.1:22",
        command="",
    )
    assert remote.returncode == 255
    assert "remote port forwarding failed" in remote.stderr, remote.stderr
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        local_port = probe.getsockname()[1]
    forward = subprocess.Popen(
        server.ssh(keys["rita"], "-N", "-L", f"127.0.0.1:{local_port}:127.0.0.1:{server.port}"),
        stderr=subprocess.DEVNULL,
    )
    try:

        def through() -> bytes | None:
            try:
                with socket.create_connection(("127.0.0.1", local_port), timeout=5) as conn:
                    conn.settimeout(5)
                    return conn.recv(100) or b"closed"
            except OSError:
                return None

        # the forward's channel is refused: the connection closes with none of the server's
        # banner ever coming through it
        assert wait_until(through, what="the forwarded port") == b"closed"
        server.wait_said(r"refused a port forward to 127\.0\.0\.1")
    finally:
        # SIGKILL: OpenSSH 9.2 can miss a SIGTERM that arrives while `-N` waits with nothing
        # to wake it (seen under load), and how the test's own client exits is not the point
        forward.kill()
        forward.wait(10)


def test_agent_forwarding_is_refused(
    repo: Path, server: Server, keys: dict[str, Path], tmux: Tmux, tmp_path: Path
) -> None:
    """`ssh -A` with a running agent: the console's environment has no agent socket and the
    server opened none (asyncssh's agent_forwarding=False refuses the request)."""
    agent_socket = tmp_path / "agent.sock"
    listeners = set(Path(tempfile.gettempdir()).glob("asyncssh-*"))
    agent = subprocess.Popen(
        ["ssh-agent", "-D", "-a", str(agent_socket)], stdout=subprocess.DEVNULL
    )
    try:
        wait_until(agent_socket.exists, what="ssh-agent's socket")
        subprocess.run(
            ["ssh-add", str(keys["rita"])],
            env={**os.environ, "SSH_AUTH_SOCK": str(agent_socket)},
            check=True,
            capture_output=True,
        )
        command = f"SSH_AUTH_SOCK={agent_socket} " + " ".join(server.ssh(keys["rita"], "-tt", "-A"))
        tmux("new-session", "-d", "-s", "client", "-x", "100", "-y", "30", command)
        tmux.wait_for("review")  # logged in with the agent's key
        pid = console_pid(server, "rita")
        environ = Path(f"/proc/{pid}/environ").read_bytes()
        assert b"SSH_AUTH_SOCK" not in environ
        # asyncssh makes its forwarded agent's socket in a new temporary asyncssh-* directory
        assert set(Path(tempfile.gettempdir()).glob("asyncssh-*")) == listeners
    finally:
        agent.terminate()
        agent.wait(10)


def read_kexinit(conn: socket.socket) -> list[str]:
    """The server's first binary packet (SSH_MSG_KEXINIT, unencrypted): its kex names."""
    data = b""
    while b"\r\n" not in data:
        data += conn.recv(1)
    assert data.startswith(b"SSH-2.0-"), data
    header = conn.recv(5, socket.MSG_WAITALL)
    length, _ = struct.unpack(">IB", header)
    packet = conn.recv(length - 1, socket.MSG_WAITALL)
    assert packet[0] == 20  # SSH_MSG_KEXINIT
    (size,) = struct.unpack(">I", packet[17:21])
    return packet[21 : 21 + size].decode().split(",")


def test_strict_kex_and_an_idle_connection_is_closed_at_the_login_timeout(server: Server) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=LOGIN_TIMEOUT + 10) as conn:
        opened = time.monotonic()
        conn.sendall(b"SSH-2.0-idle_probe\r\n")
        assert "kex-strict-s-v00@openssh.com" in read_kexinit(conn)  # Terrapin: strict kex
        while conn.recv(4096):  # send nothing more: the server must hang up on its own
            pass
        lasted = time.monotonic() - opened
    assert LOGIN_TIMEOUT - 0.5 <= lasted < LOGIN_TIMEOUT + 8, lasted


def test_the_server_refuses_to_start_without_keys_or_with_a_bad_line(
    repo: Path, home: Path, tmp_path: Path
) -> None:
    keys_file = tmp_path / "authorized_keys"
    none = corral(repo, "serve", "--ssh", "--keys", str(keys_file), home=home)
    assert none.returncode == 2
    assert "no keys file at" in none.stderr
    assert "--add-key NAME ROLES KEY.pub" in none.stderr
    keys_file.write_text("# nobody yet\n\nalice admin ssh-ed25519 AAAA\n")
    bad = corral(repo, "serve", "--ssh", "--keys", str(keys_file), home=home)
    assert bad.returncode == 2
    assert f"{keys_file} line 3: 'admin' is not a role" in bad.stderr
    assert not (repo / ".git" / "corral" / "ssh" / "host_ed25519_key").exists()


def test_stopping_the_server_leaves_no_console_behind(
    repo: Path, reviewable: RunDir, server: Server, keys: dict[str, Path], tmux: Tmux
) -> None:
    """SIGTERM to the server: its end of each console's terminal closes, the kernel hangs the
    console up, and nothing of corral's is left running for a client that is gone."""
    open_console(tmux, server, keys["vera"])
    tmux.wait_for("review")
    pid = console_pid(server, "vera")
    server.process.terminate()
    server.process.wait(10)
    wait_until(lambda: not Path(f"/proc/{pid}").exists(), timeout=10, what="the console to end")
