"""How run facts look on screen: glyph and colour together, so NO_COLOR loses nothing.

The state glyphs and heartbeat-source glyphs are the ones `corral run` already prints
(core/operator/describe.py); this module adds what only the console shows: freshness, sparklines and lock
leases. One line per event is core's (core/operator/describe.py), shared with `corral run`.
"""

from __future__ import annotations

from rich.text import Text

from corral.core.log.state import AgentState, LockState
from corral.core.operator.describe import SOURCE_GLYPH, STATE_STYLE, stream_detail, usage_cell
from corral.core.plan.durations import format_duration
from corral.tui.text import inert

SPARK = " ▁▂▃▄▅▆▇█"
FRESH = ("●", "green")
LATE = ("◐", "yellow")
SILENT = ("○", "red bold")
SEVERITY_STYLE = {
    "critical": "red bold reverse",
    "high": "red bold",
    "error": "red bold",
    "medium": "yellow",
    "warning": "yellow",
    "low": "cyan",
    "note": "dim",
    "info": "dim",
}


def state_text(state: str) -> Text:
    glyph, style = STATE_STYLE.get(state, ("?", ""))
    return Text(f"{glyph} {state}", style=style)


def freshness(age: float, timeout: float, stalled: bool) -> tuple[str, str]:
    """Fresh while well within the heartbeat timeout, late past a third of it, silent past it."""
    if stalled or (timeout > 0 and age > timeout):
        return SILENT
    if age > max(3.0, timeout / 3 if timeout > 0 else 10.0):
        return LATE
    return FRESH


def heartbeat_text(agent: AgentState, now: float, timeout: float) -> Text:
    """`● ♥ 3s beat`: freshness glyph, source glyph, age and source, coloured by freshness."""
    beat = agent.last_heartbeat
    if beat is None or agent.state not in ("running", "stalled"):
        return Text("-", style="dim")
    age = max(0.0, now - beat.ts)
    glyph, style = freshness(age, timeout, agent.state == "stalled")
    # whole seconds: a cell that changes ten times a second costs a redraw ten times a second
    shown = "<1s" if age < 1 else format_duration(age)
    return Text(f"{glyph} {SOURCE_GLYPH[beat.source]} {shown} {beat.source}", style)


def sparkline(counts: list[int]) -> str:
    top = max(counts, default=0)
    if top == 0:
        return " " * len(counts) if counts else ""
    return "".join(SPARK[0 if c == 0 else max(1, round(c / top * 8))] for c in counts)


def progress_text(agent: AgentState) -> Text:
    beat = agent.last_heartbeat
    if beat is not None and (beat.progress is not None or beat.message):
        percent = f"{beat.progress:>4.0%} " if beat.progress is not None else ""
        return Text(percent + inert(beat.message, limit=120))
    if agent.reason and agent.state not in ("running", "succeeded"):
        return Text(inert(agent.reason, limit=120), style="dim")
    said = stream_detail(agent)
    if said:  # an agent CLI's stream: its tokens, cost, turns and last tool call
        usage = usage_cell(agent.usage)
        return Text((f"{usage} " if usage else "") + inert(said, limit=120))
    return Text("")


def elapsed_text(agent: AgentState, now: float) -> str:
    attempt = agent.current
    if attempt is None or attempt.started_ts is None:
        return ""
    return format_duration(max(0.0, (attempt.ended_ts or now) - attempt.started_ts))


def workspace_text(agent: AgentState) -> Text:
    attempt = agent.current
    if attempt is None or not attempt.workspace:
        return Text("")
    return Text(inert(attempt.workspace, limit=200), style="dim")


def holder_text(lock: LockState) -> Text:
    if lock.holder is None:
        return Text("free", style="dim")
    return Text(f"🔒 {inert(lock.holder, limit=60)}#{lock.holder_attempt}", style="bold")


def ttl_text(lock: LockState, now: float) -> Text:
    """Time left on the lease; a lease past its end is marked stale (ask before breaking)."""
    if lock.holder is None:
        return Text("-", style="dim")
    if lock.expires_at is None:
        return Text("∞ attempt", style="dim")
    left = lock.expires_at - now
    if left < 0:
        return Text(f"! stale {format_duration(-left)}", style="red bold")
    style = "yellow" if lock.ttl and left < lock.ttl / 3 else ""
    return Text(format_duration(left), style=style)


def waiters_text(lock: LockState) -> Text:
    if not lock.waiters:
        return Text("")
    names = ", ".join(inert(w.agent, limit=40) for w in lock.waiters[:4])
    more = f" +{len(lock.waiters) - 4}" if len(lock.waiters) > 4 else ""
    return Text(f"{len(lock.waiters)}: {names}{more}", style="yellow")


def conflict_kind_text(predicted: bool, actual: bool) -> Text:
    if actual:
        return Text("◆ actual", style="red bold")
    if predicted:
        return Text("◇ predicted", style="yellow")
    return Text("· cleared", style="dim")
