"""The server's host key: generated once (ed25519, mode 0600), then the same at every start, so
a client that checked its fingerprint once is never asked again and notices a substitute."""

from __future__ import annotations

import os
from pathlib import Path

import asyncssh

from corral.core.errors import CorralError


def load_or_create(path: Path) -> asyncssh.SSHKey:
    """The key at `path`, made there first when there is none (its directory made 0700)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        key = asyncssh.generate_private_key("ssh-ed25519", comment="corral serve --ssh")
        data = key.export_private_key()
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(data)
        path.with_name(path.name + ".pub").write_bytes(key.export_public_key())
        return key
    if path.stat().st_mode & 0o077:
        raise CorralError(
            f"the host key {path} is readable by others: chmod 600 {path} (or remove it to "
            "make a new one, and tell the clients its new fingerprint)"
        )
    try:
        return asyncssh.read_private_key(path)
    except (OSError, asyncssh.KeyImportError) as exc:
        raise CorralError(
            f"the host key {path} cannot be read ({exc}): remove it to make a new one, and tell "
            "the clients its new fingerprint"
        ) from None


def fingerprint(key: asyncssh.SSHKey) -> str:
    """`SHA256:...`, as `ssh-keygen -lf` and the ssh client show it."""
    return key.get_fingerprint("sha256")
