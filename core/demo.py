"""`corral demo`: the example plan on a fresh copy of the sample repository."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def make_sample_repo(target: Path) -> Path:
    """Copy the sample into `target` and commit it, so the demo never touches the user's work."""
    shutil.copytree(EXAMPLES / "sample", target)
    shutil.copytree(EXAMPLES / "tools", target / "tools")  # the audit adapters the plan runs
    env_args = ["-c", "user.name=corral demo", "-c", "user.email=demo@corral.invalid"]
    for args in (
        ["init", "-q", "-b", "main"],
        ["add", "-A"],
        [*env_args, "commit", "-q", "-m", "sample service"],
    ):
        subprocess.run(["git", "-C", str(target), *args], check=True, capture_output=True)
    return target


def demo_repo(repo: Path | None) -> Path:
    if repo is not None:
        return repo
    return make_sample_repo(Path(tempfile.mkdtemp(prefix="corral-demo-")) / "inventory")


def demo_plan() -> Path:
    return EXAMPLES / "demo.toml"
