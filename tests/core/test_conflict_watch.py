"""The live conflict watch: idle worktrees cost no snapshot, and a cancelled pass stops at once."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from functools import partial
from pathlib import Path

from corral.core.engine.conflict_watch import ConflictWatch
from corral.core.log import events as ev
from corral.core.log.state import AgentState, AttemptState, RunState
from corral.worktrees.fingerprint import fingerprint
from tests.conftest import git, wait_until
from tests.worktrees.merge_helpers import agent, base_repo, edit_line

LONG_MARGIN_NS = 60 * 1_000_000_000


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


def is_trusted(path: Path) -> bool:
    found = fingerprint(path)
    return found is not None and found.trusted


def wait_until_trusted(spaces: dict[str, Path]) -> None:
    """Until every file is older than the racy margin, so fingerprints may be cached."""
    for path in spaces.values():
        wait_until(partial(is_trusted, path), timeout=10, what=f"a trusted fingerprint of {path}")


def test_idle_worktrees_reuse_their_snapshot(tmp_path: Path) -> None:
    repo, base, spaces = setup(tmp_path, ["alice", "bob", "carol"])
    edit_line(spaces["alice"] / "src/app.py", 4, "alice")
    edit_line(spaces["bob"] / "src/app.py", 4, "bob")
    wait_until_trusted(spaces)
    watch = ConflictWatch(repo, base, 1.0, Recorder())
    watch.base_ref = "main"

    first = watch._check(spaces)
    assert [e.type for e in first or []] == ["conflict_predicted"]
    assert (watch.snapshots_taken, watch.snapshots_reused) == (3, 0)

    assert watch._check(spaces) == []
    assert (watch.snapshots_taken, watch.snapshots_reused) == (3, 3)

    edit_line(spaces["carol"] / "src/app.py", 4, "carol")
    found = watch._check(spaces)
    assert [(e.type, e.key) for e in found or []] == [
        ("conflict_predicted", "alice+carol"),
        ("conflict_predicted", "bob+carol"),
    ]
    assert (watch.snapshots_taken, watch.snapshots_reused) == (4, 5)


def test_a_worktree_written_within_the_racy_margin_is_snapshotted_every_pass(
    tmp_path: Path,
) -> None:
    repo, base, spaces = setup(tmp_path, ["alice", "bob"])
    watch = ConflictWatch(repo, base, 1.0, Recorder())
    watch.racy_margin_ns = LONG_MARGIN_NS  # every file counts as just written
    watch._check(spaces)
    watch._check(spaces)
    assert (watch.snapshots_taken, watch.snapshots_reused) == (4, 0)


class Blocking(ConflictWatch):
    """A watch whose first snapshot waits for the test's word, telling it which thread it is."""

    def __init__(self, repo: Path, base: str, emit: Recorder) -> None:
        super().__init__(repo, base, 0.05, emit)
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
