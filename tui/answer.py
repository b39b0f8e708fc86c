"""Answering the question an agent waits on (state `waiting_for_human`, the MCP tool
`ask_human`) from the console: one key on the agent screen, a line to type, then the operator
API's `answer` (core/operator/actions.py) in a thread, as `corral answer` does."""

from __future__ import annotations

import asyncio
from typing import Any

from textual.screen import Screen

from corral.core.operator import actions
from corral.core.operator.errors import OperatorError
from corral.tui.bridge import RunSession
from corral.tui.screens.dialogs import AskScreen
from corral.tui.text import inert


def can_answer(session: RunSession, agent_id: str) -> bool:
    feed = session.feed
    agent = feed.state.agents.get(agent_id) if feed is not None else None
    return (
        not session.read_only
        and session.engine_live
        and agent is not None
        and agent.question is not None
    )


async def answer(screen: Screen[Any], session: RunSession, agent_id: str) -> bool:
    """Ask the person for the answer to `agent_id`'s open question and send it; False when
    there is none, or the person cancelled."""
    feed = session.feed
    agent = feed.state.agents.get(agent_id) if feed is not None else None
    question = agent.question if agent is not None else None
    if question is None:
        screen.notify(f"{agent_id} is not waiting for an answer", title="answer")
        return False
    choices = f"\nanswer one of: {', '.join(question.choices)}" if question.choices else ""
    text = await screen.app.push_screen_wait(
        AskScreen(
            f"{agent_id} asks",
            inert(question.question, limit=1500) + inert(choices, limit=500),
            required="type an answer, or esc to leave the question open",
        )
    )
    if not text:
        return False
    try:
        done = await asyncio.to_thread(
            actions.answer, session.rundir, agent_id, text, session.operator, question.question_id
        )
    except OperatorError as exc:
        screen.notify(inert(str(exc)), title=f"answer {agent_id}", severity="error")
        return False
    screen.notify(f"{done.agent}#{done.attempt}: answered", title="answer")
    return True
