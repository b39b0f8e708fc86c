"""What a person reads about a run, in both front ends: a glyph and a style per agent state and
per heartbeat source, and one line per event worth following.

Shared by the headless view (core/cli/headless.py) and the console (tui/look.py), which are
front ends independent of each other (docs/architecture.md), so it lives under them.
"""

from __future__ import annotations

from corral.core.log import events as ev
from corral.core.plan.durations import format_duration

STATE_STYLE = {
    "queued": ("·", "dim"),
    "waiting": ("…", "yellow"),
    "starting": ("◌", "cyan"),
    "running": ("●", "green"),
    "stalled": ("◐", "yellow bold"),
    "succeeded": ("✔", "green bold"),
    "failed": ("✘", "red"),
    "timed_out": ("⧖", "red"),
    "killed": ("✘", "red"),
    "lost": ("?", "magenta"),
    "dead_lettered": ("✘", "red bold"),
    "skipped": ("↷", "dim"),
    "cancelled": ("■", "dim"),
}
SOURCE_GLYPH = {"beat": "♥", "output": "≡", "cpu": "⚙"}


def describe_event(event: ev.Event) -> str:
    """One line for the events a person follows; '' for the rest."""
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
        case ev.AgentRedriven():
            return f"{event.agent} retry requested by {event.by}"
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
        case ev.RepoTampered():
            from corral.core.trust.tampering_text import describe_tampering

            return f"REPOSITORY TAMPERED {describe_tampering(event)}"
        case ev.TamperingAcknowledged():
            return f"tampering up to #{event.through_seq} acknowledged by {event.by}"
        case _:
            return ""
