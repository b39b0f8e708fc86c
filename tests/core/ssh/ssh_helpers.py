"""A real `corral serve --ssh` on a free loopback port, keys made with ssh-keygen, the OpenSSH
client run in tmux (a real terminal) or as a plain process, the host key pinned from what the
server printed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import GIT_ENV


def make_key(directory: Path, name: str) -> Path:
    """An ed25519 key pair without a passphrase; returns the private key's path."""
    path = directory / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", f"{name}@test", "-f", str(path)],
        check=True,
    )
    return path


def fingerprint_of(public_key: Path) -> str:
    """`SHA256:...` as ssh-keygen computes it (not corral's own code)."""
    out = subprocess.run(
        ["ssh-keygen", "-lf", str(public_key)], check=True, capture_output=True, text=True
    ).stdout
    return out.split()[1]


def corral(repo: Path, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "corral.core.cli", *args],
        cwd=repo,
        env=server_env(home),
        capture_output=True,
        text=True,
        timeout=60,
    )


def server_env(home: Path) -> dict[str, str]:
    """The server's environment: a HOME of its own whose git config names who commits (the
    consoles it starts get HOME, not the test's git variables), and no SSH_* of the test's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSH_") and k not in GIT_ENV}
    env["HOME"] = str(home)
    env.pop("XDG_CONFIG_HOME", None)
    return env


def make_home(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / ".gitconfig").write_text(
        "[user]\n\tname = corral-test\n\temail = test@corral.invalid\n"
    )
    return path


@dataclass
class Server:
    """`corral serve --ssh` started in `repo`; `stderr` is where it says what it did."""

    repo: Path
    process: subprocess.Popen[str]
    port: int
    fingerprint: str
    known_hosts: Path
    log: Path
    lines: list[str] = field(default_factory=list)

    def said(self) -> str:
        return self.log.read_text()

    def wait_said(self, pattern: str, within: float = 20.0) -> re.Match[str]:
        deadline = time.monotonic() + within
        while True:
            found = re.search(pattern, self.said())
            if found:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"the server never said {pattern!r}:\n{self.said()}")
            time.sleep(0.05)

    def ssh(self, key: Path | None, *extra: str, command: str | None = None) -> list[str]:
        """The ssh command line: this server, its pinned host key, no user config."""
        words = ["ssh", "-F", "/dev/null", "-p", str(self.port)]
        words += ["-o", f"UserKnownHostsFile={self.known_hosts}", "-o", "StrictHostKeyChecking=yes"]
        words += ["-o", "BatchMode=yes", "-o", "IdentitiesOnly=yes", "-o", "ConnectTimeout=10"]
        if key is not None:
            words += ["-i", str(key)]
        return [*words, *extra, "someone@127.0.0.1", *([command] if command else [])]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_server(repo: Path, home: Path, tmp: Path, *extra: str) -> Server:
    """Start the server on port 0, wait for the address it prints, and pin its host key: the
    key file's fingerprint (ssh-keygen's) must be the one printed."""
    out, log = tmp / "serve.out", tmp / "serve.err"
    with out.open("w") as stdout, log.open("w") as stderr:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "corral.core.cli",
                "serve",
                "--ssh",
                "--listen",
                "127.0.0.1:0",
                *extra,
            ],
            cwd=repo,
            env=server_env(home),
            stdout=stdout,
            stderr=stderr,
            text=True,
        )
    deadline = time.monotonic() + 30
    while not re.search(r"host key (SHA256:\S+)", out.read_text()):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"the server did not start:\n{out.read_text()}{log.read_text()}")
        time.sleep(0.05)
    printed = out.read_text()
    address = re.search(r"over SSH at 127\.0\.0\.1:(\d+)", printed)
    shown = re.search(r"host key (SHA256:\S+) \((\S+)\)", printed)
    assert address is not None
    assert shown is not None
    public = Path(shown.group(2))
    assert fingerprint_of(public) == shown.group(1), "the printed fingerprint is the key's"
    port = int(address.group(1))
    key_type, key_blob = public.read_text().split()[:2]
    known_hosts = tmp / "known_hosts"
    known_hosts.write_text(f"[127.0.0.1]:{port} {key_type} {key_blob}\n")
    return Server(repo, process, port, shown.group(1), known_hosts, log)
