"""The errors of the operator API: each says, in a person's words, why nothing was done."""

from __future__ import annotations

from corral.core.errors import EXIT_FAILED, EXIT_INVALID, CorralError


class OperatorError(CorralError):
    """An operator action was not carried out; the message says why and what to do."""


class AgentRefused(OperatorError):
    """Asked from inside an agent (docs/reliability.md T1); the refusal is recorded in the run."""


class EngineRefused(OperatorError):
    """The run's engine refused the request, or could not be reached."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class DecisionRefused(OperatorError):
    """The review gate refused the decision (core/review/gate.py says why)."""


class StartFailed(OperatorError):
    """A run could not be started: a bad plan, or an engine that exited or never answered."""

    def __init__(self, message: str, *, invalid_plan: bool = False) -> None:
        super().__init__(message)
        self.invalid_plan = invalid_plan
        self.exit_code = EXIT_INVALID if invalid_plan else EXIT_FAILED


class NoSuchAgent(OperatorError):
    """The run has no agent of that name, or it has not started yet."""


class RoleRefused(OperatorError):
    """The person lacks the role the action needs (identity.py: viewer, operator, reviewer)."""
