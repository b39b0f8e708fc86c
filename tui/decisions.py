"""Decisions a person takes from several screens: each one confirms, naming the target and the
counts, then goes through the operator API (core/operator/) in a thread and reports back with a
toast. Which agents may be killed or retried is core's rule (core/operator/policy.py)."""

from __future__ import annotations

import asyncio
from typing import Any

from rich.text import Text
from textual.screen import Screen

from corral.core.operator import actions, policy
from corral.core.operator.errors import OperatorError
from corral.tui.bridge import RunSession
from corral.tui.screens.dialogs import AskScreen, ConfirmScreen
from corral.tui.text import inert


def agent_state(session: RunSession, agent_id: str) -> str:
    return policy.agent_state(session.feed.state if session.feed else None, agent_id)


def _killable(session: RunSession, targets: list[str]) -> list[str]:
    state = session.feed.state if session.feed else None
    return [a for a in targets if policy.killable(state, a)]


def _retryable(session: RunSession, targets: list[str]) -> list[str]:
    state = session.feed.state if session.feed else None
    return [a for a in targets if policy.retryable(state, a)]


def can_kill(session: RunSession, targets: list[str]) -> bool:
    return not session.read_only and session.engine_live and bool(_killable(session, targets))


def can_stop(session: RunSession) -> bool:
    """The whole run can be stopped while its engine drives it (and resumed later)."""
    state = session.feed.state if session.feed else None
    return not session.read_only and session.engine_live and policy.stoppable(state)


def can_retry(session: RunSession, targets: list[str]) -> bool:
    """Also without a live engine: a retry then resumes it, as `corral retry` does."""
    return not session.read_only and bool(_retryable(session, targets))


async def kill(screen: Screen[Any], session: RunSession, targets: list[str]) -> bool:
    feed = session.feed
    targets = _killable(session, targets)
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
            killed = await asyncio.to_thread(
                actions.kill, session.rundir, agent_id, session.operator, "killed from the console"
            )
        except OperatorError as exc:
            screen.notify(inert(str(exc)), title=f"kill {agent_id}", severity="error")
        else:
            screen.notify(f"{agent_id}: stopping (was {killed.was})", title="kill")
    return True


async def stop_run(screen: Screen[Any], session: RunSession) -> bool:
    """Confirm, naming the run and what runs in it, then stop the whole run (resumable)."""
    feed = session.feed
    if feed is None or not can_stop(session):
        return False
    running = policy.running_agents(feed.state)
    listed = inert(", ".join(running), limit=400) if running else "no agent is running"
    body = Text(
        f"Stop run {session.run_id}: {len(running)} agent(s) running ({listed}).\n"
        "Every agent's process tree gets SIGTERM, then SIGKILL, and the engine exits; the "
        f"stopped attempts run again after `corral run --resume {session.run_id}`."
    )
    title = f"Stop run {session.run_id}?"
    if not await screen.app.push_screen_wait(ConfirmScreen(title, body, yes="stop")):
        return False
    try:
        done = await asyncio.to_thread(
            actions.stop, session.rundir, session.operator, "stopped from the console"
        )
    except OperatorError as exc:
        screen.notify(inert(str(exc)), title=f"stop {session.run_id}", severity="error")
        return False
    screen.notify(f"run {done.run_id}: stopping", title="stop")
    return True


async def retry(screen: Screen[Any], session: RunSession, targets: list[str]) -> None:
    for agent_id in _retryable(session, targets):
        try:
            done = await asyncio.to_thread(
                actions.retry, session.rundir, agent_id, session.operator
            )
        except OperatorError as exc:
            screen.notify(inert(str(exc)), title=f"retry {agent_id}", severity="error")
        else:
            said = (
                f"queued as attempt {done.attempt}"
                if done.resumed_pid is None
                else f"resumed the run's engine (pid {done.resumed_pid}) to retry it"
            )
            screen.notify(f"{agent_id}: {said}", title="retry")


def can_pause(session: RunSession, agent_id: str) -> bool:
    state = session.feed.state if session.feed else None
    return not session.read_only and session.engine_live and policy.pausable(state, agent_id)


def can_unpause(session: RunSession, agent_id: str) -> bool:
    state = session.feed.state if session.feed else None
    return not session.read_only and session.engine_live and policy.unpausable(state, agent_id)


async def pause(screen: Screen[Any], session: RunSession, agent_id: str) -> None:
    """Freeze the agent's tree at once: no confirmation, since `p` again lets it go on and
    nothing is lost meanwhile."""
    if not can_pause(session, agent_id):
        return
    try:
        done = await asyncio.to_thread(actions.pause, session.rundir, agent_id, session.operator)
    except OperatorError as exc:
        screen.notify(inert(str(exc)), title=f"pause {agent_id}", severity="error")
    else:
        screen.notify(f"{agent_id}#{done.attempt}: paused (p lets it go on)", title="pause")


async def unpause(screen: Screen[Any], session: RunSession, agent_id: str) -> None:
    if not can_unpause(session, agent_id):
        return
    try:
        done = await asyncio.to_thread(actions.unpause, session.rundir, agent_id, session.operator)
    except OperatorError as exc:
        screen.notify(inert(str(exc)), title=f"unpause {agent_id}", severity="error")
    else:
        screen.notify(f"{agent_id}#{done.attempt}: going on", title="unpause")


def can_send(session: RunSession, agent_id: str) -> bool:
    """A running agent that reads a person's messages, and a live engine to hand them over."""
    state = session.feed.state if session.feed else None
    return not session.read_only and session.engine_live and policy.takes_input(state, agent_id)


async def send_input(screen: Screen[Any], session: RunSession, agent_id: str) -> None:
    """Ask for a message, then hand it to the agent's stdin through the engine (logged)."""
    if not can_send(session, agent_id):
        return
    text = await screen.app.push_screen_wait(
        AskScreen(
            f"Message to {agent_id}",
            "It goes to the agent's input; the agent reads it on its next turn.",
            required="type a message, or esc to send nothing",
        )
    )
    if not text:
        return
    try:
        sent = await asyncio.to_thread(
            actions.send_input, session.rundir, agent_id, text, session.operator
        )
    except OperatorError as exc:
        screen.notify(inert(str(exc)), title=f"message to {agent_id}", severity="error")
    else:
        screen.notify(f"{agent_id}#{sent.attempt}: message sent", title="message")
