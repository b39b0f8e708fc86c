"""Agents' worktrees on a real repository, for the snapshot, conflict and integration tests."""

from __future__ import annotations

from pathlib import Path

from corral.worktrees.workspace import Workspace, create_workspace, default_root
from tests.conftest import git, make_repo

BASE_FILES = {
    "README.md": "# sample\n",
    "src/app.py": "".join(f"line {n}\n" for n in range(1, 21)),
    "src/util.py": "def helper():\n    return 1\n",
    "docs/guide.md": "guide\n",
    "assets/logo.bin": "\0\1\2logo",
}


def base_repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo", BASE_FILES)


def agent(repo: Path, name: str, attempt: int = 1, run_id: str = "r1") -> Workspace:
    return create_workspace(repo, default_root(repo), run_id, name, attempt, "main")


def edit_line(path: Path, number: int, text: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[number - 1] = text + "\n"
    path.write_text("".join(lines))


def commit_all(workspace: Path, message: str) -> str:
    git(workspace, "add", "-A")
    git(workspace, "commit", "-q", "-m", message)
    return git(workspace, "rev-parse", "HEAD")
