"""Decisions a person takes from several screens: each one confirms, naming the target and the
counts, then goes through the control socket in a thread and reports back with a toast."""

from __future__ import annotations

import asyncio
from typing import Any

from rich.text import Text
from textual.screen import Screen

from corral.core.agent.client import ControlError
from corral.core.log.state import TERMINAL_STATES
from corral.tui import ops
from corral.tui.bridge import RunSession
from corral.tui.screens.dialogs import ConfirmScreen
from corral.tui.text import inert

RETRYABLE = frozenset({"failed", "timed_out", "killed", "lost", "dead_lettered", "cancelled"})


def agent_state(session: RunSession, agent_id: str) -> str:
    feed = session.feed
    agent = feed.state.agents.get(agent_id) if feed else None
    return agent.state if agent else ""


def can_kill(session: RunSession, targets: list[str]) -> bool:
    return (
        not session.read_only
        and session.engine_live
        and any(agent_state(session, a) not in TERMINAL_STATES for a in targets)
    )


def can_retry(session: RunSession, targets: list[str]) -> bool:
    """Also without a live engine: a retry then resumes it, as `corral retry` does."""
    return not session.read_only and any(agent_state(session, a) in RETRYABLE for a in targets)


async def kill(screen: Screen[Any], session: RunSession, targets: list[str]) -> bool:
    feed = session.feed
    targets = [a for a in targets if agent_state(session, a) not in TERMINAL_STATES]
    if feed is None or not targets:
        return False
    listed = ", ".join(
        f"{a} ({agent_state(session, a)}, attempt {feed.state.agents[a].attempt})" for a in targets
    )
    body = Text(
        f"Stop {len(targets)} agent(s): {inert(listed, limit=400)}.\n"
        "Each process tree gets SIGTERM, then SIGKILL; the agent ends cancelled and is not "
        "retried (r retries it later)."
    )
    title = f"Kill agent {targets[0]}?" if len(targets) == 1 else f"Kill {len(targets)} agents?"
    if not await screen.app.push_screen_wait(ConfirmScreen(title, body, yes="kill")):
        return False
    for agent_id in targets:
        try:
            data = await asyncio.to_thread(
                ops.kill, session.rundir, agent_id, "killed from the console"
            )
        except ControlError as exc:
            screen.notify(inert(str(exc)), title=f"kill {agent_id}", severity="error")
        else:
            screen.notify(f"{agent_id}: stopping (was {data.get('was')})", title="kill")
    return True


async def retry(screen: Screen[Any], session: RunSession, targets: list[str]) -> None:
    for agent_id in [a for a in targets if agent_state(session, a) in RETRYABLE]:
        try:
            data = await asyncio.to_thread(ops.retry, session.rundir, agent_id)
        except ControlError as exc:
            screen.notify(inert(str(exc)), title=f"retry {agent_id}", severity="error")
        else:
            said = (
                f"queued as attempt {data.attempt}"
                if data.resumed_pid is None
                else f"resumed the run's engine (pid {data.resumed_pid}) to retry it"
            )
            screen.notify(f"{agent_id}: {said}", title="retry")
