"""The runs index (core/runs/index.py): an unchanged run is not replayed, a grown one is folded
on from the cache, and a cache in any doubt is ignored and rebuilt."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from corral.core.log import EventWriter, read_log
from corral.core.log import events as ev
from corral.core.log.state import fold
from corral.core.runs import index
from corral.core.runs.listing import summarize_runs
from corral.core.runs.rundir import RunDir, runs_root
from tests.tui.synthetic import (
    dead_engine,
    live_run_events,
    review_run_events,
    write_events,
    write_report,
)


def append_events(rundir: RunDir, events: list[ev.EventBase]) -> None:
    async def write() -> None:
        writer, _ = await EventWriter.open(rundir.events)
        await writer.append_many(events)
        await writer.close()

    asyncio.run(write())


class Counted:
    """Counts the full replays (`read_fd`), folds and single-event applies the index makes."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = {"replay_fd": 0, "apply": 0}
        for name in self.calls:
            monkeypatch.setattr(index, name, self._counting(name, getattr(index, name)))

    def _counting(self, name: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return real(*args, **kwargs)

        return call

    def take(self) -> dict[str, int]:
        calls, self.calls = self.calls, dict.fromkeys(self.calls, 0)
        return calls


@pytest.fixture
def common(tmp_path: Path) -> Path:
    return tmp_path / "repo" / ".git"


def make_run(common: Path, run_id: str, events: list[ev.EventBase]) -> RunDir:
    rundir = RunDir(runs_root(common) / run_id)
    write_events(rundir, events)
    return rundir


def finished_run_events(tmp_path: Path) -> list[ev.EventBase]:
    report = write_report(tmp_path / "report.json")
    events = review_run_events(tmp_path, report, dead_engine(), "a" * 40, "b" * 40)
    events.insert(
        1, ev.IntegrityRecorded(refs={"refs/heads/main": "c" * 40}, files={"config": "d" * 64})
    )
    return events


def test_an_unchanged_run_is_not_replayed_again(
    common: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_run(common, "20240101-000000-aaaaaa", live_run_events(tmp_path, dead_engine()))
    make_run(common, "20240102-000000-bbbbbb", finished_run_events(tmp_path))
    counted = Counted(monkeypatch)
    first = summarize_runs(common)
    assert counted.take()["replay_fd"] == 2
    second = summarize_runs(common)
    assert counted.take() == {"replay_fd": 0, "apply": 0}
    assert second == first
    assert [run.status for run in second] == ["interrupted", "finished"]


def test_an_appended_event_is_seen_and_only_it_is_folded(
    common: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rundir = make_run(common, "20240101-000000-aaaaaa", live_run_events(tmp_path, dead_engine()))
    counted = Counted(monkeypatch)
    assert [run.status for run in summarize_runs(common)] == ["interrupted"]
    counted.take()
    append_events(
        rundir, [ev.RunFinished(verdict="failed", succeeded=1, required=4, reason="too few")]
    )
    (run,) = summarize_runs(common)
    assert counted.take() == {"replay_fd": 0, "apply": 1}
    assert (run.status, run.verdict) == ("finished", "failed")


@pytest.mark.parametrize("cut", [1, 2, 7, 15, -3, -1])
def test_folding_on_from_the_cache_gives_the_state_of_a_full_fold(
    common: Path, tmp_path: Path, cut: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = finished_run_events(tmp_path)
    rundir = make_run(common, "20240102-000000-bbbbbb", events[:cut])
    index.run_state(rundir)
    assert index.load_checkpoint(rundir) is not None
    append_events(rundir, events[cut:])
    counted = Counted(monkeypatch)
    folded_on = index.run_state(rundir)
    assert counted.take() == {"replay_fd": 0, "apply": len(events[cut:])}
    full = fold(read_log(rundir.events).events)
    assert folded_on == full
    assert folded_on.integrity == full.integrity
    assert folded_on.integrity is not None


def test_a_cache_in_doubt_is_ignored_and_rebuilt(
    common: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rundir = make_run(common, "20240102-000000-bbbbbb", finished_run_events(tmp_path))
    truth = summarize_runs(common)
    counted = Counted(monkeypatch)
    cache = index.checkpoint_path(rundir)
    good = cache.read_bytes()

    cache.write_bytes(b"{not json")
    assert summarize_runs(common) == truth
    assert counted.take()["replay_fd"] == 1
    assert index.load_checkpoint(rundir) is not None, "rebuilt"

    cache.write_bytes(good.replace(index.fold_digest().encode(), b"0" * 64))  # another fold
    assert summarize_runs(common) == truth
    assert counted.take()["replay_fd"] == 1

    cache.unlink()
    cache.symlink_to(tmp_path / "elsewhere.json")  # never followed
    (tmp_path / "elsewhere.json").write_bytes(good)
    assert summarize_runs(common) == truth
    assert counted.take()["replay_fd"] == 1


def test_a_replaced_or_shrunk_log_is_replayed_in_full(
    common: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = finished_run_events(tmp_path)
    rundir = make_run(common, "20240102-000000-bbbbbb", events)
    summarize_runs(common)
    counted = Counted(monkeypatch)

    lines = rundir.events.read_bytes().splitlines(keepends=True)
    other = rundir.path / "other.jsonl"
    other.write_bytes(b"".join(lines[:5]))
    os.replace(other, rundir.events)
    (run,) = summarize_runs(common)
    assert counted.take()["replay_fd"] == 1
    assert run.status == "interrupted"

    with rundir.events.open("r+b") as f:
        f.truncate(len(b"".join(lines[:3])))
    summarize_runs(common)
    assert counted.take()["replay_fd"] == 1


def test_corruption_appended_after_the_cached_point_is_reported(
    common: Path, tmp_path: Path
) -> None:
    rundir = make_run(common, "20240102-000000-bbbbbb", finished_run_events(tmp_path))
    summarize_runs(common)
    with rundir.events.open("ab") as f:
        f.write(b'{"seq":999,"prev":"' + b"0" * 64 + b'"}\n')
    (run,) = summarize_runs(common)
    assert run.status == "corrupted"


def test_the_cache_key_covers_every_module_that_defines_an_event() -> None:
    """An edited event model must invalidate old caches, wherever the model lives."""
    import sys
    import typing

    union = typing.get_args(typing.get_args(ev.Event)[0])
    defining = {sys.modules[kind.__module__] for kind in union}
    defining |= {sys.modules[base.__module__] for kind in union for base in kind.__mro__[1:-1]}
    defining = {module for module in defining if module.__name__.startswith("corral.")}
    assert len(union) > 30
    assert defining <= set(index._FOLD_MODULES)
