"""Where `corral serve --ssh` listens, where its files live, and how it is hardened: the one
place that says so (docs/reliability.md H1)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from corral.core.errors import InputError

DEFAULT_LISTEN = "127.0.0.1:2222"
LOGIN_TIMEOUT = 10.0
"""Seconds a connection has to authenticate before the server closes it."""
KEEPALIVE_INTERVAL = 15.0
"""Seconds of silence before the server checks the client is still there."""
KEEPALIVE_COUNT_MAX = 3
"""Unanswered checks after which the connection is dropped (and its console stopped)."""


def ssh_dir(common_dir: Path) -> Path:
    """`<git-common-dir>/corral/ssh`: the keys file and the host key, private to the user."""
    return common_dir / "corral" / "ssh"


def parse_listen(text: str) -> tuple[str, int]:
    """`HOST:PORT` (`[::1]:2222` for IPv6); InputError naming the form otherwise."""
    host, sep, port_text = text.rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise InputError(
            f"--listen {text}: say HOST:PORT, e.g. {DEFAULT_LISTEN} (port 0: any free port)"
        )
    return host, int(port_text)


@dataclass(frozen=True, kw_only=True)
class ServeOptions:
    """One SSH console server's settings."""

    repo: Path
    """The repository whose runs the consoles show."""
    run: str | None
    """Open this run's dashboard (None: the runs list)."""
    host: str
    port: int
    keys_file: Path
    """corral's authorized keys file (keys.py), read again at each connection."""
    host_key_file: Path
    login_timeout: float = LOGIN_TIMEOUT
    keepalive_interval: float = KEEPALIVE_INTERVAL
    keepalive_count_max: int = KEEPALIVE_COUNT_MAX
