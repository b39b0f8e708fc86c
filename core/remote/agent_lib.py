"""corral's agent side on a host: `corral heartbeat`, `lock`, `put` for a remote agent.

The same files the container runtime mounts (core/sandbox/bwrap.py `_package_mounts`): corral's
`core` and `worktrees` packages and a `corral` shim running them with the host's `python3`,
shipped as one tar over the connection into `<workdir>/lib/<hash>/`, where the hash is of their
content: shipped once per version, every attempt after finds it there. `corral heartbeat` and
the lock client need only the standard library (Python 3.11+); the rest of the command line
needs corral's dependencies on the host.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from dataclasses import dataclass
from pathlib import Path

from corral.core.sandbox.bwrap import SHIM


@dataclass(frozen=True)
class AgentLib:
    digest: str
    tar: bytes


def _files() -> list[tuple[str, Path]]:
    import corral

    package = Path(corral.__file__).parent
    found = [("corral/__init__.py", (package / "__init__.py").resolve())]
    for name in ("core", "worktrees"):
        root = (package / name).resolve()
        for path in sorted(root.rglob("*.py")):
            if "__pycache__" not in path.parts:
                found.append((f"corral/{name}/{path.relative_to(root)}", path))
    return found


def build() -> AgentLib:
    """The tar of the package and the shim, and its content hash (the same files, the same)."""
    digest = hashlib.sha256()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, path in _files():
            data = path.read_bytes()
            digest.update(name.encode() + b"\0" + data + b"\0")
            _add(tar, name, data, 0o644)
        _add(tar, "bin/corral", SHIM.encode(), 0o755)
        digest.update(SHIM.encode())
    return AgentLib(digest.hexdigest()[:16], buffer.getvalue())


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    tar.addfile(info, io.BytesIO(data))
