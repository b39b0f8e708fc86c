"""How run facts look on screen: glyph and colour together, so NO_COLOR loses nothing.

The state glyphs and heartbeat-source glyphs are the ones `corral run` already prints
(core/operator/describe.py); this module adds what only the console shows: freshness, sparklines and lock
leases. One line per event is core's (core/operator/describe.py), shared with `corral run`.
"""

from __future__ import annotations

from rich.style import Style
from rich.text import Span, Text

from corral.core.log.state import AgentState, LockState
from corral.core.operator.describe import (
    NO_COLOR_STYLE,
    SOURCE_GLYPH,
    STATE_STYLE,
    node_line,
    state_style,
    stream_detail,
    usage_cell,
)
from corral.core.plan.durations import format_duration
from corral.tui.text import inert

PLAIN_GLYPHS = {"lock": "▣", "elapsed": "Δ", "folder": "▤"}
"""Glyphs every common monospace font has (DejaVu Sans Mono, Menlo, Consolas): no tofu."""
EMOJI_GLYPHS = {"lock": "🔒", "elapsed": "⏱", "folder": "📁"}
"""The emoji some people prefer, where their font has them: `CORRAL_EMOJI=1` (app.py)."""
GLYPHS = dict(PLAIN_GLYPHS)
"""What the console draws: PLAIN_GLYPHS unless the console was started with emoji on."""


def use_emoji(on: bool) -> None:
    """Set once as the console starts, before anything is drawn."""
    GLYPHS.update(EMOJI_GLYPHS if on else PLAIN_GLYPHS)


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


ALARM = Style.parse(NO_COLOR_STYLE)


def _without_colour(style: str | Style) -> str | Style:
    parsed = Style.parse(style) if isinstance(style, str) else style
    colour = parsed.color
    if colour is not None and colour.name in ("red", "bright_red", "magenta", "bright_magenta"):
        return ALARM
    return Style(
        bold=parsed.bold, dim=parsed.dim, italic=parsed.italic, reverse=parsed.reverse
    ) + Style(underline=parsed.underline)


def monochrome(text: Text) -> Text:
    """`text` for a terminal without colour (`NO_COLOR`): what was red or magenta (a failure,
    a silent agent, a stale lease) is bold and reverse, every other colour is dropped; so
    nothing that matters turns dark grey on black."""
    out = text.copy()
    out.style = _without_colour(out.style)
    out.spans = [Span(span.start, span.end, _without_colour(span.style)) for span in out.spans]
    return out


def state_text(state: str, *, color: bool = True) -> Text:
    """`✘ failed`; without colour, failures bold and reverse (core/operator/describe.py)."""
    glyph, style = state_style(state, color=color)
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
    """Its worktree, after where it is when not on this machine: `HOST:` for an `ssh` host,
    the node for a Ray one (so the dashboard shows where each agent runs)."""
    attempt = agent.current
    if attempt is None or not attempt.workspace:
        return Text("")
    text = Text()
    if attempt.node:
        text.append(inert(node_line(attempt.node, attempt.host), limit=80) + " ", style="bold")
    elif attempt.host:
        text.append(inert(attempt.host, limit=80) + ":", style="bold")
    text.append(inert(attempt.workspace, limit=200), style="dim")
    return text


def holder_text(lock: LockState) -> Text:
    if lock.holder is None:
        return Text("free", style="dim")
    return Text(f"{GLYPHS['lock']} {inert(lock.holder, limit=60)}#{lock.holder_attempt}", "bold")


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


def legend_text(*, color: bool = True) -> Text:
    """Every glyph the console draws and what it means, for `?` help."""
    text = Text()
    text.append("glyphs", style="bold")
    for i, state in enumerate(STATE_STYLE):
        text.append("\n  " if i % 5 == 0 else "  ")
        text.append_text(state_text(state, color=color))
    text.append("\n  heartbeat  ")
    for (glyph, style), meaning in ((FRESH, "fresh"), (LATE, "late"), (SILENT, "silent")):
        text.append(f"{glyph} {meaning}  ", style=style)
    text.append("  ".join(f"{glyph} {source}" for source, glyph in SOURCE_GLYPH.items()))
    text.append(f"\n  {GLYPHS['lock']} lock held  ∞ held for the attempt  ! stale lease")
    text.append("\n  ◇ predicted conflict  ◆ actual conflict, or a marked agent")
    text.append(f"\n  {GLYPHS['elapsed']} elapsed  ⎇ branch  {GLYPHS['folder']} worktree")
    text.append(f"  {SPARK[1:]} activity")
    return text if color else monochrome(text)
