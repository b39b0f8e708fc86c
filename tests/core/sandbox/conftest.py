"""A real attempt laid out as the engine lays it out (repository, run root, worktrees, output
dir, a listening control socket, a test HOME with secrets), and a way to run one command in it
both unsandboxed and sandboxed."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from corral.core.sandbox.bwrap import probe, sandbox_command
from corral.core.sandbox.gitdir import prepare_private_gitdir
from corral.core.sandbox.paths import AttemptPaths
from corral.core.sandbox.policy import SandboxPolicy
from corral.worktrees.git import admin_dir
from tests.conftest import GIT_ENV, git, make_repo

RUN = "r1"


@dataclass
class Attempt:
    repo: Path
    paths: AttemptPaths
    branch: str
    start: str
    env: dict[str, str]
    sibling: Path
    other_socket: Path
    listeners: list[socket.socket] = field(default_factory=list)

    def run(
        self,
        script: str,
        *,
        sandboxed: bool,
        policy: SandboxPolicy | None = None,
        paths: AttemptPaths | None = None,
        extra_env: Mapping[str, str] | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        """`sh -c script` in the worktree: as today (the engine's environment and all), or in
        the sandbox with exactly the agent's environment."""
        return self.run_argv(
            ["sh", "-c", script],
            sandboxed=sandboxed,
            policy=policy,
            paths=paths,
            extra_env=extra_env,
            timeout=timeout,
        )

    def run_argv(
        self,
        argv: Sequence[str],
        *,
        sandboxed: bool,
        policy: SandboxPolicy | None = None,
        paths: AttemptPaths | None = None,
        extra_env: Mapping[str, str] | None = None,
        timeout: float = 60,
    ) -> subprocess.CompletedProcess[str]:
        paths = paths or self.paths
        env = {**self.env, **(extra_env or {})}
        if not sandboxed:
            return subprocess.run(
                list(argv),
                cwd=self.paths.worktree,
                env={**os.environ, **env},
                capture_output=True,
                text=True,
                timeout=timeout,
                check=False,
            )
        resolved = (policy or SandboxPolicy()).resolve(paths.home)
        command = sandbox_command(resolved, paths, argv, env)
        return subprocess.run(
            command.argv,
            env=command.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            stdin=subprocess.DEVNULL,
        )


def _listen(path: Path) -> socket.socket:
    path.parent.mkdir(parents=True, exist_ok=True)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(16)
    return listener


@pytest.fixture(scope="session")
def bwrap_works() -> None:
    result = probe()
    assert result.ok, f"{result.problem}; {result.hint}"


@pytest.fixture
def attempt(bwrap_works: None) -> Iterator[Attempt]:
    # a short root: the run's sockets live in the repository and must fit AF_UNIX's 108 bytes
    root = Path(tempfile.mkdtemp(prefix="cs-", dir="/tmp"))
    # the home outside /tmp, which the sandbox makes private: hiding must be by the policy
    home = Path(tempfile.mkdtemp(prefix="corral-home-", dir="/var/tmp"))
    listeners: list[socket.socket] = []
    try:
        found = _lay_out(root, home, listeners)
        yield found
    finally:
        for listener in listeners:
            listener.close()
        shutil.rmtree(home, ignore_errors=True)
        shutil.rmtree(root, ignore_errors=True)


def _lay_out(root: Path, home: Path, listeners: list[socket.socket]) -> Attempt:
    repo = make_repo(root / "repo")
    common = repo / ".git"
    start = git(repo, "rev-parse", "HEAD")
    worktrees = common / "corral" / "worktrees" / RUN
    branch = f"corral/{RUN}/a/1"
    worktree = worktrees / "a-1"
    git(repo, "worktree", "add", "-q", "-b", branch, str(worktree), start)
    sibling = worktrees / "b-1"
    git(repo, "worktree", "add", "-q", "-b", f"corral/{RUN}/b/1", str(sibling), start)
    run_dir = common / "corral" / "runs" / RUN
    output = run_dir / "agents" / "a" / "1" / "out"
    output.mkdir(parents=True)
    (home / ".profile").write_text("plain settings\n")
    (home / ".ssh").mkdir(parents=True)
    (home / ".ssh" / "id_ed25519").write_text("PRIVATE KEY\n")
    (home / ".netrc").write_text("machine example.com password hunter2\n")
    admin = admin_dir(worktree)
    assert admin is not None
    gitdir = run_dir / "agents" / "a" / "1" / "git"
    prepare_private_gitdir(
        gitdir,
        common_dir=common,
        admin_dir=admin,
        branch=branch,
        commit=start,
        refs={"refs/heads/main": start},
    )
    listeners.append(_listen(run_dir / "control.sock"))
    listeners.append(_listen(common / "corral/runs/r2/control.sock"))
    paths = AttemptPaths(
        worktree=worktree,
        output_dir=output,
        socket=run_dir / "control.sock",
        common_dir=common,
        admin_dir=admin,
        private_gitdir=gitdir,
        home=home,
    )
    env = {
        **GIT_ENV,
        "HOME": str(home),
        "PATH": os.environ["PATH"],
        "LANG": "C.UTF-8",
        "CORRAL_PYTHON": sys.executable,
    }
    return Attempt(
        repo=repo,
        paths=paths,
        branch=branch,
        start=start,
        env=env,
        sibling=sibling,
        other_socket=common / "corral/runs/r2/control.sock",
        listeners=listeners,
    )
