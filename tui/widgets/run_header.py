"""The run's header line: name, id, snapshot, counts by state, elapsed, engine and mode, and the
run's tokens, cost and turns once an agent's stream reported some."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from corral.core.log.state import RunState
from corral.core.operator.describe import NO_COLOR_STYLE, STATE_STYLE, state_style, usage_cell
from corral.core.plan.durations import format_duration
from corral.tui.look import GLYPHS
from corral.tui.text import inert

STATE_ORDER = list(STATE_STYLE)


def header_text(
    state: RunState,
    now: float,
    *,
    engine_live: bool,
    read_only: bool,
    color: bool = True,
    acting: str = "",
) -> Text:
    """The run's two header lines; `acting` names who acts when not the local user with every
    role (Operator.label: an SSH key and its roles)."""
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(inert(state.name or state.run_id, limit=40), style="bold reverse")
    if state.started_ts is not None:
        end = state.finished_ts or now
        text.append(f" {GLYPHS['elapsed']} {format_duration(max(0.0, end - state.started_ts))}")
    alarm = "red bold" if color else NO_COLOR_STYLE
    if state.status == "finished":
        verdict = state.verdict or "?"
        text.append(f"  ■ finished {verdict}", style="green bold" if verdict == "passed" else alarm)
    elif engine_live:
        text.append("  ● engine live", style="green")
    else:
        text.append("  ○ engine gone (resume: corral run --resume)", style=alarm)
    if state.review is not None:
        style = "green bold" if state.review.decision == "approved" else "red bold"
        text.append(
            f"  ✎ {state.review.decision} by {inert(state.review.by, limit=40)}", style=style
        )
    if read_only:
        text.append("  READ-ONLY", style="bold reverse")
    if acting:
        text.append(f"  as {inert(acting, limit=60)}", style="bold")
    text.append(f"  ⎇ {inert(state.base_ref, limit=30)}@{state.snapshot[:10]}")
    text.append(f"  run {state.run_id}", style="dim")
    text.append("\n")
    counts = state.counts()
    for name in STATE_ORDER:
        if counts.get(name):
            glyph, style = state_style(name, color=color)
            text.append(f"{glyph} {counts[name]} {name}", style=style)
            text.append("  ")
    text.append(f"Σ {len(state.agents)} agents", style="dim")
    if state.locks:
        held = sum(1 for lock in state.locks.values() if lock.holder)
        text.append(f"  {GLYPHS['lock']} {held}/{len(state.locks)} locks held", style="dim")
    if state.conflicts:
        text.append(f"  ⚠ {len(state.conflicts)} conflicts", style="yellow")
    usage = usage_cell(state.usage)
    if usage:
        text.append(f"  Σ {usage}", style="dim")
    return text


class RunHeader(Static):
    """Two lines at the top of the dashboard."""

    DEFAULT_CSS = """
    RunHeader { height: 2; background: $panel; text-wrap: nowrap; text-overflow: ellipsis; }
    """
