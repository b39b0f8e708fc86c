"""An attempt's output.log read as it grows, through its CLI's stream adapter (core/streams/).

Liveness (core/engine/liveness.py) asks the execution for its output size on every tick; when
it grew, this reads the new bytes from where the last read stopped (at most READ_CHUNK a tick,
so a flood never stalls the engine's loop), feeds the adapter and adds up what it says. What
happened is recorded as one `agent_activity` event at most every ACTIVITY_INTERVAL (sooner for
a result, an error or a wait for input), each a sign of life with its source `stream`. Every
text is redacted of the attempt's secrets before it is recorded. Reading never raises: a log
that cannot be read is as silent as one that does not grow.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from corral.core.engine.budget import crossed
from corral.core.log import events as ev
from corral.core.log.state import Usage
from corral.core.plan.model import AgentSpec, RunSettings
from corral.core.streams import PriceTable, StreamTally, adapter_for
from corral.core.streams.activity import Activity
from corral.core.trust.redact import Redactor

READ_CHUNK = 1 << 20
"""Bytes read per tick at most; the rest is read on the next ticks."""
ACTIVITY_INTERVAL = 1.0
"""Seconds between two `agent_activity` events of an attempt, unless news is urgent."""


class StreamWatch:
    def __init__(
        self,
        spec: AgentSpec,
        attempt: int,
        log_path: Path,
        *,
        offset: int = 0,
        prices: PriceTable,
        redactor: Redactor,
        run: RunSettings,
        run_usage: Callable[[], Usage],
        model: str | None = None,
    ) -> None:
        assert spec.stream is not None
        self.spec = spec
        self.attempt = attempt
        self.path = log_path
        self.adapter = adapter_for(spec.stream)
        self.tally = StreamTally(prices=prices, model=model)
        """`model`: the plan's, until the stream names its own."""
        self.redactor = redactor
        self.run = run
        self.run_usage = run_usage
        self.offset = offset
        """Where the next read starts: the agent's output begins after its setup commands'."""
        self.behind = False
        """The last read stopped at READ_CHUNK: read again even if the size did not change."""
        self.recorded = Usage()
        """The totals the last event recorded (the run's usage counts them already)."""
        self.last_event = float("-inf")
        self._file: BinaryIO | None = None

    def read(self) -> None:
        """Read what was appended since the last read (at most READ_CHUNK) and tally it."""
        try:
            if self._file is None:
                self._file = self.path.open("rb")
            self._file.seek(self.offset)
            data = self._file.read(READ_CHUNK)
        except OSError:
            return
        self.offset += len(data)
        self.behind = len(data) == READ_CHUNK
        self._tally(self.adapter.feed(data))

    def finish(self) -> None:
        """The agent ended: read the rest (bounded, as a hostile agent may write without end)."""
        for _ in range(64):
            self.read()
            if not self.behind:
                break
        self._tally(self.adapter.finish())
        self.close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _tally(self, activities: list[Activity]) -> None:
        self.tally.add(activities)
        if self.adapter.malformed != self.tally.malformed:
            self.tally.malformed = self.adapter.malformed
            self.tally.changed = True

    def totals(self) -> Usage:
        cost, _ = self.tally.cost()
        return Usage(
            tokens_in=self.tally.tokens_in,
            tokens_out=self.tally.tokens_out,
            tokens_cached=self.tally.tokens_cached,
            cost_usd=cost,
            turns=self.tally.turns,
            tool_calls=self.tally.tool_calls,
        )

    def due(self, now: float, *, force: bool = False) -> ev.AgentActivity | None:
        """The event to record now, if any: news, and the interval passed (or it is urgent)."""
        tally = self.tally
        if not tally.changed:
            return None
        if not (force or tally.urgent or now - self.last_event >= ACTIVITY_INTERVAL):
            return None
        self.last_event = now
        self.recorded = self.totals()
        cost, source = tally.cost()
        news = tally.take()
        text = self._text
        return ev.AgentActivity(
            agent=self.spec.id,
            attempt=self.attempt,
            model=text(tally.model),
            tokens_in=tally.tokens_in,
            tokens_out=tally.tokens_out,
            tokens_cached=tally.tokens_cached,
            cost_usd=cost,
            cost_source=source,
            turns=tally.turns,
            tool_calls=tally.tool_calls,
            tools=[
                ev.ToolUse(
                    name=self.redactor.redact(t.name), summary=self.redactor.redact(t.summary)
                )
                for t in news.tools
            ],
            message=text(news.message),
            result=text(news.result.text) if news.result else None,
            is_error=bool(news.result and news.result.is_error),
            error=text(news.error),
            retry=text(news.retry),
            waiting=text(news.waiting),
            malformed=tally.malformed,
        )

    def _text(self, value: str | None) -> str | None:
        return None if value is None else self.redactor.redact(value)

    def over_budget(self) -> str | None:
        """Why the attempt must stop for a budget (its own, or the run's), or None."""
        mine = self.totals()
        reason = crossed(self.spec, mine, f"attempt {self.attempt}")
        if reason is not None:
            return reason
        if (
            self.run.max_tokens is None
            and self.run.max_turns is None
            and self.run.max_cost_usd is None
        ):
            return None
        run = self.run_usage().model_copy(deep=True)
        run.add(mine, self.recorded)
        return crossed(self.run, run, "the run")
