"""What corral needs of a remote place: run a POSIX shell script, bytes in, bytes out.

The scripts (core/remote/scripts.py) and the shipping (core/remote/shipping.py) are written
against this protocol only, so the same code serves an SSH host (core/remote/connection.py)
and any later channel that can run `sh -s` somewhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from corral.core.errors import CorralError


class RemoteError(CorralError):
    """A host could not be reached or a command on it failed (the message names the host)."""


class HostUnreachable(RemoteError):
    """No connection to the host now (down, refused, in backoff after failures)."""


@dataclass(frozen=True)
class Completed:
    status: int
    stdout: bytes
    stderr: bytes

    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    def problem(self) -> str:
        return (self.stderr or self.stdout).decode("utf-8", "replace").strip()[-2000:]


class Remote(Protocol):
    """A place that runs shell scripts."""

    name: str

    async def sh(
        self,
        script: str,
        *,
        stdin: bytes | Path | None = None,
        stdout: Path | None = None,
        timeout: float = 120.0,  # noqa: ASYNC109
    ) -> Completed:
        """Run `script` with `sh -c` (its text never touches the host's disk). `stdin`: bytes or
        a local file sent as its input; `stdout`: a local file its output is written to (then
        `Completed.stdout` is empty). Raises HostUnreachable when the place cannot be reached."""
        ...
