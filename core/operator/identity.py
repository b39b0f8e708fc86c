"""Who acts: read once by a front end when it starts, then passed as a value to every action,
so no screen or command reads the environment on its own."""

from __future__ import annotations

import base64
import getpass
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path


def _ssh_key_fingerprint() -> str | None:
    """The public key the SSH session logged in with (OpenSSH `ExposeAuthInfo yes`)."""
    info = os.environ.get("SSH_USER_AUTH")
    if not info:
        return None
    try:
        lines = Path(info).read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "publickey":
            try:
                blob = base64.b64decode(parts[2])
            except ValueError:
                continue
            digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
            return f"SHA256:{digest}"
    return None


def reviewer_identity() -> str:
    """The OS user, with the SSH key fingerprint (or the client address) when reached over SSH."""
    user = getpass.getuser()
    fingerprint = _ssh_key_fingerprint()
    if fingerprint:
        return f"{user} (ssh key {fingerprint})"
    connection = os.environ.get("SSH_CONNECTION")
    if connection:
        return f"{user} (ssh from {connection.split()[0]})"
    return user


@dataclass(frozen=True)
class Operator:
    """The person behind a front end.

    `user` is recorded with kills, retries and broken locks (the OS user); `reviewer` with
    decisions: the user with the SSH key fingerprint or client address when reached over SSH,
    since an approval must say who approved."""

    user: str
    reviewer: str

    @classmethod
    def current(cls) -> Operator:
        """The person running this process."""
        return cls(user=getpass.getuser(), reviewer=reviewer_identity())
