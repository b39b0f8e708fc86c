"""The bubblewrap command line for one sandboxed attempt, and the preflight probe (T6).

`sandbox_command` is pure: from the resolved policy, the attempt's paths, the command and its
environment it builds what to start. The mounts, in order (a later mount covers an earlier one):
the host (or the image) read-only; fresh `/dev`, `/proc`, and private `/tmp`, `/dev/shm` and
`/run` (so no agent, desktop, ssh-agent or docker socket is reachable); the hidden paths as
empty read-only tmpfs (directories) or `/dev/null` (files); corral's directory in the shared git
dir hidden (every run's log and socket, every other worktree); then the `read` and `write`
paths, the attempt's worktree and output dir writable, its private git directory over the
worktree's record, its run's control socket (and the proxy's) under `/run/corral`.

Namespaces: user (bubblewrap's own, unprivileged), pid, ipc, uts, cgroup and always net: with
`network = "allow"` the only way out is the proxy's Unix socket, reached through the loopback
relay (`corral.core.sandbox.relay`). `--die-with-parent` and the pid namespace mean nothing the
agent starts outlives it; bubblewrap always sets no_new_privs; `--new-session` keeps it off the
engine's terminal.

The environment is not put on the command line (`--setenv` values would be readable by every
user in /proc/<pid>/cmdline): `SandboxCommand.env` is exactly what the agent gets, and the
runtime starts bubblewrap with that environment and nothing else.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from corral.core.sandbox.paths import (
    INSIDE_BIN,
    INSIDE_PACKAGE,
    INSIDE_PROXY_SOCKET,
    INSIDE_RUN,
    AttemptPaths,
)
from corral.core.sandbox.policy import ResolvedPolicy

RELAY_PORT = 3128
"""The loopback port inside the sandbox where the relay listens (the namespace is private)."""
RELAY_SCRIPT = Path(__file__).with_name("relay.py")
INSTALL_HINT = "install bubblewrap: apt-get install bubblewrap (Debian, Ubuntu), dnf install bubblewrap (Fedora)"


@dataclass(frozen=True)
class SandboxCommand:
    """What to start: `argv` (bubblewrap first) with exactly `env` as its environment."""

    argv: list[str]
    env: dict[str, str]


_ABSENT = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP})
"""What `stat` says of a path that names nothing (a missing one, a dangling link, a loop)."""


def _hide(path: Path, remounts: list[str]) -> list[str]:
    """An empty directory, or an empty file, where `path` was; nothing if absent.

    A directory's tmpfs is made read-only last (`remounts`), once the mount points the later
    mounts need inside it (a `read` path, the worktree in the run root) have been made. Most of
    the secret stores are absent on a given host: one `stat` says so, before the dearer
    `realpath` (this runs on the event loop for each of an attempt's commands).
    """
    try:
        info = os.stat(path)
    except OSError as error:
        if error.errno in _ABSENT:
            return []
        raise
    real = os.path.realpath(path)
    if stat.S_ISDIR(info.st_mode):
        remounts += ["--remount-ro", real]
        return ["--tmpfs", real]
    return ["--ro-bind", os.devnull, real]


def _image_root(image: Path) -> list[str]:
    """The image's top level, read-only, on a tmpfs root (so mount points can be made in it)."""
    args = ["--tmpfs", "/"]
    for entry in sorted(os.scandir(image), key=lambda e: e.name):
        if entry.name in {"dev", "proc", "tmp", "run"}:
            continue
        if entry.is_symlink():
            args += ["--symlink", os.readlink(entry.path), f"/{entry.name}"]
        elif entry.is_dir():
            args += ["--ro-bind", entry.path, f"/{entry.name}"]
    return args


def _package_mounts() -> list[str]:
    """corral's `core` and `worktrees`, read-only, by their real paths (in a checkout `corral/`
    holds symlinks to them; installed, they are its subfolders)."""
    import corral

    package = Path(corral.__file__).parent
    inside = INSIDE_PACKAGE / "corral"
    args = ["--dir", str(inside)]
    args += ["--ro-bind", str((package / "__init__.py").resolve()), str(inside / "__init__.py")]
    for name in ("core", "worktrees"):
        args += ["--ro-bind", str((package / name).resolve()), str(inside / name)]
    return args


SHIM = '#!/bin/sh\nexec python3 -c "from corral.core.entry import main; main()" "$@"\n'
"""The `corral` command inside a container: the agent side of corral from the mounted package."""


def write_shim(directory: Path) -> Path:
    """Write the container's `corral` shim into `directory/corral` (mounted as /run/corral/bin)."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    shim = directory / "corral"
    shim.write_text(SHIM)
    shim.chmod(0o755)
    return shim


def sandbox_command(
    policy: ResolvedPolicy,
    paths: AttemptPaths,
    command: Sequence[str],
    env: Mapping[str, str],
    *,
    bwrap: str = "bwrap",
    python: str | None = None,
    shim_dir: Path | None = None,
    info_fd: int | None = None,
    terminal: bool = False,
) -> SandboxCommand:
    """The bubblewrap command for `command`, with `env` plus what the sandbox itself sets.

    `python` runs the relay when `policy.network == "allow"` (default: this interpreter on the
    host, `python3` in an image). `shim_dir` (container mode) holds the `corral` shim.
    `info_fd` (inherited by bubblewrap) receives `{"child-pid": N}`: see `sandbox_init_pid`.
    `terminal`: the agent runs on a terminal the engine holds (`tty = true`), so it keeps the
    session whose controlling terminal that is (no `--new-session`, which would take it away);
    what `--new-session` guards against, TIOCSTI typing into a person's terminal, can reach
    only the agent's own terminal then.
    """
    relative = [str(p) for p in (*policy.read, *policy.write, *policy.hide) if not p.is_absolute()]
    if relative:
        raise ValueError(f"sandbox paths must be absolute (check the policy first): {relative}")
    container = paths.image is not None
    args = [bwrap, "--die-with-parent"] + ([] if terminal else ["--new-session"])
    if info_fd is not None:
        args += ["--info-fd", str(info_fd)]
    args += ["--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts"]
    args += ["--unshare-net", "--unshare-cgroup-try", "--hostname", "corral-sandbox"]
    args += _image_root(paths.image) if paths.image is not None else ["--ro-bind", "/", "/"]
    args += ["--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp", "--tmpfs", "/dev/shm"]
    args += ["--tmpfs", "/run"]
    # the shared git dir again, read-only, in case it lives under the now private /tmp
    args += ["--ro-bind", str(paths.common_dir), str(paths.common_dir)]
    remounts: list[str] = []
    if not container:  # an image holds none of the host's secrets: nothing of it to hide
        for path in policy.hide:
            args += _hide(path, remounts)
    # every run's log and socket, every worktree, every other attempt's git record
    args += _hide(paths.run_root, remounts)
    args += _hide(paths.common_dir / "worktrees", remounts)
    for path in policy.read:
        args += ["--ro-bind-try", str(path), str(path)]
    for path in policy.write:
        args += ["--bind-try", str(path), str(path)]
    args += ["--bind", str(paths.worktree), str(paths.worktree_inside)]
    args += ["--bind", str(paths.private_gitdir), str(paths.admin_dir)]
    args += ["--dir", str(INSIDE_RUN)]
    args += ["--bind", str(paths.output_dir), str(paths.output_inside)]
    overlay = {
        "CORRAL_WORKSPACE": str(paths.worktree_inside),
        "CORRAL_OUTPUT": str(paths.output_inside),
        "TMPDIR": "/tmp",
    }
    if paths.socket is not None:
        args += ["--ro-bind", str(paths.socket), str(paths.socket_inside)]
        overlay["CORRAL_SOCKET"] = str(paths.socket_inside)
    if container:
        args += _package_mounts()
        if shim_dir is not None:
            args += ["--ro-bind", str(shim_dir), str(INSIDE_BIN)]
        path_var = env.get("PATH", "/usr/local/bin:/usr/bin:/bin")
        overlay["PATH"] = f"{INSIDE_BIN}:{path_var}"
        overlay["PYTHONPATH"] = str(INSIDE_PACKAGE)
    if policy.network == "allow":
        if paths.proxy_socket is None:
            raise ValueError('network = "allow" needs the proxy\'s socket (paths.proxy_socket)')
        args += ["--ro-bind", str(paths.proxy_socket), str(INSIDE_PROXY_SOCKET)]
        proxy = f"http://127.0.0.1:{RELAY_PORT}"
        for name in ("HTTPS_PROXY", "HTTP_PROXY", "https_proxy", "http_proxy"):
            overlay[name] = proxy
        overlay["NO_PROXY"] = overlay["no_proxy"] = ""
        interpreter = python or ("python3" if container else sys.executable)
        relay = (
            str(INSIDE_PACKAGE / "corral/core/sandbox/relay.py") if container else str(RELAY_SCRIPT)
        )
        command = [
            interpreter,
            "-I",
            relay,
            str(RELAY_PORT),
            str(INSIDE_PROXY_SOCKET),
            "--",
            *command,
        ]
    args += remounts
    args += ["--chdir", str(paths.worktree_inside), "--", *command]
    return SandboxCommand(argv=args, env={**env, **overlay})


def sandbox_init_pid(info: bytes) -> int | None:
    """The host pid of the sandbox's pid-1 from what bubblewrap wrote to `--info-fd`.

    Killing that process ends the whole pid namespace at once, whatever the agent started, at
    any moment; killing bubblewrap itself is not enough while it is still setting up (its child
    can miss the parent-death signal and run on). The runtime kills this pid, then, as for every
    attempt, whatever still carries the attempt's marks (T2).
    """
    try:
        value = json.loads(info.decode("utf-8", "replace")).get("child-pid")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) and value > 1 else None


class ProbeResult(BaseModel):
    """Whether bubblewrap can sandbox here; when not, what is wrong and how to fix it."""

    ok: bool
    bwrap: str | None = None
    problem: str = ""
    hint: str = ""


def probe(bwrap: str = "bwrap", timeout: float = 10.0) -> ProbeResult:
    """Start a throwaway sandbox with every namespace corral uses (preflight, exit 2 if not ok)."""
    found = shutil.which(bwrap)
    if found is None:
        return ProbeResult(
            ok=False,
            problem=f"{bwrap} (bubblewrap) is not installed or not on PATH",
            hint=INSTALL_HINT,
        )
    argv = [
        found,
        "--unshare-all",
        "--die-with-parent",
        "--new-session",
        "--ro-bind",
        "/",
        "/",
        "--dev",
        "/dev",
        "--proc",
        "/proc",
        "--tmpfs",
        "/tmp",
        "true",
    ]
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
            env={"PATH": os.defpath},
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        return ProbeResult(
            ok=False, bwrap=found, problem=f"{found} could not be run: {error}", hint=INSTALL_HINT
        )
    if done.returncode != 0:
        return ProbeResult(
            ok=False,
            bwrap=found,
            problem=f"bubblewrap cannot create namespaces here: {done.stderr.strip()}",
            hint=(
                "allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1; "
                "on Ubuntu 24.04 kernel.apparmor_restrict_unprivileged_userns=0 or an AppArmor "
                "profile for bwrap); in a container, run it with --privileged or a seccomp "
                "profile that allows unshare"
            ),
        )
    return ProbeResult(ok=True, bwrap=found)
