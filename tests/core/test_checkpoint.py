"""Checkpoints (core/runs/index.py): folding from a checkpoint plus the log's tail gives exactly
the full fold, and a checkpoint that no longer matches its log is never trusted."""

from __future__ import annotations

import asyncio
import hashlib
import os
from pathlib import Path

import pytest

from corral.core.engine.recovery import started_events
from corral.core.log import EventWriter, LogCorrupted, read_log
from corral.core.log import events as ev
from corral.core.log.state import RunState, fold
from corral.core.operator.reading import open_run, status
from corral.core.runs import index
from corral.core.runs.rundir import RunDir, runs_root
from tests.conftest import wait_until
from tests.core.engine_helpers import (
    agent_block,
    corral,
    events_of,
    kill9,
    processes_with_env,
    start_corral,
    state_of,
    wait_for_run,
    write_plan,
)
from tests.tui.synthetic import dead_engine, live_run_events, write_events


def append(rundir: RunDir, events: list[ev.EventBase]) -> None:
    async def write() -> None:
        writer, _ = await EventWriter.open(rundir.events)
        for start in range(0, len(events), 5000):
            await writer.append_many(events[start : start + 5000])
        await writer.close()

    asyncio.run(write())


def traffic(count: int, agents: list[str]) -> list[ev.EventBase]:
    """Heartbeats with a lock taken and released now and then: the bulk of a large run."""
    out: list[ev.EventBase] = []
    for i in range(count):
        agent = agents[i % len(agents)]
        if i % 97 == 0:
            lock = f"src/{i % 13}.py"
            out.append(
                ev.LockAcquired(
                    lock=lock, agent=agent, attempt=1, request_id=f"r{i}", token=i + 1, ttl=30.0
                )
            )
        elif i % 97 == 1:
            lock = f"src/{(i - 1) % 13}.py"
            out.append(ev.LockReleased(lock=lock, token=i, agent=agents[(i - 1) % len(agents)]))
        else:
            out.append(
                ev.AgentHeartbeat(
                    ts=1.7e9 + i, agent=agent, attempt=1, source="beat", progress=(i % 100) / 100
                )
            )
    return out


@pytest.fixture
def rundir(tmp_path: Path) -> RunDir:
    found = RunDir(runs_root(tmp_path / "repo" / ".git") / "20240101-000000-aaaaaa")
    write_events(found, live_run_events(tmp_path, dead_engine()))
    return found


def full(rundir: RunDir) -> RunState:
    return fold(read_log(rundir.events).events)


def same(a: RunState, b: RunState) -> None:
    assert a.model_dump() == b.model_dump()
    assert a.integrity == b.integrity


def fold_from_checkpoint(rundir: RunDir) -> index.Folded:
    fd = os.open(rundir.events, os.O_RDONLY)
    try:
        return index.fold_fd(fd, rundir)
    finally:
        os.close(fd)


@pytest.mark.slow
def test_checkpoint_plus_tail_equals_the_full_fold_on_a_100k_event_log(rundir: RunDir) -> None:
    agents = list(full(rundir).agents)
    append(rundir, traffic(90_000, agents))
    first = fold_from_checkpoint(rundir)  # no checkpoint yet: a full replay, which writes one
    assert first.from_seq == 0
    checkpoint = index.load_checkpoint(rundir)
    assert checkpoint is not None
    assert checkpoint.log.last_seq > 90_000
    append(rundir, traffic(10_000, agents))
    folded = fold_from_checkpoint(rundir)
    assert folded.from_seq == checkpoint.log.last_seq
    assert len(folded.tail) == 10_000
    assert folded.follow.last_seq > 100_000
    same(folded.state, full(rundir))
    assert folded.started == started_events(read_log(rundir.events).events)


