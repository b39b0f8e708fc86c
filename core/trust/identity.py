"""Who a person is, in the words a decision records: the OS user, with the SSH key or the
client address when the session came over SSH (a shared account then still names who)."""

from __future__ import annotations

import base64
import getpass
import hashlib
import os
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
