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


def conflict_scene(tmp_path: Path) -> tuple[Path, str, list[tuple[str, int, str]]]:
    """Left-out `z` conflicts with `a` in app.py only and with `d` in lib.py only; `c` changes
    both files too, in lines `z` leaves alone, so `c` and `z` merge cleanly."""
    lib = "".join(f"value_{n} = {n}\n" for n in range(1, 21))
    repo = make_repo(tmp_path / "repo", {**BASE_FILES, "src/lib.py": lib})
    base = git(repo, "rev-parse", "main")
    a, c, d, z = (agent(repo, name) for name in ("a", "c", "d", "z"))
    edit_line(a.path / "src/app.py", 1, "a's line 1")
    edit_line(c.path / "src/app.py", 15, "c's line 15")
    edit_line(c.path / "src/lib.py", 15, "value_15 = 'c'")
    edit_line(d.path / "src/lib.py", 2, "value_2 = 'd'")
    edit_line(z.path / "src/app.py", 1, "z's line 1")
    edit_line(z.path / "src/lib.py", 2, "value_2 = 'z'")
    for ws in (a, c, d, z):
        commit_all(ws.path, ws.path.name)
    return repo, base, [(n, 1, ws.branch) for n, ws in (("a", a), ("c", c), ("d", d), ("z", z))]
