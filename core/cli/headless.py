"""What `corral run` shows without the console: a live table on a terminal, plain lines elsewhere.

Every string an agent or a plan wrote (messages, reasons, names, commands) is printed through
`core.inert` (T5), so the table, the event lines and the summary cannot drive the terminal.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from corral.core.log import events as ev
from corral.core.log.state import AgentState, RunState
from corral.core.operator.describe import (
    SOURCE_GLYPH,
    STATE_STYLE,
    node_line,
    progress_line,
    runtime_line,
    shown_state,
    stream_detail,
    usage_cell,
    usage_line,
)
from corral.core.plan.durations import format_duration
from corral.core.trust.inert import inert

if TYPE_CHECKING:
    from collections.abc import Mapping

    from corral.core.engine.scheduler import Engine
    from corral.core.operator.results import AgentRuntime


def heartbeat_cell(agent: AgentState, now: float) -> Text:
    """Age of the last sign of life, with the signal it came from, as glyph and colour."""
    beat = agent.last_heartbeat
    if beat is None or agent.state not in ("running", "stalled"):
        return Text("-", style="dim")
    age = max(0.0, now - beat.ts)
    style = (
        "green"
        if agent.state == "running" and age < 10
        else "yellow"
        if agent.state == "running"
        else "red"
    )
    return Text(
        f"{SOURCE_GLYPH[beat.source]} {format_duration(age)} ago ({beat.source})", style=style
    )


BASE_COLUMNS = ("agent", "kind", "state", "try", "alive", "progress / message", "elapsed")
STREAM_COLUMNS = (
    "agent",
    "kind",
    "state",
    "try",
    "alive",
    "usage",
    "progress / message",
    "elapsed",
)
"""With an agent that reports a stream: its tokens, cost and turns; its last tool in the message."""


def columns(state: RunState) -> tuple[str, ...]:
    streams = any(agent.usage.tokens or agent.stream for agent in state.agents.values())
    return STREAM_COLUMNS if streams else BASE_COLUMNS


def agent_rows(state: RunState, now: float) -> list[list[Text]]:
    """One row per agent, cells styled; the same cells make the live table and the summary."""
    with_usage = columns(state) is STREAM_COLUMNS
    rows = []
    for agent in state.agents.values():
        shown = shown_state(agent)
        glyph, style = STATE_STYLE[shown]
        attempt = agent.current
        elapsed = ""
        if attempt is not None and attempt.started_ts is not None:
            elapsed = format_duration((attempt.ended_ts or now) - attempt.started_ts)
        beat = agent.last_heartbeat
        detail = ""
        if beat is not None and (beat.progress is not None or beat.message):
            percent = f"{beat.progress:.0%} " if beat.progress is not None else ""
            detail = percent + (beat.message or "")
        elif agent.reason and agent.state not in ("running", "succeeded"):
            detail = agent.reason
        elif stream_detail(agent):
            detail = stream_detail(agent)
        row = [
            Text(agent.id),
            Text(agent.kind),
            Text(f"{glyph} {shown}", style=style),
            Text(str(agent.attempt or "")),
            heartbeat_cell(agent, now),
            Text(inert(detail)),
            Text(elapsed),
        ]
        if with_usage:
            row.insert(5, Text(inert(usage_cell(agent.usage))))
        rows.append(row)
    return rows


def agent_table(state: RunState, now: float) -> Table:
    table = Table(expand=False, box=None, pad_edge=False, header_style="bold")
    for column in columns(state):
        table.add_column(column, no_wrap=column != "progress / message", overflow="ellipsis")
    for row in agent_rows(state, now):
        table.add_row(*row)
    return table


def plain_table(state: RunState, now: float) -> str:
    """The agent table as aligned plain lines, for output that is not a terminal.

    Rich lays a table out in ~1 ms a row, which made the closing summary of a 200-agent run
    cost a fifth of a second; a file or a pipe needs neither colour nor wrapping.
    """
    names = columns(state)
    rows = [list(names), *([cell.plain for cell in row] for row in agent_rows(state, now))]
    widths = [max(len(row[i]) for row in rows) for i in range(len(names) - 1)]
    return "\n".join(
        "  ".join(
            [*(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)), row[-1]]
        ).rstrip()
        for row in rows
    )


def counts_line(state: RunState) -> Text:
    parts = [f"{count} {name}" for name, count in sorted(state.counts().items())]
    usage = usage_line(state.usage)
    line = f"run {state.run_id} · {state.snapshot[:10]} · " + ", ".join(parts)
    return Text(inert(line + (f" · {usage}" if usage else "")), style="bold")


class HeadlessView:
    """Live progress for `corral run`; silent once the terminal hangs up."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self.live: Live | None = None
        self.engine: Engine | None = None
        self.gone = False

    def attach(self, engine: Engine) -> None:
        self.engine = engine
        if self.console.is_terminal:
            self.live = Live(
                get_renderable=self._render,
                console=self.console,
                refresh_per_second=4,
                transient=True,
            )
            self.live.start()
        else:
            engine.listeners.append(self._print_event)

    def _render(self) -> Group:
        assert self.engine is not None
        state = self.engine.state
        return Group(counts_line(state), agent_table(state, time.time()))

    def _print_event(self, event: ev.Event) -> None:
        if self.gone:
            return
        line = inert(progress_line(event))
        if line:
            stamp = time.strftime("%H:%M:%S", time.localtime(event.ts))
            try:
                self.console.print(f"{stamp} {line}", markup=False, highlight=False)
            except (BrokenPipeError, SystemExit):  # rich exits 1 on a broken pipe
                self.gone = True  # the reader left (`| head`): the run goes on, unprinted

    def hangup(self) -> None:
        """The terminal went away (SSH dropped): keep running, stop drawing."""
        self.gone = True
        if self.live is not None:
            self.live.stop()
            self.live = None

    async def close(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None


def print_summary(console: Console, state: RunState, message: str) -> None:
    """The closing table and verdict of a run."""
    console.print(counts_line(state))
    now = state.last_ts or time.time()
    if console.is_terminal:
        console.print(agent_table(state, now))
    else:
        console.print(plain_table(state, now), markup=False, highlight=False, soft_wrap=True)
    if message:
        style = "green" if state.verdict == "passed" else "red"
        console.print(Text(inert(message), style=style))
    if state.report is not None:
        report = state.report
        merged = len(state.merge.merged)
        left_out = len(state.merge.left_out)
        console.print(
            inert(
                f"report: {report.path} ({report.findings} finding(s), "
                f"{report.conflicts} conflict(s), {merged} branch(es) merged, {left_out} left out)"
            ),
            markup=False,
            highlight=False,
            soft_wrap=True,  # a path cut in two cannot be copied
        )
        if state.merge.verification is not None:
            outcome = "passed" if state.merge.verification.passed else "FAILED"
            command = inert(" ".join(state.merge.verification.command))
            console.print(f"verification {outcome}: {command}", markup=False, highlight=False)
        if state.review is None and report.synthesized:
            console.print(
                f"review it: corral review show {state.run_id}", markup=False, highlight=False
            )
    print_tampering(console, state)


def print_runtimes(console: Console, runtimes: Mapping[str, AgentRuntime]) -> None:
    """Where the agents run: one line when they all run alike unsandboxed, else one an agent."""
    if not runtimes:
        return
    kinds = {r.runtime for r in runtimes.values()}
    if len(kinds) == 1 and not any(r.sandboxed for r in runtimes.values()):
        console.print(f"runtime: {inert(kinds.pop())} (every agent)", markup=False, highlight=False)
        return
    for agent, runtime in runtimes.items():
        console.print(
            inert(f"runtime of {agent}: {runtime_line(runtime)}"),
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def print_hosts(console: Console, state: RunState) -> None:
    """Which host each agent's latest attempt ran on (runtime `ssh`), one line a host."""
    on: dict[str, list[str]] = {}
    for agent in state.agents.values():
        attempt = agent.current
        if attempt is not None and attempt.host and not attempt.node:  # print_nodes has those
            on.setdefault(attempt.host, []).append(agent.id)
    for host, agents in sorted(on.items()):
        console.print(
            inert(f"on host {host}: {', '.join(agents)}"),
            markup=False,
            highlight=False,
            soft_wrap=True,
        )


def print_nodes(console: Console, state: RunState, cluster: str | None) -> None:
    """On a cluster: its line (nodes, free slots) and the node of each agent's latest attempt."""
    if cluster is not None:
        console.print(inert(cluster), markup=False, highlight=False)
    for agent in state.agents.values():
        attempt = agent.current
        if attempt is not None and attempt.node:
            line = f"node of {agent.id}: {node_line(attempt.node, attempt.host)}"
            console.print(inert(line), markup=False, highlight=False, soft_wrap=True)


def print_tampering(console: Console, state: RunState) -> None:
    """Each report of tampering with the shared repository, and whether a person has seen it."""
    from corral.core.trust.integrity import describe_tampering, printable

    for tampering in state.tampering:
        seen = (
            f"acknowledged by {printable(tampering.acknowledged_by, 80)}"
            if tampering.acknowledged_by
            else "approve waits until a person acknowledges it"
        )
        console.print(
            Text(f"REPOSITORY TAMPERED (#{tampering.seq}) {describe_tampering(tampering)}; {seen}"),
            style="red bold" if tampering.acknowledged_by is None else "yellow",
            soft_wrap=True,
        )
    if state.unacknowledged_tampering():
        console.print(
            f"read it: corral review show {state.run_id}; then: corral review acknowledge "
            f"{state.run_id}",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
