"""Many creators at once on one repository: threads, and separate processes, count what was lost."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from corral.worktrees.workspace import Workspace, create_workspace, default_root
from tests.conftest import git
from tests.worktrees.checks import assert_all_present

CHILD = """
import json, sys, threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from corral.worktrees.workspace import create_workspace

repo, root, run_id, commit, *agents = sys.argv[1:]
barrier = threading.Barrier(len(agents))
def make(agent):
    barrier.wait()
    ws = create_workspace(Path(repo), Path(root), run_id, agent, 1, commit)
    return [str(ws.path), ws.branch, ws.commit]
print("ready", flush=True)
sys.stdin.readline()
with ThreadPoolExecutor(len(agents)) as pool:
    print(json.dumps(list(pool.map(make, agents))), flush=True)
"""


def create_all(repo: Path, run_id: str, agents: list[str], commit: str) -> list[Workspace]:
    """Create one workspace per agent, every thread released at the same moment."""
    barrier = threading.Barrier(len(agents))
    root = default_root(repo)

    def make(agent: str) -> Workspace:
        barrier.wait()
        return create_workspace(repo, root, run_id, agent, 1, commit)

    with ThreadPoolExecutor(len(agents)) as pool:
        return list(pool.map(make, agents))


def test_sixteen_threads_create_at_once(repo: Path) -> None:
    commit = git(repo, "rev-parse", "HEAD")
    made = create_all(repo, "run1", [f"agent{i}" for i in range(16)], commit)
    assert_all_present(repo, made, commit)
    assert git(repo, "worktree", "prune", "--dry-run", "--verbose") == ""  # nothing half-made


def test_four_processes_and_threads_create_at_once(repo: Path) -> None:
    commit = git(repo, "rev-parse", "HEAD")
    root = str(default_root(repo))
    children = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(repo), root, "run1", commit]
            + [f"p{p}-agent{i}" for i in range(4)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for p in range(4)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        local = create_all(repo, "run1", [f"local{i}" for i in range(8)], commit)
        made = list(local)
        for child in children:
            out, err = child.communicate(timeout=90)
            assert child.returncode == 0, err
            made += [Workspace(Path(p), b, c) for p, b, c in json.loads(out)]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    assert len(made) == 24
    assert_all_present(repo, made, commit)