def test_fold_from_the_checkpoint_at_every_cut_equals_the_full_fold(
    rundir: RunDir, tmp_path: Path
) -> None:
    count = len(live_run_events(tmp_path, dead_engine()))
    for cut in (1, 5, count // 2, count - 1):
        events = live_run_events(tmp_path, dead_engine())
        other = RunDir(rundir.path.parent / f"20240101-000000-c{cut:05d}")
        write_events(other, events[:cut])
        index.refresh(other)
        append(other, events[cut:])
        folded = fold_from_checkpoint(other)
        assert folded.from_seq == cut
        same(folded.state, full(other))


def checkpointed(rundir: RunDir) -> index.Checkpoint:
    index.refresh(rundir)
    found = index.load_checkpoint(rundir)
    assert found is not None
    return found


def test_a_checkpoint_with_a_wrong_hash_is_ignored_and_rebuilt(rundir: RunDir) -> None:
    good = checkpointed(rundir)
    path = index.checkpoint_path(rundir)
    for bad in (
        good.model_copy(update={"log": good.log.model_copy(update={"head": "0" * 64})}),
        good.model_copy(update={"log": good.log.model_copy(update={"prefix": "0" * 64})}),
        good.model_copy(update={"log": good.log.model_copy(update={"last_seq": 3})}),
        good.model_copy(update={"state": RunState(run_id="forged")}),
    ):
        path.write_text(bad.model_dump_json())
        folded = fold_from_checkpoint(rundir)
        if bad.state.run_id == "forged":
            continue  # the bytes still match: only a fold of the log could tell (see below)
        assert folded.from_seq == 0, "replayed in full"
        same(folded.state, full(rundir))
        rebuilt = index.load_checkpoint(rundir)
        assert rebuilt is not None
        assert rebuilt.log == good.log
    path.write_bytes(b'{"format": "corral-checkpoint", "version": 1, "fo')  # cut short
    assert fold_from_checkpoint(rundir).from_seq == 0
    same(status(rundir), full(rundir))


def test_a_log_truncated_before_the_checkpoint_is_folded_from_what_is_left(
    rundir: RunDir,
) -> None:
    checkpointed(rundir)
    lines = rundir.events.read_bytes().splitlines(keepends=True)
    with rundir.events.open("r+b") as f:
        f.truncate(len(b"".join(lines[:-4])) + 10)  # four lines gone, the next one torn
    folded = fold_from_checkpoint(rundir)
    assert folded.from_seq == 0
    assert folded.follow.last_seq == len(lines) - 4
    assert folded.torn_tail is not None
    same(folded.state, full(rundir))
    same(status(rundir), full(rundir))


def test_an_edited_line_before_the_checkpoint_is_found(rundir: RunDir) -> None:
    checkpointed(rundir)
    full_before = full(rundir)
    data = bytearray(rundir.events.read_bytes())
    lines = bytes(data).splitlines(keepends=True)
    at = len(b"".join(lines[:3])) + lines[3].index(b'"ts":') + 6
    data[at] = ord("9") if data[at] != ord("9") else ord("8")  # same length, one digit changed
    rundir.events.write_bytes(bytes(data))
    with pytest.raises(LogCorrupted) as caught:
        fold_from_checkpoint(rundir)
    assert caught.value.seq == 4
    with pytest.raises(LogCorrupted):
        status(rundir)
    # a listing checks the anchor and the tail only (docs/reliability.md E8): the state it shows
    # is the checkpoint's, and the next reader that hashes the prefix reports the edit
    assert index.run_state(rundir).run_id == full_before.run_id


def test_a_checkpoint_of_another_fold_code_is_ignored(rundir: RunDir) -> None:
    good = checkpointed(rundir)
    index.checkpoint_path(rundir).write_text(
        good.model_copy(update={"fold": "0" * 64}).model_dump_json()
    )
    assert fold_from_checkpoint(rundir).from_seq == 0


def test_resume_reads_through_the_checkpoint(rundir: RunDir, tmp_path: Path) -> None:
    """What `corral run --resume` folds: the checkpoint and the tail, with the writer going on
    after the last line (its seq and head as a full read gives them)."""
    checkpointed(rundir)
    append(rundir, traffic(50, list(full(rundir).agents)))
    contents = read_log(rundir.events)

    async def open_both() -> tuple[int, str, int, str, index.Folded]:
        plain, _ = await EventWriter.open(rundir.events)
        seq, head = plain.last_seq, plain.head
        await plain.close()
        folds: list[index.Folded] = []
        through, tail = await EventWriter.open(rundir.events, index.log_reader(rundir, folds))
        assert len(tail.events) == 50
        result = (seq, head, through.last_seq, through.head, folds[0])
        await through.close()
        return result

    seq, head, seq2, head2, folded = asyncio.run(open_both())
    assert (seq2, head2) == (seq, head) == (contents.last_seq, contents.head)
    assert folded.from_seq > 0
    same(folded.state, fold(contents.events))
    assert folded.started == started_events(contents.events)


def test_the_console_opens_from_the_checkpoint_with_the_latest_events(rundir: RunDir) -> None:
    checkpointed(rundir)
    append(rundir, traffic(30, list(full(rundir).agents)))
    events = read_log(rundir.events).events
    opened = open_run(rundir)
    with opened.follower:
        same(opened.state, fold(events))
        assert [e.seq for e in opened.recent] == [e.seq for e in events]
        assert isinstance(opened.first, ev.RunStarted)
        assert opened.follower.poll() == []
        append(rundir, traffic(2, list(opened.state.agents)))
        assert [e.seq for e in opened.follower.poll()] == [len(events) + 1, len(events) + 2]


def test_the_engine_resumes_from_a_checkpoint_and_leaves_one_at_its_end(
    repo: Path, tmp_path: Path
) -> None:
    """A run killed with SIGKILL, checkpointed by a reader (`corral status`), resumed: the
    resumed engine finds its lost attempt through the checkpoint's `agent_started` events and
    stops its process, its state is the full fold's, and it leaves a checkpoint of the end."""
    plan = write_plan(tmp_path, agent_block("long", ["sh", "-c", "sleep 600"]))
    engine = start_corral(repo, "run", str(plan), "--quiet")
    rundir = wait_for_run(repo)
    wait_until(
        lambda: [e for e in events_of(rundir) if isinstance(e, ev.AgentStarted)],
        what="the agent to start",
    )
    run_id = state_of(rundir).run_id
    kill9(engine)
    assert corral(repo, "status", run_id).returncode in (0, 1)
    before = index.load_checkpoint(rundir)
    assert before is not None
    assert before.log.last_seq == read_log(rundir.events).last_seq
    assert before.started, "the attempt's identity is in the checkpoint"
    rundir.plan.write_text(rundir.plan.read_text().replace("sleep 600", "sleep 0"))
    result = corral(repo, "run", "--resume", run_id, "--quiet")
    assert result.returncode == 0, result.stdout + result.stderr
    contents = read_log(rundir.events)
    state = fold(contents.events)
    first, second = state.agents["long"].attempts
    assert first.state == "lost"
    assert "still alive and were stopped" in first.reason
    assert second.state == "succeeded"
    after = index.load_checkpoint(rundir)
    assert after is not None
    assert after.log.last_seq == contents.last_seq
    same(status(rundir), state)
    assert not processes_with_env("CORRAL_RUN_ID", run_id)


@pytest.mark.parametrize("slice_bytes", [64, 700, 5000])
def test_a_full_replay_in_slices_shorter_than_a_line_equals_the_full_fold(
    rundir: RunDir, monkeypatch: pytest.MonkeyPatch, slice_bytes: int
) -> None:
    monkeypatch.setattr(index, "_REPLAY_SLICE", slice_bytes)
    with rundir.events.open("ab") as f:
        f.write(b'{"seq":')  # a torn tail
    folded = fold_from_checkpoint(rundir)
    assert folded.from_seq == 0
    assert folded.torn_tail == b'{"seq":'
    same(folded.state, full(rundir))
    checkpoint = index.load_checkpoint(rundir)
    assert checkpoint is not None
    data = rundir.events.read_bytes()[: checkpoint.log.offset]
    assert checkpoint.log.prefix == hashlib.sha256(data).hexdigest()


def test_a_listing_folds_a_long_tail_into_a_new_checkpoint(
    rundir: RunDir, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(index, "CHECKPOINT_EVERY", 20)
    first = checkpointed(rundir)
    append(rundir, traffic(5, list(full(rundir).agents)))
    same(index.run_state(rundir), full(rundir))
    assert index.load_checkpoint(rundir) == first, "a short tail: not written"
    append(rundir, traffic(30, list(full(rundir).agents)))
    same(index.run_state(rundir), full(rundir))
    later = index.load_checkpoint(rundir)
    assert later is not None
    assert later.log.last_seq == read_log(rundir.events).last_seq
    same(fold_from_checkpoint(rundir).state, full(rundir))


def test_resuming_a_run_without_a_log_says_so(tmp_path: Path) -> None:
    from corral.core.engine.runner import EXIT_ENGINE_ERROR, resume_run

    empty = RunDir(runs_root(tmp_path / "repo" / ".git") / "20240101-000000-eeeeee")
    empty.create()
    outcome = asyncio.run(resume_run(empty, None))
    assert outcome.exit_code == EXIT_ENGINE_ERROR
    assert "no run_started event" in outcome.message
