"""The one bridge from the engine's log to the console: a thread that replays `events.jsonl`,
then follows it incrementally (LogFollower: the file kept open, one fstat per poll when idle), and posts batches of
events as Textual messages. It never touches a widget; the app applies batches on its own loop
and screens redraw at a bounded rate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import KW_ONLY, dataclass

from textual.message import Message

from corral.core.log import LogCorrupted
from corral.core.log import events as ev
from corral.core.operator.identity import Operator
from corral.core.operator.reading import open_run
from corral.core.runs.rundir import RunDir
from corral.core.runtime.procfs import is_same_process
from corral.tui.feed import RunFeed

POLL_SECONDS = 0.025
LIVENESS_SECONDS = 1.0


@dataclass
class RunSession:
    """One attached run: where it lives, what the console knows of it, and what it may do."""

    rundir: RunDir
    _: KW_ONLY
    operator: Operator
    """Who acts from this console and with which roles: recorded with every kill, retry, broken
    lock and decision, and asked (core/operator/identity.py) before a key is offered."""
    clock: Callable[[], float] = time.time
    feed: RunFeed | None = None
    engine_live: bool = False
    error: str = ""
    loaded_at: float | None = None
    on_drawn: Callable[[object, int], None] | None = None
    """Hook for the benchmark: a screen drew the feed up to this version."""
    notice: str = ""
    """The latest notice (core/log/notices.py), shown on every run screen until the next."""
    notice_version: int = 0

    @property
    def run_id(self) -> str:
        return self.rundir.run_id

    @property
    def read_only(self) -> bool:
        """No kill, retry, pause, typing or answer: the person lacks the operator role."""
        return not self.operator.may("operator")

    @property
    def may_review(self) -> bool:
        """Approve, reject, suppress and acknowledge are offered: the reviewer role."""
        return self.operator.may("reviewer")

    @property
    def live(self) -> bool:
        """The run can still change: its engine is alive and it has not finished."""
        feed = self.feed
        return self.engine_live and feed is not None and feed.state.status == "running"


class RunLoaded(Message):
    """The log was replayed; `feed` holds the state up to the end of the file."""

    def __init__(self, session: RunSession, feed: RunFeed, live: bool) -> None:
        super().__init__()
        self.session = session
        self.feed = feed
        self.live = live


class RunEvents(Message):
    """Events appended since the last batch, verified against the hash chain."""

    def __init__(self, session: RunSession, events: list[ev.Event]) -> None:
        super().__init__()
        self.session = session
        self.events = events


class EngineLiveness(Message):
    def __init__(self, session: RunSession, live: bool) -> None:
        super().__init__()
        self.session = session
        self.live = live


class FollowFailed(Message):
    """The log cannot be trusted or read; the message says why."""

    def __init__(self, session: RunSession, error: str) -> None:
        super().__init__()
        self.session = session
        self.error = error


def engine_alive(feed: RunFeed) -> bool:
    """Whether the engine that last wrote the log still runs (pid and start time, no locking:
    a console must never stand in the way of `corral run --resume`)."""
    engine = feed.state.engine
    if engine is None:
        return False
    return is_same_process(engine.pid, engine.start_time)


def follow(
    session: RunSession,
    post: Callable[[Message], object],
    cancelled: Callable[[], bool],
    *,
    poll: float = POLL_SECONDS,
) -> None:
    """Open the run from its checkpoint (verified, core/runs/index.py), then follow its log
    until `cancelled()`; runs in a worker thread."""
    try:
        opened = open_run(session.rundir)
    except (LogCorrupted, OSError) as exc:
        post(FollowFailed(session, str(exc)))
        return
    feed = RunFeed(on_applied=None)
    feed.restore(opened.state, opened.recent, opened.first)
    feed.live_notices = True  # from here on, an agent's end is news (the console's notices)
    live = engine_alive(feed)
    post(RunLoaded(session, feed, live))
    checked = time.monotonic()
    with opened.follower as follower:
        while not cancelled():
            try:
                batch = follower.poll()
            except (LogCorrupted, OSError) as exc:
                post(FollowFailed(session, str(exc)))
                return
            checked, live = _step(session, post, feed, batch, checked, live)
            if follower.caught_up:  # after the post: a batch read never waits out the poll
                time.sleep(poll)


def _step(
    session: RunSession,
    post: Callable[[Message], object],
    feed: RunFeed,
    batch: list[ev.Event],
    checked: float,
    live: bool,
) -> tuple[float, bool]:
    """Post one batch, and the engine's liveness when it changed (checked once a second)."""
    if batch:
        post(RunEvents(session, batch))
        for event in batch:
            if isinstance(event, ev.EngineResumed | ev.RunStarted):
                checked = 0.0
    if time.monotonic() - checked >= LIVENESS_SECONDS:
        checked = time.monotonic()
        engine = feed.state.engine if not batch else _engine_of(batch, feed)
        now_live = engine is not None and is_same_process(engine.pid, engine.start_time)
        if now_live != live:
            live = now_live
            post(EngineLiveness(session, live))
    return checked, live


def _engine_of(batch: list[ev.Event], feed: RunFeed) -> ev.EngineInfo | None:
    for event in reversed(batch):
        if isinstance(event, ev.EngineResumed | ev.RunStarted):
            return event.engine
    engine = feed.state.engine
    return None if engine is None else ev.EngineInfo(**engine.model_dump())
