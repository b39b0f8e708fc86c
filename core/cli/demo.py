"""`corral demo`: the example plan on a fresh copy of the sample repository (or the user's own)."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from corral.worktrees.git import run_git

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
TOOLS_ENV = "DEMO_TOOLS"
"""The plan finds its audit adapters through this variable, so they need not be in the repository."""


def make_sample_repo(target: Path, sample: Path | None = None) -> Path:
    """Copy the sample into `target` and commit it, so the demo never touches the user's work."""
    shutil.copytree(sample or EXAMPLES / "sample", target)
    identity = ["-c", "user.name=corral demo", "-c", "user.email=demo@corral.invalid"]
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        [*identity, "commit", "-q", "-m", "sample service"],
    ):
        run_git(target, *args)
    return target


def demo_repo(repo: Path | None) -> Path:
    if repo is not None:
        return repo.resolve()
    return make_sample_repo(Path(tempfile.mkdtemp(prefix="corral-demo-")) / "inventory")


def demo_plan() -> Path:
    return EXAMPLES / "demo.toml"


def prepare_environment() -> None:
    """Point the plan at the adapters; agents inherit the engine's environment."""
    os.environ.setdefault(TOOLS_ENV, str(EXAMPLES / "tools"))
