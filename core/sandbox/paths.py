"""Where one attempt's files are on the host, and where its agent sees them inside the sandbox.

On the host (`image` unset) every path is seen at its own place, so `CORRAL_WORKSPACE` and the
rest mean the same inside and out; only the control socket moves, to a short fixed path under
a private `/run` (the run directory around it is hidden, and so is every other run's socket).
In a container (`image` set) the worktree is `/workspace` and corral's files are under
`/run/corral`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

INSIDE_RUN = Path("/run/corral")
"""corral's own mount points inside every sandbox (`/run` itself is a private tmpfs)."""
INSIDE_SOCKET = INSIDE_RUN / "control.sock"
INSIDE_PROXY_SOCKET = INSIDE_RUN / "proxy.sock"
INSIDE_OUTPUT = INSIDE_RUN / "out"
INSIDE_PACKAGE = INSIDE_RUN / "lib"
"""Container mode: corral's agent-side package, read-only, on PYTHONPATH for the shim."""
INSIDE_BIN = INSIDE_RUN / "bin"
"""Container mode: the `corral` shim, first on PATH."""
CONTAINER_WORKSPACE = Path("/workspace")


@dataclass(frozen=True)
class AttemptPaths:
    """The host paths of one attempt (all absolute; the engine has them when it places it).

    `admin_dir` is the worktree's record in the shared repository (`.git/worktrees/<id>`, named
    by the worktree's `.git` file); inside the sandbox `private_gitdir` is mounted there instead
    (see `corral.core.sandbox.gitdir`). `run_root` is corral's directory in the shared git dir
    (`<git-common-dir>/corral`: every run's log, socket and worktrees), hidden but for this
    attempt's own pieces.
    """

    worktree: Path
    output_dir: Path
    socket: Path | None
    """The run's control socket, or None for a command corral runs itself (the `verify`)."""
    common_dir: Path
    admin_dir: Path
    private_gitdir: Path
    home: Path
    image: Path | None = None
    proxy_socket: Path | None = None

    @property
    def run_root(self) -> Path:
        return self.common_dir / "corral"

    @property
    def worktree_inside(self) -> Path:
        return CONTAINER_WORKSPACE if self.image is not None else self.worktree

    @property
    def output_inside(self) -> Path:
        return INSIDE_OUTPUT if self.image is not None else self.output_dir

    @property
    def socket_inside(self) -> Path:
        return INSIDE_SOCKET
