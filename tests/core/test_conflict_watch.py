"""The live conflict watch: a cancelled pass stops at once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path

from corral.core import events as ev
from corral.core.conflict_watch import ConflictWatch
from corral.core.state import AgentState, AttemptState, RunState
from tests.conftest import git
from tests.worktrees.merge_helpers import agent, base_repo


def run_state(spaces: dict[str, Path]) -> RunState:
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


class Recorder:
    def __init__(self) -> None:
        self.batches: list[Sequence[ev.EventBase]] = []

    async def __call__(self, events: Sequence[ev.EventBase]) -> None:
        self.batches.append(events)


def setup(tmp_path: Path, names: Sequence[str]) -> tuple[Path, str, dict[str, Path]]:
    repo = base_repo(tmp_path)
    spaces = {name: agent(repo, name).path for name in names}
    return repo, git(repo, "rev-parse", "main"), spaces


class Blocking(ConflictWatch):
    """A watch whose first snapshot waits for the test's word, telling it which thread it is."""

    def __init__(self, repo: Path, base: str, emit: Recorder) -> None:
        super().__init__(repo, base, 60.0, emit)
        self.entered = threading.Event()
        self.release = threading.Event()
        self.calls = 0
        self.worker: threading.Thread | None = None

    def _snapshot(self, agent: str, path: Path) -> str:
        self.calls += 1
        if self.worker is None:
            self.worker = threading.current_thread()
            self.entered.set()
            self.release.wait(30)
        return super()._snapshot(agent, path)


def test_cancelling_the_watch_stops_the_pass_at_the_next_worktree(tmp_path: Path) -> None:
    repo, base, spaces = setup(tmp_path, [f"agent{n}" for n in range(8)])
    emitted = Recorder()
    watch = Blocking(repo, base, emitted)

    async def main() -> None:
        task = asyncio.create_task(watch.run(run_state(spaces)))
        assert await asyncio.to_thread(watch.entered.wait, 30)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    asyncio.run(main())
    watch.release.set()
    assert watch.worker is not None
    watch.worker.join(timeout=10)  # the rest of the pass would be 7 more snapshots and a merge

    assert not watch.worker.is_alive()
    assert watch.calls == 1
    assert watch.passes == 0
    assert emitted.batches == []
    assert watch._check(spaces) is None  # closed for good
