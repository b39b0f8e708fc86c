"""What the benchmarks share: a scratch repository, git with a fixed identity, a quiet run.

Benchmarks run as scripts (`python bench/bench_engine.py`), so this sits beside them and they
import it by its bare name.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

IDENTITY = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@corral.invalid",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@corral.invalid",
}
"""Who commits in the scratch repositories (a fresh machine has no git identity)."""


def git(repo: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-C", str(repo), *args],
        check=True,
        capture_output=True,
        env={**os.environ, **IDENTITY},
    )


def make_repo(path: Path, files: dict[str, str]) -> Path:
    """A repository at `path` on branch main with `files` (relative path: text) in one commit."""
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    for name, text in files.items():
        target = path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "bench")
    return path


def run_quietly(
    plan: Path, repo: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`corral run PLAN --quiet` in `repo`, as a user would start it; never raises on failure."""
    return subprocess.run(
        [sys.executable, "-m", "corral.core.cli", "run", str(plan), "--quiet"],
        cwd=repo,
        capture_output=True,
        text=True,
        env={**os.environ, **IDENTITY} if env is None else env,
        check=False,
    )
