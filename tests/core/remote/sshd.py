"""Real OpenSSH servers on loopback for the `ssh` runtime's tests: each one a "host".

Each host is `/usr/sbin/sshd -D -e -f CONFIG` on 127.0.0.1 on a free port, with its own
temporary host key, authorized client key, known_hosts line and work directory. Everything
runs as the test's user (root on the test machines), so the two hosts share one kernel: their
processes are told apart by the attempt's marks, as the runtime tells them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

SSHD = "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _keygen(path: Path) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)],
        check=True,
        capture_output=True,
    )


@dataclass
class Host:
    """One sshd: its name in the pool, where it listens and the files a HostSpec names."""

    name: str
    root: Path
    port: int
    identity: Path
    known_hosts: Path
    workdir: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def config(self) -> Path:
        return self.root / "sshd_config"

    def spec(self, slots: int = 8, **extra: object) -> dict[str, object]:
        """The `[[host]]` table for a plan."""
        return {
            "name": self.name,
            "address": f"root@127.0.0.1:{self.port}",
            "identity": str(self.identity),
            "known_hosts": str(self.known_hosts),
            "slots": slots,
            "workdir": str(self.workdir),
            **extra,
        }

    def start(self, timeout: float = 10.0) -> None:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
        with (self.root / "sshd.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [SSHD, "-D", "-e", "-f", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock,
            ):
                if sock.recv(4).startswith(b"SSH-"):
                    return
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(
                    f"sshd for {self.name} did not listen on {self.port}: "
                    + (self.root / "sshd.log").read_text(errors="replace")
                )
            time.sleep(0.05)

    def stop(self) -> None:
        """The host drops off: its sshd and every connection it serves are gone at once (the
        agents it started are not: they run on, as on a host cut off by a partition)."""
        if self.proc is None:
            return
        with contextlib.suppress(psutil.Error):
            parent = psutil.Process(self.proc.pid)
            children = [c for c in parent.children(recursive=True) if c.name() == "sshd"]
            parent.send_signal(signal.SIGKILL)
            for child in children:
                with contextlib.suppress(psutil.Error):
                    child.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)
        self.proc = None


def make_host(root: Path, name: str) -> Host:
    """A host's files under `root/name`; not started."""
    base = root / name
    base.mkdir(parents=True)
    os.chmod(base, 0o700)
    _keygen(base / "host_key")
    _keygen(base / "client_key")
    port = free_port()
    (base / "authorized_keys").write_text((base / "client_key.pub").read_text())
    host_pub = (base / "host_key.pub").read_text().split()
    known = base / "known_hosts"
    known.write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    host = Host(name, base, port, base / "client_key", known, base / "work")
    host.config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {base / 'host_key'}",
                f"PidFile {base / 'sshd.pid'}",
                f"AuthorizedKeysFile {base / 'authorized_keys'}",
                "StrictModes no",
                "UsePAM no",
                "PermitRootLogin prohibit-password",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "AllowAgentForwarding no",
                "X11Forwarding no",
                "AllowStreamLocalForwarding yes",
                "StreamLocalBindUnlink yes",
                "MaxSessions 64",
                "MaxStartups 64",
                "ClientAliveInterval 0",
                "LogLevel ERROR",
                "",
            ]
        )
    )
    return host
