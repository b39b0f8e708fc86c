"""What one pass of the live conflict watch costs, cold and with nothing changed, and how fast it stops.

    python bench/bench_watch.py --agents 50 --files 100

Builds a repository of `--files` small files, one worktree per agent (each with one file of its
own edited, so every snapshot is a dangling commit), waits until every file is older than the
fingerprint's racy margin, then times `ConflictWatch._check` over all of them:
  cold     a fresh watch's first pass (commit-graph, every snapshot, every pair merged)
  again    the next pass with nothing changed
  one      the pass after one agent edited a file
  stop     from cancelling `ConflictWatch.run` during a cold pass to its worker thread's end
with the git processes each pass started. The machines are noisy: compare ratios of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from scratch import git

from corral.core.engine.conflict_watch import ConflictWatch
from corral.core.log.state import AgentState, AttemptState, RunState

MARGIN = 1.2
"""Seconds to let the fresh files age past the fingerprint's racy margin."""


class _Counted(subprocess.Popen[Any]):
    started = 0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        _Counted.started += 1
        super().__init__(*args, **kwargs)


def processes(action: Callable[[], object]) -> tuple[float, int]:
    """Seconds `action` took and the processes it started."""
    real = subprocess.Popen
    subprocess.Popen = _Counted  # type: ignore[misc]
    _Counted.started = 0
    try:
        start = time.perf_counter()
        action()
        return time.perf_counter() - start, _Counted.started
    finally:
        subprocess.Popen = real  # type: ignore[misc]


def build(root: Path, files: int, agents: int) -> tuple[Path, dict[str, Path]]:
    repo = root / "repo"
    (repo / "src").mkdir(parents=True)
    git(repo, "init", "-q", "-b", "main")
    for n in range(files):
        (repo / "src" / f"mod{n:04d}.py").write_text("".join(f"v{i} = {n}\n" for i in range(40)))
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    spaces: dict[str, Path] = {}
    for n in range(agents):
        path = root / "wt" / f"agent{n:03d}-1"
        git(repo, "worktree", "add", "-q", "-b", f"agent{n:03d}", str(path), "main")
        (path / "src" / f"mod{n % files:04d}.py").write_text(f"edited by agent {n}\n")
        spaces[f"agent{n:03d}"] = path
    return repo, spaces


def state_for(spaces: dict[str, Path]) -> RunState:
    agents = {
        name: AgentState(
            id=name,
            kind="coding",
            command=["agent"],
            attempts=[AttemptState(number=1, state="running", workspace=str(path))],
        )
        for name, path in spaces.items()
    }
    return RunState(base_ref="main", agents=agents)


async def _noop(events: object) -> None:
    return None


class _Signalling(ConflictWatch):
    """A watch that says when its first snapshot starts."""

    def __init__(self, repo: Path, base: str) -> None:
        super().__init__(repo, base, 60.0, _noop)
        self.first = threading.Event()
        self.calls = 0

    def _snapshot(self, agent: str, path: Path) -> str:
        self.calls += 1
        self.first.set()
        return super()._snapshot(agent, path)


def stop_latency(repo: Path, base: str, spaces: dict[str, Path]) -> tuple[float, int]:
    """Seconds from cancelling a watch in the middle of its first pass to its thread's end."""
    watch = _Signalling(repo, base)

    async def main() -> float:
        task = asyncio.create_task(watch.run(state_for(spaces)))
        await asyncio.to_thread(watch.first.wait, 60)
        task.cancel()
        cancelled = time.perf_counter()
        await asyncio.gather(task, return_exceptions=True)
        for thread in list(watch.pool._threads):
            thread.join(60)
        return time.perf_counter() - cancelled

    return asyncio.run(main()), watch.calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--files", type=int, default=100)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="corral-bench-watch-"))
    try:
        repo, spaces = build(root, args.files, args.agents)
        base = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "main"], capture_output=True, text=True
        ).stdout.strip()
        time.sleep(MARGIN)
        watch = ConflictWatch(repo, base, 5.0, _noop)
        rows = [("cold", *processes(lambda: watch._check(spaces)))]
        rows.append(("again", *processes(lambda: watch._check(spaces))))
        (spaces["agent000"] / "README.new").write_text("one more file\n")
        rows.append(("one", *processes(lambda: watch._check(spaces))))
        print(f"{args.agents} worktrees of a {args.files}-file repository")
        for name, seconds, started in rows:
            print(f"  {name:<6} {seconds * 1000:7.0f} ms  {started:4d} processes")
        print(f"  ({watch.snapshots_taken} snapshots taken, {watch.snapshots_reused} reused)")
        seconds, calls = stop_latency(repo, base, spaces)
        print(
            f"  stop   {seconds * 1000:7.0f} ms from cancel to the worker's end "
            f"({calls} of {len(spaces)} worktrees snapshotted)"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
