"""Questions an agent asks a person (the MCP tool `ask_human`), and their answers.

An open question puts the agent in `waiting_for_human`; an answer or the question's timeout
puts it back to `running`. The question and the answer are redacted before they are logged.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from corral.core.log.event_types.base import EventBase


class HumanAsked(EventBase):
    type: Literal["human_asked"] = "human_asked"
    agent: str
    attempt: int
    question_id: str
    """Chosen by the agent's client; asking again with the same id waits for the same answer."""
    question: str
    choices: list[str] = Field(default_factory=list)
    """The answers the agent offers (empty: any text)."""
    timeout: float
    """Seconds the agent waits for an answer."""


class HumanAnswered(EventBase):
    type: Literal["human_answered"] = "human_answered"
    agent: str
    attempt: int
    question_id: str
    answer: str
    by: str
    """Who answered (`corral answer`, the console, the operator MCP server)."""


class HumanUnanswered(EventBase):
    """The question closed without an answer: its timeout ran out, or the attempt ended."""

    type: Literal["human_unanswered"] = "human_unanswered"
    agent: str
    attempt: int
    question_id: str
    reason: str
