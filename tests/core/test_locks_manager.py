"""The lock manager in one process, against a real event log (docs/reliability.md L2-L7).

The end-to-end tests (real agents, a real engine) are in test_locks_agents.py; these pin the
rules one at a time, fast: FIFO hand-off, one token counter, idempotent acquire, stale release,
wait timeouts, expiry only after TTL + grace, breaks, attempts ending, and the restart rules.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from corral.core.locks.manager import LockError, LockManager
from corral.core.locks.shared_files import make_shared_dir, shared_dir
from corral.core.log import EventWriter, read_log
from corral.core.log import events as ev
from corral.core.log.state import RunState, apply, fold

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


@dataclass
class Bench:
    locks: LockManager
    writer: EventWriter
    state: RunState
    path: Path

    def events(self, kind: type[ev.EventBase] = ev.EventBase) -> list[Any]:
        return [e for e in read_log(self.path).events if isinstance(e, kind)]


@asynccontextmanager
async def manager(
    tmp_path: Path, grace: float = 0.2, state: RunState | None = None
) -> AsyncIterator[Bench]:
    path = tmp_path / "events.jsonl"
    writer, contents = await EventWriter.open(path)
    state = state if state is not None else fold(contents.events)
    writer.add_listener(lambda event: apply(state, event))
    make_shared_dir(tmp_path)
    locks = LockManager(writer.append_many, state, grace=grace, shared_root=shared_dir(tmp_path))
    locks.start()
    try:
        yield Bench(locks, writer, state, path)
    finally:
        await locks.close()
        await writer.close()


async def until(condition: Callable[[], object], within: float = 5.0) -> None:
    deadline = time.monotonic() + within
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def test_tokens_come_from_one_counter_and_grants_are_durable_first(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with manager(tmp_path) as b:
            first = await b.locks.acquire("a", 1, "db", "r1", ttl=5, wait=0)
            # durable before returned: the grant is already in the file
            logged = b.events(ev.LockAcquired)
            assert [(e.lock, e.token) for e in logged] == [("db", first.token)]
            second = await b.locks.acquire("b", 1, "port", "r1", ttl=5, wait=0)
            assert await b.locks.release("a", 1, "db", first.token) is None
            third = await b.locks.acquire("b", 1, "db", "r2", ttl=5, wait=0)
            assert [first.token, second.token, third.token] == [1, 2, 3]
            assert b.state.max_token == 3
            assert b.state.locks["db"].newest_token == 3
            assert b.state.locks["db"].holder == "b"

    run(scenario())


def test_waiters_are_served_first_in_first_out(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with manager(tmp_path) as b:
            lease = await b.locks.acquire("a", 1, "db", "r", ttl=5, wait=0)
            order: list[str] = []

            async def wait_then_release(agent: str) -> None:
                got = await b.locks.acquire(agent, 1, "db", "r", ttl=5, wait=10)
                order.append(agent)
                await asyncio.sleep(0.01)
                await b.locks.release(agent, 1, "db", got.token)

            tasks = []
            for agent in ("w1", "w2", "w3", "w4"):
                tasks.append(asyncio.create_task(wait_then_release(agent)))
                queued = len(tasks)
                await until(lambda: len(_waiters(b, "db")) == queued)  # noqa: B023 - awaited here
            assert [w.agent for w in b.state.locks["db"].waiters] == ["w1", "w2", "w3", "w4"]
            await b.locks.release("a", 1, "db", lease.token)
            await asyncio.gather(*tasks)
            assert order == ["w1", "w2", "w3", "w4"]
            grants = [e.agent for e in b.events(ev.LockAcquired)]
            assert grants == ["a", "w1", "w2", "w3", "w4"]
            assert not b.state.locks["db"].waiters
            _assert_no_overlap(b.events())

    run(scenario())


def _waiters(b: Bench, name: str) -> list[Any]:
    lock = b.state.locks.get(name)
    return lock.waiters if lock else []


def _assert_no_overlap(events: list[ev.Event]) -> None:
    """Hold intervals (grant seq to end seq) of each lock never overlap."""
    held: dict[str, int] = {}
    for event in events:
        if isinstance(event, ev.LockAcquired):
            assert event.lock not in held, f"{event.lock} granted while token {held} held"
            held[event.lock] = event.token
        elif (
            isinstance(event, ev.LockReleased | ev.LockExpired | ev.LockBroken)
            and held.get(event.lock) == event.token
        ):
            del held[event.lock]


def test_acquire_is_idempotent_per_request_id(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with manager(tmp_path) as b:
            one = await b.locks.acquire("a", 1, "db", "same", ttl=5, wait=0)
            again = await b.locks.acquire("a", 1, "db", "same", ttl=5, wait=0)
            assert again is one
            # another agent's identical request id is another request
            waiting = asyncio.create_task(b.locks.acquire("b", 1, "db", "same", ttl=5, wait=5))
            await until(lambda: _waiters(b, "db"))
            retry = asyncio.create_task(b.locks.acquire("b", 1, "db", "same", ttl=5, wait=5))
            await asyncio.sleep(0.05)
            await b.locks.release("a", 1, "db", one.token)
            first, second = await asyncio.gather(waiting, retry)
            assert first is second
            assert len(b.events(ev.LockAcquired)) == 2
            assert len(b.events(ev.LockWaiting)) == 1
            # once the lease ended, a late retry hears so rather than getting a second grant
            await b.locks.release("b", 1, "db", first.token)
            with pytest.raises(LockError, match="has ended") as caught:
                await b.locks.acquire("b", 1, "db", "same", ttl=5, wait=0)
            assert caught.value.code == "lost"

    run(scenario())


def test_release_needs_the_token_and_a_stale_release_is_ignored(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with manager(tmp_path) as b:
            lease = await b.locks.acquire("a", 1, "db", "r", ttl=5, wait=0)
            stale = await b.locks.release("a", 1, "db", lease.token + 7)
            assert stale is not None
            assert "not yours" in stale
            assert await b.locks.release("b", 1, "db", lease.token) is not None  # not b's
            assert b.state.locks["db"].holder == "a"
            assert await b.locks.release("a", 1, "db", lease.token) is None
            again = await b.locks.release("a", 1, "db", lease.token)
            assert again is not None
            assert "released by a#1" in again
            assert len(b.events(ev.LockReleased)) == 1

    run(scenario())


def test_a_wait_times_out_is_logged_and_leaves_the_queue(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with manager(tmp_path) as b:
            lease = await b.locks.acquire("a", 1, "db", "r", ttl=5, wait=0)
            with pytest.raises(LockError, match="held by a#1") as busy:
                await b.locks.acquire("b", 1, "db", "now", ttl=5, wait=0)
            assert busy.value.code == "busy"
            assert not b.events(ev.LockWaiting)  # a try-lock is not a wait
            started = time.monotonic()
            with pytest.raises(LockError, match=r"after waiting 0\.2s"):
                await b.locks.acquire("b", 1, "db", "later", ttl=5, wait=0.2)
            assert time.monotonic() - started >= 0.2
            (abandoned,) = b.events(ev.LockWaitAbandoned)
            assert abandoned.request_id == "later"
            assert not b.state.locks["db"].waiters
            await b.locks.release("a", 1, "db", lease.token)
            assert b.state.locks["db"].holder is None  # nobody left in line to hand it to

    run(scenario())


def test_expired_lease_is_reclaimed_only_after_ttl_plus_grace(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with manager(tmp_path, grace=0.3) as b:
            first = await b.locks.acquire("a", 1, "db", "r", ttl=0.3, wait=0)
            # renewed, it outlives its TTL many times over
            for _ in range(6):
                await asyncio.sleep(0.1)
                await b.locks.renew("a", 1, "db", first.token, None)
            assert b.state.locks["db"].holder == "a"
            second = await b.locks.acquire("b", 1, "db", "r", ttl=5, wait=5)
            assert second.token > first.token
            (_granted_a, granted_b) = b.events(ev.LockAcquired)
            renewed = b.events(ev.LockRenewed)
            last_end = renewed[-1].expires_at
            assert granted_b.ts >= last_end + 0.3 - 0.005
            (expired,) = b.events(ev.LockExpired)
            assert expired.token == first.token
            assert expired.overdue >= 0.3
            with pytest.raises(LockError, match="expired") as lost:
                await b.locks.renew("a", 1, "db", first.token, None)
            assert lost.value.code == "lost"
            assert "expired" in b.state.locks["db"].last_event or b.state.locks["db"].holder == "b"
            _assert_no_overlap(b.events())

    run(scenario())


def test_operator_break_is_recorded_and_hands_the_lock_on(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with manager(tmp_path) as b:
            held = await b.locks.acquire("a", 1, "db", "r", ttl=60, wait=0)
            waiting = asyncio.create_task(b.locks.acquire("b", 1, "db", "r", ttl=60, wait=5))
            await until(lambda: _waiters(b, "db"))
            with pytest.raises(LockError, match="look again"):
                await b.locks.break_lock("db", "alice", "stuck", expect_token=held.token + 1)
            await b.locks.break_lock("db", "alice", "stuck", expect_token=held.token)
            granted = await waiting
            (broken,) = b.events(ev.LockBroken)
            assert (broken.by, broken.reason, broken.agent) == ("alice", "stuck", "a")
            assert granted.token == held.token + 1
            with pytest.raises(LockError, match="broken by alice: stuck"):
                await b.locks.renew("a", 1, "db", held.token, None)
            with pytest.raises(LockError, match="not held"):
                await b.locks.break_lock("free", "alice", "x")

    run(scenario())


def test_an_ended_attempt_releases_its_leases_and_abandons_its_waits(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with manager(tmp_path) as b:
            await b.locks.acquire("a", 1, "db", "r", ttl=60, wait=0)
            await b.locks.acquire("b", 1, "port", "r", ttl=60, wait=0)
            a_waits = asyncio.create_task(b.locks.acquire("a", 1, "port", "r2", ttl=60, wait=30))
            b_waits = asyncio.create_task(b.locks.acquire("b", 1, "db", "r2", ttl=60, wait=30))
            await until(lambda: _waiters(b, "db") and _waiters(b, "port"))
            await b.locks.end_attempt("a", 1)
            with pytest.raises(LockError, match="the attempt ended"):
                await a_waits
            got = await b_waits
            assert got.lock == "db"
            released = b.events(ev.LockReleased)
            assert [(e.lock, e.reason) for e in released] == [("db", "holder ended")]
            assert b.state.locks["db"].holder == "b"
            assert not b.state.locks["port"].waiters

    run(scenario())


def test_fenced_write_needs_the_newest_token(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with manager(tmp_path, grace=0.1) as b:
            old = await b.locks.acquire("a", 1, "out", "r", ttl=0.2, wait=0)
            await b.locks.put("a", 1, "out", old.token, "dir/result.txt", b"from a")
            new = await b.locks.acquire("b", 1, "out", "r", ttl=60, wait=5)  # after a expired
            await b.locks.put("b", 1, "out", new.token, "dir/result.txt", b"from b")
            with pytest.raises(LockError, match="refused") as refused:
                await b.locks.put("a", 1, "out", old.token, "dir/result.txt", b"stale")
            assert refused.value.code == "refused"
            # the token is the capability of its holder only
            with pytest.raises(LockError, match="refused"):
                await b.locks.put("a", 1, "out", new.token, "dir/result.txt", b"stolen")
            with pytest.raises(LockError, match=r"'\.\.'"):
                await b.locks.put("b", 1, "out", new.token, "../escape", b"x")
            assert (shared_dir(tmp_path) / "dir" / "result.txt").read_bytes() == b"from b"
            accepted = b.events(ev.FencedWriteAccepted)
            assert [(e.agent, e.token, e.size) for e in accepted] == [
                ("a", old.token, 6),
                ("b", new.token, 6),
            ]
            refusals = b.events(ev.FencedWriteRefused)
            assert [(e.agent, e.token, e.newest_token) for e in refusals] == [
                ("a", old.token, new.token),
                ("a", new.token, new.token),
            ]

    run(scenario())


def test_declared_locks_wait_without_limit_and_can_be_interrupted(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with manager(tmp_path) as b:
            changed = asyncio.Event()
            stop = False
            assert await b.locks.acquire_declared("x", 1, ["b", "a"], changed, lambda: stop)
            granted = b.events(ev.LockAcquired)
            assert [(e.lock, e.declared, e.ttl) for e in granted] == [
                ("a", True, None),
                ("b", True, None),
            ]
            waiting = asyncio.create_task(
                b.locks.acquire_declared("y", 1, ["a"], changed, lambda: stop)
            )
            await until(lambda: _waiters(b, "a"))
            (logged,) = b.events(ev.LockWaiting)
            assert (logged.declared, logged.holder) == (True, "x")
            stop = True
            changed.set()
            assert await waiting is False
            assert not b.state.locks["a"].waiters
            with pytest.raises(LockError, match="declared"):
                await b.locks.renew("x", 1, "a", granted[0].token, None)
            await b.locks.end_attempt("x", 1)
            assert all(lock.holder is None for lock in b.state.locks.values())

    run(scenario())


def _held_log(tmp_path: Path) -> RunState:
    """A log a dead engine left: three leases and a waiter (agents a, b, c in various states)."""

    async def write() -> RunState:
        summary = [ev.AgentSummary(id=agent, kind="coding", command=["true"]) for agent in "abcd"]
        info = ev.EngineInfo(pid=1, start_time=0.0, host="h", user="u")
        now = time.time()
        events: list[ev.EventBase] = [
            ev.RunStarted(
                run_id="r", name="r", repo="/r", base_ref="main", snapshot="0" * 40,
                plan_sha256="0" * 64, agents=summary, max_parallel=4, required_successes=4,
                worktree_root="/w", engine=info,
            ),
            ev.AgentStarting(agent="a", attempt=1, workspace="", branch="", output_dir="",
                             log_path=""),
            ev.AgentStarted(agent="a", attempt=1, pid=10, proc_start_time=1.0),
            ev.LockAcquired(lock="live", agent="a", attempt=1, request_id="q", token=4, ttl=1.0,
                            expires_at=now + 0.4),
            ev.AgentStarting(agent="b", attempt=1, workspace="", branch="", output_dir="",
                             log_path=""),
            ev.LockAcquired(lock="dead", agent="b", attempt=1, request_id="q", token=5, ttl=60.0,
                            expires_at=now + 60),
            ev.AgentFinished(agent="b", attempt=1, outcome="failed"),
            ev.LockAcquired(lock="declared", agent="c", attempt=1, request_id="q", token=6,
                            declared=True),
            ev.LockWaiting(lock="live", agent="d", attempt=1, request_id="w", holder="a",
                           holder_token=4),
        ]  # fmt: skip
        writer, _ = await EventWriter.open(tmp_path / "events.jsonl")
        async with writer:
            await writer.append_many(events)
        return fold(read_log(tmp_path / "events.jsonl").events)

    return run(write())


def test_restart_honours_live_leases_and_releases_what_is_known_dead(tmp_path: Path) -> None:
    state = _held_log(tmp_path)
    dead = LockManager.holders_known_dead(state)
    assert dead == {("b", 1)}  # a was running when the engine died: not known dead

    async def scenario() -> None:
        async with manager(tmp_path, grace=0.3, state=state) as b:
            await b.locks.restore(b.state, dead)
            released = {e.lock: e.reason for e in b.events(ev.LockReleased)}
            assert set(released) == {"dead", "declared"}
            assert [e.request_id for e in b.events(ev.LockWaitAbandoned)] == ["w"]
            assert b.state.locks["live"].holder == "a"
            # nobody gets `live` before its logged end + grace; then with a larger token
            got = await b.locks.acquire("d", 2, "live", "n", ttl=5, wait=5)
            logged_end = next(e for e in b.events(ev.LockAcquired) if e.token == 4).expires_at
            assert logged_end is not None
            grant = b.events(ev.LockAcquired)[-1]
            assert grant.ts >= logged_end + 0.3 - 0.005
            assert got.token == 7
            # the old holder cannot renew what the dead engine granted it... it is gone anyway
            with pytest.raises(LockError):
                await b.locks.renew("a", 1, "live", 4, None)
            # replaying the whole log gives the state the manager worked from (E6)
            assert fold(b.events()).locks == b.state.locks

    run(scenario())
