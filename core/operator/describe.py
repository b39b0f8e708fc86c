"""One line per event, in a person's words, and one glyph per state: the one home of both for
every front end. `progress_line` is what `corral run` prints as a run goes, `tail_line` what the console's
event tail shows, `command_line` what its `@` log shows (what the engine ran or did on someone's
behalf), `runtime_line` where an agent runs (its detail, `corral status`). The lines are plain
text: a front end makes them inert (T5) as it draws them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from corral.core.log import events as ev
from corral.core.log.state import ACTIVE_STATES, AgentState, Usage
from corral.core.plan.durations import format_duration

if TYPE_CHECKING:
    from corral.core.operator.results import AgentRuntime

#: A glyph and a style per agent state, and a glyph per heartbeat source: `corral run` and the
#: console show the same ones.
STATE_STYLE = {
    "queued": ("·", "dim"),
    "waiting": ("…", "yellow"),
    "starting": ("◌", "cyan"),
    "running": ("●", "green"),
    "stalled": ("◐", "yellow bold"),
    "paused": ("‖", "yellow"),
    "waiting_for_human": ("?", "yellow bold reverse"),
    "succeeded": ("✔", "green bold"),
    "failed": ("✘", "red"),
    "timed_out": ("◷", "red"),
    "killed": ("✘", "red"),
    "lost": ("?", "magenta"),
    "dead_lettered": ("✘", "red bold"),
    "skipped": ("↷", "dim"),
    "cancelled": ("■", "dim"),
    "budget_exceeded": ("$", "red bold"),
}
SOURCE_GLYPH = {"beat": "♥", "output": "≡", "cpu": "⚙", "stream": "»"}
FAILED_STATES = frozenset({"failed", "timed_out", "killed", "lost", "dead_lettered"})
"""The states a person must not miss: without colour (`NO_COLOR`) they are drawn NO_COLOR_STYLE,
never a grey a monochrome terminal may show dark on black."""
NO_COLOR_STYLE = "bold reverse"


def shown_state(agent: AgentState) -> str:
    """The state a person sees: `paused` for a running agent a person froze (it stays
    `running` in the log's terms: its attempt goes on once unpaused)."""
    return "paused" if agent.paused and agent.state in ACTIVE_STATES else agent.state


def state_style(state: str, *, color: bool = True) -> tuple[str, str]:
    """The glyph and style of a state, for a terminal with or without colour."""
    glyph, style = STATE_STYLE.get(state, ("?", ""))
    if not color:
        style = NO_COLOR_STYLE if state in FAILED_STATES else style.replace("dim", "").strip()
    return glyph, style


def format_tokens(count: int) -> str:
    """`950`, `63.5k`, `1.2M`: a token count at a glance."""
    if count < 1000:
        return str(count)
    if count < 1_000_000:
        return f"{count / 1000:.1f}k"
    return f"{count / 1_000_000:.1f}M"


def format_cost(usd: float | None) -> str:
    """`$0.19`, `$0.0042`; `-` when unknown (no cost reported and no price for the model)."""
    if usd is None:
        return "-"
    return f"${usd:.2f}" if usd >= 0.1 else f"${usd:.4f}"


def usage_cell(usage: Usage) -> str:
    """An agent's or a run's tokens, cost and turns in one short cell; '' when none counted."""
    if not (usage.tokens or usage.turns or usage.cost_usd):
        return ""
    return f"{format_tokens(usage.tokens)} tok {format_cost(usage.cost_usd)} {usage.turns}t"


def usage_line(usage: Usage) -> str:
    """The run's totals in words, for the header and the report; '' when nothing was counted."""
    if not (usage.tokens or usage.turns or usage.cost_usd):
        return ""
    return (
        f"{format_tokens(usage.tokens)} tokens ({format_tokens(usage.tokens_in)} in, "
        f"{format_tokens(usage.tokens_out)} out) · cost {format_cost(usage.cost_usd)} · "
        f"{usage.turns} turns · {usage.tool_calls} tool calls"
    )


def stream_detail(agent: AgentState) -> str:
    """What an agent's stream said last, in a few words: waiting, an error, the last tool call,
    or its result; '' for an agent without a stream."""
    stream = agent.stream
    if stream is None:
        return ""
    model = f"[{stream.model}] " if stream.model else ""
    if stream.waiting:
        return f"{model}waiting for input: {stream.waiting}"
    if stream.result is not None and agent.state not in ("running", "stalled"):
        return f"{model}result: {stream.result}"
    if stream.last_tool is not None:
        tool = stream.last_tool
        return f"{model}» {tool.name} {tool.summary}".rstrip()
    if stream.error:
        return f"{model}error: {stream.error}"
    return model.rstrip()


def progress_line(event: ev.Event) -> str:
    """`corral run`'s line for the events a person follows as a run goes; '' for the rest."""
    match event:
        case ev.AgentStarted():
            return f"{event.agent}#{event.attempt} started (pid {event.pid})"
        case ev.AgentFinished():
            text = f"{event.agent}#{event.attempt} {event.outcome} after {format_duration(event.duration)}"
            return text + (f": {event.reason}" if event.reason else "")
        case ev.AgentRetried():
            return f"{event.agent} will retry as attempt {event.attempt} in {format_duration(event.delay)}"
        case ev.AgentDeadLettered():
            return f"{event.agent} dead-lettered after {event.attempts} attempt(s): {event.reason}"
        case ev.AgentSkipped():
            return f"{event.agent} skipped: {event.reason}"
        case ev.AgentStalled():
            return f"{event.agent}#{event.attempt} stalled: silent for {format_duration(event.silent_for)}"
        case ev.AgentCancelled():
            return f"{event.agent} cancelled by {event.by}" + (
                f": {event.reason}" if event.reason else ""
            )
        case ev.AgentPaused():
            return f"{event.agent}#{event.attempt} paused by {event.by} (its timeouts stand still)"
        case ev.AgentResumed():
            return (
                f"{event.agent}#{event.attempt} unpaused by {event.by} after "
                f"{format_duration(event.paused_for)}"
            )
        case ev.AgentRedriven():
            return f"{event.agent} retry requested by {event.by}"
        case ev.HumanAsked():
            choices = f" [{' / '.join(event.choices)}]" if event.choices else ""
            return (
                f"{event.agent}#{event.attempt} asks: {event.question}{choices} "
                f"(corral answer RUN {event.agent} TEXT)"
            )
        case ev.HumanAnswered():
            return f"{event.agent}#{event.attempt} answered by {event.by}: {event.answer}"
        case ev.HumanUnanswered():
            return f"{event.agent}#{event.attempt} question unanswered: {event.reason}"
        case ev.LockWaiting():
            holder = f" held by {event.holder} (token {event.holder_token})" if event.holder else ""
            return f"{event.agent}#{event.attempt} waits for lock {event.lock}{holder}"
        case ev.LockAcquired():
            return f"{event.agent}#{event.attempt} holds lock {event.lock} (token {event.token})"
        case ev.LockExpired() | ev.LockBroken():
            return f"lock {event.lock} taken from {event.agent}: {event.type.removeprefix('lock_')}"
        case ev.ConflictPredicted():
            files = ", ".join(f.path for f in event.files)
            return f"conflict predicted between {' and '.join(event.agents)} in {files}"
        case ev.BranchMerged():
            return f"merged {event.agent}#{event.attempt}"
        case ev.BranchLeftOut():
            return f"left out {event.agent}#{event.attempt}: {event.reason}"
        case ev.VerificationFinished():
            verdict = "passed" if event.passed else "FAILED"
            return f"verification {verdict}: {' '.join(event.command)}"
        case ev.RunFinished():
            return f"run {event.verdict}: {event.reason}"
        case ev.OperatorActionRefused():
            who = f"agent {event.caller_agent or '?'}#{event.caller_attempt or '?'}"
            who += f" of run {event.caller_run}" if event.caller_run else ""
            return f"refused {event.action} of {event.target} asked from inside {who}"
        case ev.NetworkRefused():
            return f"{event.agent}#{event.attempt} refused network access to {event.destination}"
        case ev.LateResultRefused():
            return (
                f"{event.agent}#{event.attempt} on host {event.host}: late {event.what} refused "
                f"({event.detail})"
            )
        case ev.AgentActivity() if event.waiting or event.error or event.result is not None:
            return activity_line(event)
        case ev.RepoTampered():
            from corral.core.trust.tampering_text import describe_tampering

            return f"REPOSITORY TAMPERED {describe_tampering(event)}"
        case ev.TamperingAcknowledged():
            return f"tampering up to #{event.through_seq} acknowledged by {event.by}"
        case _:
            return ""


def activity_line(event: ev.AgentActivity) -> str:
    """What an `agent_activity` event says in a line: the news, then the running totals."""
    who = f"{event.agent}#{event.attempt}"
    totals = (
        f"{format_tokens(event.tokens_in + event.tokens_out)} tok {format_cost(event.cost_usd)}"
    )
    if event.waiting:
        return f"{who} waits for input: {event.waiting}"
    if event.error:
        return f"{who} error: {event.error} ({totals})"
    if event.result is not None:
        return f"{who} result: {event.result} ({totals}, {event.turns} turns)"
    if event.tools:
        calls = ", ".join(f"{t.name} {t.summary}".rstrip() for t in event.tools[-3:])
        return f"{who} » {calls} ({totals})"
    if event.message:
        return f"{who} says: {event.message} ({totals})"
    return f"{who} {totals}, {event.turns} turns"


def tail_line(event: ev.Event) -> str:
    """The console's event-tail line: `progress_line` with more events, some in other words
    (locks, merges, the report); '' for events a person does not follow there."""
    match event:
        case ev.RunStarted():
            return f"run {event.run_id} started on {event.base_ref} @ {event.snapshot[:10]}"
        case ev.EngineResumed():
            return f"engine resumed (pid {event.engine.pid})"
        case ev.EngineStopped():
            return f"engine stopped: {event.reason}"
        case ev.AgentStarting():
            return f"{event.agent}#{event.attempt} starting in {event.workspace}"
        case ev.AgentWaiting():
            return f"{event.agent} {event.reason}"
        case ev.LockAcquired():
            lease = f" for {format_duration(event.ttl)}" if event.ttl else ""
            return f"lock {event.lock} → {event.agent}#{event.attempt} token {event.token}{lease}"
        case ev.LockWaiting():
            return f"lock {event.lock}: {event.agent} waits (held by {event.holder or '-'})"
        case ev.LockReleased():
            return f"lock {event.lock} released by {event.agent}"
        case ev.LockExpired():
            return f"lock {event.lock} expired ({event.agent}, token {event.token})"
        case ev.LockBroken():
            return f"lock {event.lock} broken by {event.by} (was {event.agent}): {event.reason}"
        case ev.FencedWriteRefused():
            return f"stale token {event.token} refused for {event.agent} on {event.lock}"
        case ev.ConflictPredicted():
            files = ", ".join(f.path for f in event.files[:3])
            return f"conflict predicted: {' ⇄ '.join(event.agents)} on {files}"
        case ev.ConflictCleared():
            return f"conflict cleared: {event.key}"
        case ev.BranchMerged():
            return f"merged {event.branch} → {event.commit[:10]}"
        case ev.BranchLeftOut():
            return f"left out {event.branch}: {event.reason}"
        case ev.FindingsRejected():
            return f"{event.agent} findings rejected: {event.reason}"
        case ev.AgentInputSent():
            return f"{event.agent}#{event.attempt} ← {event.by}: {event.text}"
        case ev.AgentResized():
            return (
                f"{event.agent}#{event.attempt} resized to {event.cols}x{event.rows} by {event.by}"
            )
        case ev.ReportWritten():
            return f"report written: {event.findings} findings, sha256 {event.sha256[:12]}"
        case ev.ReportApproved():
            return f"report APPROVED by {event.by}"
        case ev.ReportRejected():
            return f"report REJECTED by {event.by}: {event.reason}"
        case ev.FindingsSuppressed():
            return f"{event.kind} {event.pattern} suppressed by {event.by}: {event.reason}"
        case ev.AgentActivity():
            return activity_line(event)
        case _:
            return progress_line(event)


def command_line(event: ev.Event, command: list[str] | None) -> str:
    """Lines of the `@` log: what the engine ran or did on someone's behalf."""
    match event:
        case ev.AgentStarting():
            argv = " ".join(command or [])
            return f"run   {event.agent}#{event.attempt}: {argv}  (in {event.workspace})"
        case ev.AgentStarted():
            return f"pid   {event.agent}#{event.attempt} is pid {event.pid}"
        case ev.AgentFinished():
            code = "" if event.exit_code is None else f" exit {event.exit_code}"
            return f"exit  {event.agent}#{event.attempt} {event.outcome}{code}"
        case ev.AgentCancelled():
            return f"kill  {event.agent} by {event.by}" + (
                f": {event.reason}" if event.reason else ""
            )
        case ev.AgentRedriven():
            return f"retry {event.agent} by {event.by}"
        case ev.AgentPaused():
            return f"pause {event.agent}#{event.attempt} by {event.by}"
        case ev.AgentResumed():
            return f"unpause {event.agent}#{event.attempt} by {event.by}"
        case ev.AgentInputSent():
            return f"input {event.agent}#{event.attempt} by {event.by}: {event.text}"
        case ev.AgentResized():
            return f"resize {event.agent}#{event.attempt} by {event.by}: {event.cols}x{event.rows}"
        case ev.LockBroken():
            return f"break lock {event.lock} by {event.by}: {event.reason}"
        case ev.BranchMerged():
            return f"git   merge {event.branch} → {event.commit[:12]}"
        case ev.VerificationFinished():
            return f"run   verification: {' '.join(event.command)} → exit {event.exit_code}"
        case ev.ReportApproved():
            landed = f", landed {event.landed[:12]}" if event.landed else ""
            return f"approve by {event.by} (report {event.report_sha256[:12]}{landed})"
        case ev.ReportRejected():
            return f"reject by {event.by} (report {event.report_sha256[:12]}): {event.reason}"
        case ev.TamperingAcknowledged():
            return f"acknowledge tampering up to #{event.through_seq} by {event.by}"
        case ev.FindingsSuppressed():
            return f"suppress {event.kind} {event.pattern} by {event.by}: {event.reason}"
        case ev.RunStarted() | ev.EngineResumed() | ev.EngineStopped() | ev.RunFinished():
            return "run   " + tail_line(event)
        case _:
            return ""


def node_line(node: str, host: str) -> str:
    """Where an attempt runs on a cluster: the node's short id and its host."""
    short = node[:12]
    return f"node {short} ({host})" if host else f"node {short}"


def runtime_line(runtime: AgentRuntime) -> str:
    """Where an agent runs, and when sandboxed what it may reach, on one line."""
    return " · ".join([runtime.runtime, *runtime.summary])
